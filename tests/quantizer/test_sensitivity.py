"""The sensitivity report: the SVG charts it is drawn with, its HTML page, and the real analysis on the demo model."""

from __future__ import annotations

import json
import math
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import pytest
from conftest import CALIB_DATA

from edgekit.plots import BAR_COLOUR, HIGHLIGHT_COLOUR, bar_chart, histogram_chart, line_chart, nice_ticks
from edgekit.quantizer import quantize
from edgekit.quantizer.plan import QUANTIZERS
from edgekit.quantizer.sensitivity_html import sensitivity_html

SVG = "{http://www.w3.org/2000/svg}"
NASTY = "a<b>&c"


def svg_root(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{SVG}svg" and root.get("viewBox") and root.find(f"{SVG}title") is not None
    return root


def bars(root: ET.Element) -> list[ET.Element]:
    return [e for e in root.iter(f"{SVG}rect") if e.get("class") == "bar"]


# nice_ticks ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lo", "hi", "count", "ticks"),
    [
        (0, 100, 5, [0, 25, 50, 75, 100]),  # raw step 25
        (0, 63.5, 5, [0, 20, 40, 60, 80]),  # raw 15.9 -> 20
        (34.9, 39.9, 5, [34, 36, 38, 40]),  # raw 1.25 -> 2, widened outward
        (-3, 7, 5, [-5, -2.5, 0, 2.5, 5, 7.5]),  # raw 2.5
        (0.12, 0.47, 4, [0, 0.2, 0.4, 0.6]),  # raw 0.117 -> 0.2
        (0, 0.3, 4, [0, 0.1, 0.2, 0.3]),  # no 0.30000000000000004
        (5, 5, 5, [4.5, 4.75, 5, 5.25, 5.5]),  # empty range widened by 10 %
        (0, 0, 5, [-1, -0.5, 0, 0.5, 1]),
        (-200, -180, 3, [-200, -190, -180]),
    ],
)
def test_nice_ticks(lo, hi, count, ticks):
    assert nice_ticks(lo, hi, count) == ticks


def test_nice_ticks_rejects_bad_input():
    with pytest.raises(ValueError):
        nice_ticks(0, math.inf)
    with pytest.raises(ValueError):
        nice_ticks(0, 1, 1)


# bar_chart ----------------------------------------------------------------------------------------


def test_bar_chart_one_bar_per_value_with_its_exact_value():
    values = [34.9122, 36.2061, 0.000123, 39.9116]
    svg = bar_chart(["c1", "c2", "tiny", "c4"], values, title="SQNR", x_label="dB", y_label="layer", highlight={0, 1})
    assert svg.count('<rect class="bar"') == len(values)
    found = bars(svg_root(svg))
    assert [b.find(f"{SVG}title").text for b in found] == ["c1: 34.9122", "c2: 36.2061", "tiny: 0.000123", "c4: 39.9116"]
    assert [b.get("fill") for b in found] == [HIGHLIGHT_COLOUR, HIGHLIGHT_COLOUR, BAR_COLOUR, BAR_COLOUR]
    widths = [float(b.get("width")) for b in found]
    assert widths[3] > widths[1] > widths[0] > widths[2] > 0  # bar length follows the value
    assert [float(b.get("y")) for b in found] == sorted(float(b.get("y")) for b in found)  # in the order given, top down


def test_bar_chart_negative_values_point_left_of_zero():
    svg = bar_chart(["down", "up"], [-12.5, 30.0], title="t", x_label="v", y_label="")
    root = svg_root(svg)
    down, up = bars(root)
    zero = next(float(e.get("x1")) for e in root.iter(f"{SVG}line") if e.get("class") == "axis")
    assert float(down.get("x")) + float(down.get("width")) == pytest.approx(zero)
    assert float(up.get("x")) == pytest.approx(zero)
    assert float(up.get("width")) == pytest.approx(float(down.get("width")) * 30 / 12.5, rel=0.01)
    ticks = [e.text for e in root.iter(f"{SVG}text") if e.get("class") == "tick"]
    assert ticks[0].startswith("-") and "0" in ticks


def test_bar_chart_escapes_labels_and_title():
    svg = bar_chart([NASTY], [1.5], title=f"title {NASTY}", x_label=NASTY, y_label=NASTY)
    assert NASTY not in svg and "a&lt;b&gt;&amp;c" in svg
    root = svg_root(svg)
    assert root.find(f"{SVG}title").text == f"title {NASTY}"
    assert bars(root)[0].find(f"{SVG}title").text == f"{NASTY}: 1.5"


def test_bar_chart_single_bar_empty_and_deterministic():
    one = bar_chart(["only"], [7.0], title="one", x_label="", y_label="")
    assert len(bars(svg_root(one))) == 1
    assert one == bar_chart(["only"], [7.0], title="one", x_label="", y_label="")
    empty = bar_chart([], [], title="none", x_label="", y_label="")
    assert bars(svg_root(empty)) == [] and "no data" in empty


def test_bar_chart_long_labels_are_shortened_with_the_full_name_as_tooltip():
    name = "/model/encoder/layers.11/self_attn/out_proj/MatMul_quant_with_a_very_long_tail (MatMul)"
    root = svg_root(bar_chart([name], [20.0], title="t", x_label="", y_label="", width=600))
    assert int(root.get("width")) > 600  # grown so the bars keep their room
    label = next(e for e in root.iter(f"{SVG}text") if e.get("class") == "label")
    head, tail = label.text.split("\u2026")  # cut in the middle: both ends tell layers apart
    assert name.startswith(head) and name.endswith(tail) and head and tail and len(label.text) < len(name)
    assert label.find(f"{SVG}title").text == name


def test_bar_chart_rejects_mismatch_and_non_finite():
    with pytest.raises(ValueError):
        bar_chart(["a"], [1.0, 2.0], title="t", x_label="", y_label="")
    with pytest.raises(ValueError):
        bar_chart(["a"], [math.nan], title="t", x_label="", y_label="")


# line_chart and histogram_chart ----------------------------------------------------------------------


def test_line_chart_points_and_thinned_labels():
    labels = [f"node_{i}" for i in range(200)]
    series = {"float": [float(i % 7) for i in range(200)], "int8": [float(i % 5) - 0.5 for i in range(200)]}
    svg = line_chart(labels, series, title="two", y_label="dB")
    root = svg_root(svg)
    points = [e for e in root.iter(f"{SVG}circle") if e.get("class") == "point"]
    assert len(points) == 400 and points[1].find(f"{SVG}title").text == "node_1 (float): 1"
    assert len([e for e in root.iter(f"{SVG}polyline")]) == 2
    shown = [e for e in root.iter(f"{SVG}text") if e.get("class") == "tick" and e.text.startswith("node_")]
    assert 10 < len(shown) < 100 and all("rotate(" in e.get("transform") for e in shown)


def test_line_chart_few_short_labels_stay_horizontal_and_escaped():
    root = svg_root(line_chart(["a", NASTY, "c"], {"s": [1.0, 2.0, 3.0]}, title="t", y_label=""))
    shown = [e for e in root.iter(f"{SVG}text") if e.get("class") == "tick" and not e.text[0].isdigit()]
    assert [e.text for e in shown] == ["a", NASTY, "c"] and not any(e.get("transform") for e in shown)
    with pytest.raises(ValueError):
        line_chart(["a"], {"s": [1.0, 2.0]}, title="t", y_label="")


def test_histogram_counts_every_value_once():
    values = [0.0, 0.1, 0.2, 0.2, 0.9, 1.0]
    root = svg_root(histogram_chart(values, 5, "latency", "ms"))
    tips = [b.find(f"{SVG}title").text for b in bars(root)]
    assert len(tips) == 5 and sum(int(t.rsplit(": ", 1)[1]) for t in tips) == len(values)
    assert tips[0] == "[0, 0.2): 2" and tips[-1] == "[0.8, 1]: 2"  # the last bin holds its upper edge
    edges = svg_root(histogram_chart(values, [0.0, 0.5, 2.0], "latency", "ms"))
    assert [b.find(f"{SVG}title").text for b in bars(edges)] == ["[0, 0.5): 4", "[0.5, 2]: 2"]
    with pytest.raises(ValueError):
        histogram_chart(values, [1.0, 1.0], "t", "x")


# sensitivity_html ----------------------------------------------------------------------------------

REPORT = {
    "format": "edgekit-sensitivity/1",
    "model": "models/<net>.onnx",
    "recipe": "int8-default",
    "samples": 32,
    "layers": [
        {"rank": 1, "node": NASTY, "op_type": "Conv", "sqnr_db": 12.5, "cosine_mean": 0.97},
        {"rank": 2, "node": "conv2", "op_type": "Conv", "sqnr_db": 25.25, "cosine_mean": 0.999},
        {"rank": 3, "node": "fc", "op_type": "Gemm", "sqnr_db": 41.0, "cosine_mean": 1.0},
        {"rank": 4, "node": "add", "op_type": "Add", "sqnr_db": 55.0, "cosine_mean": 1.0},
    ],
    "accumulated": [
        {"node": NASTY, "op_type": "Conv", "tensor": "t<0>", "sqnr_db": 30.0, "cosine_mean": 0.9999},
        {"node": "conv2", "op_type": "Conv", "tensor": "t1", "sqnr_db": 22.0, "cosine_mean": 0.999},
        {"node": "add", "op_type": "Add", "tensor": "t2", "sqnr_db": 21.0, "cosine_mean": 0.998},
        {"node": "fc", "op_type": "Gemm", "tensor": "logits", "sqnr_db": 20.5, "cosine_mean": 0.998},
    ],
}

VOID = {"meta", "br", "img", "hr", "input", "link"}


class PageParser(HTMLParser):
    """Checks that every element closes in order; collects the cells of each table row."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.open: list[str] = []
        self.rows: dict[str, list[list[str]]] = {}
        self.table: str | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.open.append(tag)
        if tag == "table":
            self.table = dict(attrs).get("class")
            self.rows[self.table] = []
        elif tag == "tr":
            self.rows[self.table].append([])
        elif tag == "td":
            self.cell = []

    def handle_endtag(self, tag):
        assert self.open and self.open[-1] == tag, f"</{tag}> closes <{self.open[-1] if self.open else None}>"
        self.open.pop()
        if tag == "td":
            self.rows[self.table][-1].append("".join(self.cell))
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell.append(data)


def parse_page(page: str) -> PageParser:
    parser = PageParser()
    parser.feed(page)
    parser.close()
    assert parser.open == []
    return parser


def test_sensitivity_html_is_well_formed_with_rows_in_rank_order():
    page = sensitivity_html(REPORT)
    parser = parse_page(page)
    ranked = [row for row in parser.rows["ranked"] if row]
    assert [row[:3] for row in ranked] == [["1", NASTY, "Conv"], ["2", "conv2", "Conv"], ["3", "fc", "Gemm"], ["4", "add", "Add"]]
    assert [row[3] for row in ranked] == ["12.50", "25.25", "41.00", "55.00"]
    accumulated = [row for row in parser.rows["accumulated"] if row]
    assert [row[1] for row in accumulated] == [NASTY, "conv2", "add", "fc"] and accumulated[0][3] == "t<0>"
    assert "<script" not in page and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_sensitivity_html_escapes_names_and_embeds_valid_svg():
    page = sensitivity_html(REPORT)
    assert NASTY not in page and "<net>" not in page and "t<0>" not in page
    assert "a&lt;b&gt;&amp;c" in page and "models/&lt;net&gt;.onnx" in page
    svgs = [svg_root(s) for s in re.findall(r"<svg.*?</svg>", page, re.DOTALL)]
    assert len(svgs) == 2
    ranked_bars = bars(svgs[0])
    assert [b.find(f"{SVG}title").text for b in ranked_bars] == [f"{r['node']} ({r['op_type']}): {r['sqnr_db']:g}" for r in REPORT["layers"]]
    assert [b.get("data-highlight") for b in ranked_bars] == ["true", "true", "true", None]
    points = [e for e in svgs[1].iter(f"{SVG}circle") if e.get("class") == "point"]
    assert [p.find(f"{SVG}title").text for p in points] == [f"{r['node']}: {r['sqnr_db']:g}" for r in REPORT["accumulated"]]


def test_sensitivity_html_without_layers():
    page = sensitivity_html({**REPORT, "layers": [], "accumulated": []})
    parse_page(page)
    assert "No layer runs in int8" in page and page.count("no data") == 2


# the real analysis ---------------------------------------------------------------------------------


def test_analyze_demo_model(tmp_path, demo_onnx):
    result = quantize(demo_onnx, CALIB_DATA, tmp_path / "digits.int8.onnx", analyze=True)
    json_path, html_path = result.extra_files
    assert json_path.name == "digits.int8.sensitivity.json" and html_path.name == "digits.int8.sensitivity.html"
    report = json.loads(json_path.read_text())
    graph_order = [n["name"] for n in result.record["nodes"]]
    fused = {f["activation"]: f["producer"] for f in result.record["fused"]}
    computing = [
        n["name"] for n in result.record["nodes"]
        if n["precision"] == "int8" and not QUANTIZERS[n["op_type"]].passes_scale and n["name"] not in fused
    ]
    layers = report["layers"]

    # Each int8 layer exactly once; a ReLU that runs inside its producer's output belongs to that layer.
    assert sorted(r["node"] for r in layers) == sorted(computing)
    for row in layers:
        assert row["nodes"] == [row["node"], *[a for a, p in fused.items() if p == row["node"]]]
    assert [r["rank"] for r in layers] == list(range(1, len(computing) + 1))
    sqnr = [r["sqnr_db"] for r in layers]
    assert sqnr == sorted(sqnr) and all(math.isfinite(s) and 0 < s < 200 for s in sqnr)
    assert all(0.9 < r["cosine_mean"] <= 1.0 for r in layers)

    accumulated = [r["node"] for r in report["accumulated"]]
    assert accumulated == computing  # every layer's output, in graph order
    assert [graph_order.index(n) for n in accumulated] == sorted(graph_order.index(n) for n in accumulated)
    assert all(math.isfinite(r["sqnr_db"]) and 0 < r["sqnr_db"] < 200 for r in report["accumulated"])

    # Quantization noise from separate layers roughly adds up: the single-layer numbers must predict the
    # output SQNR of the fully quantized model (a shared error left in every "alone" model breaks this).
    predicted = -10 * math.log10(sum(10 ** (-s / 10) for s in sqnr))
    at_output = next(r["sqnr_db"] for r in report["accumulated"] if r["tensor"] == "logits")
    assert predicted == pytest.approx(at_output, abs=3.0)

    page = html_path.read_text()
    parse_page(page)
    ranked_svg = svg_root(re.search(r"<svg.*?</svg>", page, re.DOTALL).group(0))
    assert len(bars(ranked_svg)) == len(layers)
    assert [b.find(f"{SVG}title").text.split(" (")[0] for b in bars(ranked_svg)] == [r["node"] for r in layers]
