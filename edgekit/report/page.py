"""The report dict (collect.py) as one self-contained HTML page.

Inline CSS and SVG only. A Content-Security-Policy meta tag forbids scripts and every external
load, so the page is inert wherever it is opened and a browser logs an error if anything slips
in (tests/test_report.py renders the page in headless Chromium and fails on any console line).
Sections in the order a reviewer asks: what model, for which target, how it was quantized, which
layers suffer, where the time goes, how steady the latency is, and whether the gates held.
Every string from the build (paths, node and kernel names, gate names, commands) is escaped.
"""

from __future__ import annotations

import html
import math
from typing import Any

import numpy as np

from edgekit.plots import bar_chart, histogram_chart, line_chart, roofline_chart
from edgekit.quantizer import FALLBACK_BELOW_DB, GUIDES

SECTIONS = (
    ("model", "Model"),
    ("target", "Target"),
    ("quantization", "Quantization record"),
    ("sensitivity", "Per-layer sensitivity"),
    ("layers", "Per-layer latency and roofline"),
    ("latency", "Latency histogram"),
    ("gates", "Gate results"),
)
HISTOGRAM_BINS = 30
SLOWEST_HIGHLIGHTED = 3
OPEN_TABLE_ROWS = 40  # longer tables start folded (<details>), so a large model's page stays readable
CHART_WIDTH = 1000  # the page's text column; charts scale down with the window
CSP = "default-src 'none'; style-src 'unsafe-inline'"

CSS = """
/* Arial metrics first: plots.py lays chart labels out for them (Liberation Sans on Linux). */
body, svg { font-family: Arial, "Liberation Sans", Helvetica, sans-serif; }
body { font-size: 14px; line-height: 1.45; color: #333; margin: 24px auto; max-width: 1060px; padding: 0 20px; }
h1 { font-size: 24px; margin: 0 0 6px; }
h2 { font-size: 18px; margin-top: 36px; border-bottom: 2px solid #5b84b1; padding-bottom: 4px; }
h3 { font-size: 15px; margin: 20px 0 6px; }
code, .mono { font-family: Menlo, Consolas, "Liberation Mono", "DejaVu Sans Mono", monospace; font-size: 12.5px; }
nav { margin: 10px 0 4px; font-size: 13px; }
nav a { color: #2f5f8f; margin-right: 14px; text-decoration: none; }
.verdict { display: inline-block; padding: 4px 14px; border-radius: 4px; font-weight: bold; font-size: 15px; margin: 6px 0; }
.verdict.pass { background: #dcf1e0; color: #1b6631; border: 1px solid #9fd1aa; }
.verdict.fail { background: #f9dcd9; color: #a12228; border: 1px solid #e8a19c; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 3px 16px; margin: 8px 0 14px; }
dl.meta dt { color: #666; }
dl.meta dd { margin: 0; overflow-wrap: anywhere; }
p.note { color: #555; font-size: 13px; margin: 4px 0 10px; }
p.missing { color: #8a5a00; background: #fdf6e3; border-left: 3px solid #e0b252; padding: 6px 10px; }
svg { max-width: 100%; height: auto; display: block; margin: 10px 0; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0 12px; }
th, td { padding: 3px 10px; border-bottom: 1px solid #e6e6e6; text-align: left; vertical-align: top; }
th { background: #f2f4f7; font-weight: 600; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
th.num { text-align: right; }
td.name { overflow-wrap: anywhere; }
tr.float td.precision { color: #b0600f; font-weight: bold; }
table.gates { font-size: 14px; }
table.gates td, table.gates th { padding: 5px 12px; }
table.gates tr.pass td.result { background: #dcf1e0; color: #1b6631; font-weight: bold; }
table.gates tr.fail td { background: #fdf0ef; }
table.gates tr.fail td.result { background: #f3c4c0; color: #a12228; font-weight: bold; }
ul.failures li { color: #a12228; }
details > summary { cursor: pointer; color: #2f5f8f; margin: 6px 0; }
"""


def report_html(data: dict[str, Any]) -> str:
    """The page for `data` (collect_report's dict). Sections whose data is None say why it is missing.

    Raises KeyError when `data` lacks a key collect_report always writes.
    """
    name = data["project"]["name"]
    body = [_header(data), _section("model", _model(data)), _section("target", _targets(data["targets"])),
            _section("quantization", _quantization(data["quantization"])), _section("sensitivity", _sensitivity(data["sensitivity"])),
            _section("layers", _layers(data["targets"])), _section("latency", _histograms(data["targets"])), _section("gates", _gates(data["check"]))]
    return (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        f"<title>{_esc(f'edgekit report: {name}')}</title>\n<style>{CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def _section(key: str, content: str) -> str:
    title = dict(SECTIONS)[key]
    number = [k for k, _ in SECTIONS].index(key) + 1
    return f"<section id='section-{key}'>\n<h2>{number}. {_esc(title)}</h2>\n{content}\n</section>"


def _header(data: dict) -> str:
    check = data["check"]
    results = [gate for target in check["targets"] for gate in target["gates"]]
    passed = sum(1 for gate in results if gate["passed"])
    verdict = "pass" if check["passed"] else "fail"
    word = "PASSED" if check["passed"] else "FAILED"
    versions = ", ".join(f"{k} {v}" for k, v in data["versions"].items() if k in ("edgekit", "tvm", "onnxruntime", "torch"))
    rows = [
        ("project file", data["project"]["file"]), ("build folder", data["build"]), ("built", data["created"]),
        ("deployed", f"{data['deployed_model']} on {', '.join(t['name'] for t in data['targets'])}"),
        ("gates measured on", f"{check['data']['path']} ({check['data']['samples']} samples)"), ("versions", versions),
    ]
    nav = "".join(f"<a href='#section-{key}'>{number}. {_esc(title)}</a>" for number, (key, title) in enumerate(SECTIONS, 1))
    return (
        f"<header>\n<h1>{_esc(data['project']['name'])}: build report</h1>\n"
        f"<div class='verdict {verdict}' id='verdict'>{word}: {passed} of {len(results)} gates passed</div>\n"
        f"{_meta(rows)}\n<nav>{nav}</nav>\n</header>"
    )


def _model(data: dict) -> str:
    model, profile = data["model"], _first_profile(data["targets"])
    rows = [("source", model["source"]), ("ONNX opset", model["opset"] if model["opset"] is not None else "-"),
            ("float model", _file_text(model["reference"])), ("deployed model", _file_text(model["deployed"]))]
    if profile is not None:
        totals = profile["totals"]
        if totals["flops"] is not None:
            rows.append(("compute per inference", f"{totals['flops'] / 1e6:.3f} MFLOP ({totals['macs'] / 1e6:.3f} MMAC)"))
        rows.append(("parameters", _bytes(totals["param_bytes"]) + " (as stored in the library)"))
        if totals["peak_activation_bytes"] is not None:
            rows.append(("peak activations", _bytes(totals["peak_activation_bytes"])))
    parity = model["parity"]
    if parity:
        worst = max((o["max_abs"] for o in parity["outputs"]), default=0.0)
        rows.append(("export check", f"ONNX Runtime vs PyTorch: max abs {worst:.3g} (atol {parity['atol']:g}), {'passed' if parity['passed'] else 'FAILED'}"))
    tensors = _table(["tensor", "name", "shape", "dtype"], [
        [kind, _name(spec["name"]), "x".join(map(str, spec["shape"])), spec["dtype"]]
        for kind, specs in (("input", model["inputs"]), ("output", model["outputs"])) for spec in specs
    ])
    stages = _table(["stage", "seconds", "command (replayable)"], [
        [s["stage"], _num(s["seconds"], ".2f"), f"<code>{_esc(s['command'])}</code>"] for s in data["stages"]
    ], classes=["", "num", ""])
    return _meta(rows) + tensors + "<h3>How it was built</h3>" + stages


def _targets(targets: list[dict]) -> str:
    parts = []
    for target in targets:
        cpu, peak = target["cpu"], target["peak"]
        rows = [
            ("description", target["description"]), ("CPU", f"{cpu['triple']}, {cpu['mcpu']}, {cpu['cores']} cores, {cpu['simd_bits']}-bit SIMD"),
            ("peaks", f"{peak['fp32_gflops']:g} GFLOP/s fp32, {peak['int8_gops']:g} GOP/s int8, {peak['memory_bandwidth_gbs']:g} GB/s memory"),
            ("device", target["device"] + (f" ({target['accelerator']['kind']} {target['accelerator']['arch']})" if target.get("accelerator") else "")),
            ("compiler", target["pipeline"] or "-"), ("library", _file_text(target["library"])),
        ]
        integer = target.get("integer")
        if integer:
            ops, floats = sum(integer.get("integer_ops", {}).values()), sum(integer.get("float_ops", {}).values())
            rows.append(("integer execution", f"{ops} integer ops, {floats} float ops; {integer.get('rounding', '')}"))
        if not target["runs_here"]:
            rows.append(("measured here", "no: this machine does not run this target, so it has no latency below"))
        parts.append(f"<h3>{_esc(target['name'])} <span class='mono'>({_esc(target['artifact'])})</span></h3>" + _meta(rows))
    return "\n".join(parts)


def _quantization(record: dict | None) -> str:
    if record is None:
        return "<p class='missing'>Float build: the project has no [quantize] table, so the float model is deployed as is.</p>"
    recipe, summary, calibration = record["recipe"], record["summary"], record["calibration"]
    rows = [("recipe", f"{recipe['name']}: {recipe.get('description', '')}"),
            ("calibration", f"{calibration['samples']} samples of {calibration['data']}"),
            ("nodes", f"{summary['int8_nodes']} of {summary['nodes']} in int8, {summary['float_nodes']} in float"),
            ("rounding", record.get("rounding", "-"))]
    verification = _table(["output", "SQNR dB", "cosine mean", "cosine min", "max abs"], [
        [_name(r["output"]), f"{r['sqnr_db']:.2f}", f"{r['cosine_mean']:.6f}", f"{r['cosine_min']:.6f}", f"{r['max_abs']:.3g}"]
        for r in record["verification"]
    ], classes=["", "num", "num", "num", "num"])
    nodes = _table(["node", "op type", "precision", "why"], [
        [_name(n["name"]), _esc(n["op_type"]), n["precision"], _esc(n["reason"] or "; ".join(n.get("notes", [])))] for n in record["nodes"]
    ], classes=["", "", "precision", ""], row_classes=["float" if n["precision"] == "float" else "" for n in record["nodes"]])
    tensors = _table(["tensor", "role", "dtype", "scale", "zero point", "observed range", "method", "clipped"], [
        [_name(t["name"]), t["role"], t["dtype"], _params(t["scale"]), _params(t["zero_point"], ".0f"), _range(t["observed_range"]),
         _esc(t["method"]), _percent(t["clipped_fraction"])] for t in record["tensors"]
    ], classes=["", "", "", "num", "num", "num", "", "num"])
    fallbacks = "".join(f"<li><code>{_esc(f['node'])}</code> ({_esc(f['op_type'])}) fell back to float</li>" for f in record.get("fallbacks", []))
    return (
        _meta(rows) + "<h3>Verification: the QDQ model against the float model (ONNX Runtime)</h3>" + verification
        + (f"<ul>{fallbacks}</ul>" if fallbacks else "")
        + _fold(f"Nodes: precision and why ({len(record['nodes'])})", nodes, len(record["nodes"]))
        + _fold(f"Quantized tensors: scale, zero point, calibrated range ({len(record['tensors'])})", tensors, len(record["tensors"]))
    )


def _sensitivity(report: dict | None) -> str:
    if report is None:
        return ("<p class='missing'>No sensitivity report in this build (float build, or built before the pipeline analysed it): "
                "rebuild with <code>edgekit pipeline</code>.</p>")
    layers, accumulated = report["layers"], report["accumulated"]
    if not layers:
        return "<p class='note'>No layer runs in int8, so there is nothing to rank.</p>"
    ranked = bar_chart(
        [f"{r['node']} ({r['op_type']})" for r in layers], [r["sqnr_db"] for r in layers],
        title="Output SQNR with one layer alone in int8 (most sensitive first)", x_label="SQNR of the model outputs, dB (higher is better)",
        highlight={i for i, r in enumerate(layers) if r["sqnr_db"] < FALLBACK_BELOW_DB}, guides=GUIDES, width=CHART_WIDTH,
    )
    note = (f"<p class='note'>Each layer quantized alone, every other layer in float, on {report['samples']} calibration samples "
            f"(recipe {_esc(report['recipe'])}). Orange: below {FALLBACK_BELOW_DB:g} dB, a candidate to keep in float.</p>")
    along = line_chart(
        [r["node"] for r in accumulated], {"SQNR dB": [r["sqnr_db"] for r in accumulated]},
        title="Each layer's output with every layer in int8 (graph order)", y_label="SQNR, dB", guides=GUIDES, width=CHART_WIDTH,
    ) if accumulated else ""
    return note + ranked + along


def _layers(targets: list[dict]) -> str:
    parts = []
    for target in targets:
        profile = target["profile"]
        if profile is None:
            parts.append(f"<h3>{_esc(target['name'])}</h3><p class='missing'>Not measured: this machine does not run {_esc(target['name'])} artifacts.</p>")
            continue
        layers, totals, peak = profile["layers"], profile["totals"], profile["peak"]
        slowest = sorted(range(len(layers)), key=lambda i: -layers[i]["latency_us"])[:SLOWEST_HIGHLIGHTED]
        latency = bar_chart(
            [f"#{k['index']} {k['name']}" for k in layers], [k["latency_us"] for k in layers],
            title=f"{target['name']}: median latency per kernel call ({profile['runs']} runs, {profile['threads']} threads)",
            x_label="microseconds per call", highlight=set(slowest), width=CHART_WIDTH,
        )
        speed = f", {totals['achieved_gflops']:.1f} GFLOP/s" if totals["achieved_gflops"] is not None else ""
        summary = (f"<p class='note'>{_num(totals['latency_ms'], '.3f')} ms per inference{speed}; kernels sum to {totals['kernel_latency_ms']:.3f} ms. "
                   f"Orange: the {len(slowest)} slowest calls. FLOPs from {_esc(profile['flops_source'])}.</p>")
        parts.append(f"<h3>{_esc(target['name'])}</h3>" + summary + latency + _roofline(target["name"], layers, peak) + _kernel_table(layers))
        parts += [f"<p class='note'>Note: {_esc(note)}</p>" for note in profile.get("notes", [])]
    return "\n".join(parts)


def _roofline(name: str, layers: list[dict], peak: dict) -> str:
    plotted = [k for k in layers if (k["intensity"] or 0) > 0 and (k["achieved_gflops"] or 0) > 0]
    peaks = {precision: peak[key] for precision, key in (("fp32", "fp32_gflops"), ("int8", "int8_gops")) if peak.get(key, 0) > 0}
    if not plotted or not peaks or peak.get("memory_bandwidth_gbs", 0) <= 0:
        return "<p class='note'>No roofline: FLOPs or the target's peak figures are unknown.</p>"
    chart = roofline_chart(
        [k["name"] for k in plotted], [k["intensity"] for k in plotted], [k["achieved_gflops"] for k in plotted],
        title=f"{name}: roofline, one point per kernel call", peaks=peaks, bandwidth=peak["memory_bandwidth_gbs"],
        groups=[k["precision"] for k in plotted], marks=[f"#{k['index']}" for k in plotted], width=CHART_WIDTH, height=460,
    )
    left_out = len(layers) - len(plotted)
    note = f" {left_out} calls without arithmetic (padding, copies) are not on it." if left_out else ""
    return chart + f"<p class='note'>Points are labelled with their row in the table below; int8 kernels are held to the int8 roof.{note}</p>"


def _kernel_table(layers: list[dict]) -> str:
    table = _table(["#", "kernel", "precision", "MFLOP", "KiB moved", "µs", "FLOP/B", "GFLOP/s", "bound", "% of roof"], [
        [str(k["index"]), _name(k["name"]), k["precision"], _num(k["flops"], ".3f", 1e-6), f"{k['bytes_moved'] / 1024:.1f}", f"{k['latency_us']:.1f}",
         _num(k["intensity"], ".1f"), _num(k["achieved_gflops"], ".1f"), k["bound"] or "-", _num(k["fraction"], ".1f", 100)] for k in layers
    ], classes=["num", "name", "", "num", "num", "num", "num", "num", "", "num"])
    return _fold(f"Kernel calls ({len(layers)})", table, len(layers))


def _histograms(targets: list[dict]) -> str:
    parts = []
    for target in targets:
        latency = target["latency"]
        if latency is None:
            parts.append(f"<h3>{_esc(target['name'])}</h3><p class='missing'>Not measured: this machine does not run {_esc(target['name'])} artifacts.</p>")
            continue
        values, stats = latency["ms"], latency["stats"]
        lo, cut = min(values), float(np.percentile(values, 99))
        edges = [lo + (cut - lo) * i / HISTOGRAM_BINS for i in range(HISTOGRAM_BINS + 1)] if cut > lo else HISTOGRAM_BINS
        beyond = sum(1 for v in values if v > cut) if cut > lo else 0
        title = f"{target['name']}: latency of {latency['runs']} inferences ({latency['threads']} threads)"
        chart = histogram_chart(values, edges, title, "milliseconds per inference", width=CHART_WIDTH)
        row = _table(["p50 ms", "p90 ms", "p99 ms", "mean ms", "min ms", "max ms", "CPU ms / inference"], [
            [f"{stats[key]:.3f}" for key in ("p50_ms", "p90_ms", "p99_ms", "mean_ms", "min_ms", "max_ms", "cpu_ms_per_inference")]
        ], classes=["num"] * 7)
        tail = f" The {beyond} slowest runs (above the 99th percentile, up to {max(values):.3f} ms) are beyond the axis." if beyond else ""
        parts.append(
            f"<h3>{_esc(target['name'])}</h3><p class='note'>Whole inferences on random inputs, inputs resident on the device, "
            f"after {latency['warmup']} warm-up runs.{tail}</p>" + chart + row
        )
    return "\n".join(parts)


def _gates(check: dict) -> str:
    head = ["target", "gate", "metric", "value", "required", "baseline", "change", "allowed", "result"]
    rows, row_classes = [], []
    for target in check["targets"]:
        for g in target["gates"]:
            rows.append([_esc(target["target"]), _esc(g["gate"]), f"{_esc(g['metric'])} ({_esc(g['output'])})", _num(g["value"], ".6g"),
                         _esc(g["threshold"] or "-"), _num(g["baseline"], ".6g"), _num(g["change"], "+.4g"), _num(g["allowed_change"], "+.4g"),
                         "PASS" if g["passed"] else "FAIL"])
            row_classes.append("pass" if g["passed"] else "fail")
    classes = ["", "name", "", "num", "num", "num", "num", "num", "result"]
    table = _table(head, rows, classes=classes, row_classes=row_classes, table_id="gates", table_class="gates")
    data = check["data"]
    baseline = f"against baseline {_esc(check['baseline']['path'])}" if check.get("baseline") else "no baseline"
    intro = f"<p class='note'>Measured on {_esc(data['path'])} ({data['samples']} samples), {baseline}.</p>"
    failures = "".join(f"<li>{_esc(f)}</li>" for f in check["failures"])
    return intro + table + (f"<ul class='failures'>{failures}</ul>" if failures else "")


# ---- small pieces ----


def _table(head: list[str], rows: list[list[str]], classes: list[str] | None = None, row_classes: list[str] | None = None,
           table_id: str = "", table_class: str = "") -> str:
    """Cells are HTML already (callers escape names with _esc or _name); header texts are escaped here."""
    classes = classes or [""] * len(head)
    attributes = (f" id='{table_id}'" if table_id else "") + (f" class='{table_class}'" if table_class else "")
    header = "".join(f"<th class='num'>{_esc(h)}</th>" if c == "num" else f"<th>{_esc(h)}</th>" for c, h in zip(classes, head))
    lines = [f"<table{attributes}>", f"<thead><tr>{header}</tr></thead>", "<tbody>"]
    for index, row in enumerate(rows):
        css = row_classes[index] if row_classes else ""
        cells = "".join(f"<td class='{c}'>{cell}</td>" if c else f"<td>{cell}</td>" for c, cell in zip(classes, row))
        lines.append(f"<tr class='{css}'>{cells}</tr>" if css else f"<tr>{cells}</tr>")
    return "\n".join(lines + ["</tbody>", "</table>"])


def _fold(summary: str, content: str, rows: int) -> str:
    return f"<details{' open' if rows <= OPEN_TABLE_ROWS else ''}><summary>{_esc(summary)}</summary>{content}</details>"


def _meta(rows: list[tuple[str, Any]]) -> str:
    return "<dl class='meta'>" + "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in rows) + "</dl>"


def _first_profile(targets: list[dict]) -> dict | None:
    return next((t["profile"] for t in targets if t["profile"] is not None), None)


def _file_text(entry: dict) -> str:
    return f"{entry['path']} ({_bytes(entry['bytes'])}, sha256 {entry['sha256'][:12]})"


def _bytes(count: int) -> str:
    for unit, size in (("MiB", 2**20), ("KiB", 2**10)):
        if count >= size:
            return f"{count / size:.1f} {unit}"
    return f"{count} B"


def _params(values: list[float], spec: str = ".4g") -> str:
    """A per-tensor value, or the spread of per-channel values."""
    if len(values) == 1:
        return format(values[0], spec)
    lo, hi = min(values), max(values)
    return f"{format(lo, spec)} (x{len(values)})" if lo == hi else f"{len(values)} ch: {format(lo, spec)} to {format(hi, spec)}"


def _range(values: list[float]) -> str:
    return f"[{values[0]:.4g}, {values[1]:.4g}]"


def _percent(fraction: float) -> str:
    return "0" if fraction == 0 else f"{fraction:.3%}"


def _num(value: float | None, spec: str, scale: float = 1.0) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    return format(value * scale, spec)


def _name(text: str) -> str:
    return f"<span class='mono'>{_esc(text)}</span>"


def _esc(value: Any) -> str:
    return html.escape(str(value), quote=True)
