"""The sensitivity report (sensitivity.sensitivity_report's dict) as one self-contained HTML page.

Inline CSS and SVG only: no scripts, no external resources, so the page can be mailed or archived as is.
"""

from __future__ import annotations

import html

from edgekit.plots import bar_chart, line_chart

# Rules of thumb for the SQNR of the model's outputs when one layer alone runs in int8.
FALLBACK_BELOW_DB = 20.0
HARMLESS_ABOVE_DB = 30.0
HIGHLIGHTED = 3  # the most sensitive layers drawn in the warning colour

GUIDES = {f"{FALLBACK_BELOW_DB:g} dB": FALLBACK_BELOW_DB, f"{HARMLESS_ABOVE_DB:g} dB": HARMLESS_ABOVE_DB}

ACCUMULATED_NOTE = (
    "<p class='note'>Each layer's output tensor in the int8 model against the same tensor in the float model, in graph order. "
    "A sharp drop marks where error enters; a steady decline is error accumulating.</p>"
)

CSS = """
body { font-family: sans-serif; font-size: 14px; color: #333; margin: 24px auto; max-width: 960px; padding: 0 16px; }
h1 { font-size: 22px; margin-bottom: 4px; }
h2 { font-size: 17px; margin-top: 32px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 2px 12px; margin: 8px 0 16px; }
dl.meta dt { color: #666; }
dl.meta dd { margin: 0; font-family: monospace; }
p.note { color: #555; font-size: 13px; }
svg { max-width: 100%; height: auto; display: block; margin: 12px 0; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
th, td { padding: 3px 10px; border-bottom: 1px solid #eee; text-align: left; }
th { background: #f4f4f4; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.node { font-family: monospace; }
tr.low td.sqnr { background: #f8d7cf; }
tr.mid td.sqnr { background: #fbecd2; }
tr.highlight td.rank { color: #d9822b; font-weight: bold; }
"""


def sensitivity_html(report: dict) -> str:
    """The page for `report`: header, how to read it, the ranked bar chart and table, the accumulated error.

    Every string from the report (model path, recipe, node and tensor names) is escaped. Raises KeyError
    when the report lacks a key sensitivity_report always writes.
    """
    layers, accumulated = report["layers"], report["accumulated"]
    title = f"Quantization sensitivity: {report['model']}"
    body = [
        f"<h1>{_esc(title)}</h1>",
        _metadata(report),
        _how_to_read(),
        _summary(layers),
        "<h2>Each layer quantized alone</h2>",
        _ranked_chart(layers),
        _ranked_table(layers),
        "<h2>Error along the network, every layer quantized</h2>",
        ACCUMULATED_NOTE,
        _accumulated_chart(accumulated),
        _accumulated_table(accumulated),
    ]
    return (
        "<!doctype html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<title>{_esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def _metadata(report: dict) -> str:
    rows = [("model", report["model"]), ("recipe", report["recipe"]), ("samples", report["samples"]), ("format", report.get("format", ""))]
    return "<dl class='meta'>" + "".join(f"<dt>{name}</dt><dd>{_esc(value)}</dd>" for name, value in rows) + "</dl>"


def _how_to_read() -> str:
    return (
        "<p>Each layer below was quantized to int8 <em>alone</em>, every other layer kept in float, and the model's outputs "
        "compared with the float model's on the first calibration samples. The number is the output's SQNR "
        "(signal-to-quantization-noise ratio) in dB: <strong>lower means more sensitive</strong>; every 10 dB is ten times "
        f"less noise power. As a rule of thumb, a layer below ~{FALLBACK_BELOW_DB:g} dB is a candidate to keep in float "
        f"(exclude it in the recipe, or let <code>--max-drop</code> fall it back), and a layer above ~{HARMLESS_ABOVE_DB:g} dB "
        "is harmless. Cosine is the mean cosine similarity of the outputs per sample (1 is identical).</p>"
    )


def _summary(layers: list[dict]) -> str:
    if not layers:
        return "<p><strong>No layer runs in int8</strong>, so there is nothing to rank.</p>"
    low = sum(1 for r in layers if r["sqnr_db"] < FALLBACK_BELOW_DB)
    harmless = sum(1 for r in layers if r["sqnr_db"] > HARMLESS_ABOVE_DB)
    worst = layers[0]
    return (
        f"<p>{len(layers)} layers: <strong>{low}</strong> below {FALLBACK_BELOW_DB:g} dB, {len(layers) - low - harmless} between, "
        f"{harmless} above {HARMLESS_ABOVE_DB:g} dB. Most sensitive: <code>{_esc(worst['node'])}</code> ({_esc(worst['op_type'])}, "
        f"{worst['sqnr_db']:.1f} dB).</p>"
    )


def _ranked_chart(layers: list[dict]) -> str:
    labels = [f"{r['node']} ({r['op_type']})" for r in layers]
    highlight = set(range(min(HIGHLIGHTED, len(layers))))
    chart = bar_chart(
        labels,
        [r["sqnr_db"] for r in layers],
        title="Output SQNR with one layer in int8 (most sensitive first)",
        x_label="SQNR of the model outputs, dB (higher is better)",
        y_label="layer",
        highlight=highlight,
        guides=GUIDES,
    )
    legend = f"<p class='note'>Orange: the {len(highlight)} most sensitive layers. Dashed lines: the {FALLBACK_BELOW_DB:g} dB and {HARMLESS_ABOVE_DB:g} dB rules of thumb.</p>"
    return chart + legend


def _ranked_table(layers: list[dict]) -> str:
    head = "<tr><th>rank</th><th>node</th><th>op type</th><th>SQNR dB</th><th>cosine</th></tr>"
    rows = []
    for r in layers:
        classes = [_band(r["sqnr_db"])] + (["highlight"] if r["rank"] <= HIGHLIGHTED else [])
        rows.append(
            f"<tr class='{' '.join(c for c in classes if c)}'><td class='num rank'>{r['rank']}</td><td class='node'>{_esc(r['node'])}</td>"
            f"<td>{_esc(r['op_type'])}</td><td class='num sqnr'>{r['sqnr_db']:.2f}</td><td class='num'>{r['cosine_mean']:.4f}</td></tr>"
        )
    return f"<table class='ranked'>\n{head}\n" + "\n".join(rows) + "\n</table>"


def _accumulated_chart(accumulated: list[dict]) -> str:
    return line_chart(
        [r["node"] for r in accumulated],
        {"SQNR dB": [r["sqnr_db"] for r in accumulated]},
        title="Layer output SQNR with every layer in int8 (graph order)",
        y_label="SQNR, dB",
        guides=GUIDES,
    )


def _accumulated_table(accumulated: list[dict]) -> str:
    head = "<tr><th>#</th><th>node</th><th>op type</th><th>output tensor</th><th>SQNR dB</th><th>cosine</th></tr>"
    rows = [
        f"<tr class='{_band(r['sqnr_db'])}'><td class='num'>{i}</td><td class='node'>{_esc(r['node'])}</td><td>{_esc(r['op_type'])}</td>"
        f"<td class='node'>{_esc(r['tensor'])}</td><td class='num sqnr'>{r['sqnr_db']:.2f}</td><td class='num'>{r['cosine_mean']:.4f}</td></tr>"
        for i, r in enumerate(accumulated, 1)
    ]
    return f"<table class='accumulated'>\n{head}\n" + "\n".join(rows) + "\n</table>"


def _band(sqnr: float) -> str:
    if sqnr < FALLBACK_BELOW_DB:
        return "low"
    return "mid" if sqnr <= HARMLESS_ABOVE_DB else ""


def _esc(value) -> str:
    return html.escape(str(value), quote=True)
