"""edgekit report: the page of a demo build, rendered in headless Chromium; the HTML builder and the roofline chart.

Chromium (scripts/setup_report.sh installs it) loads the page from disk with console logging on:
every console message (a script error, a blocked external load under the page's
Content-Security-Policy) appears on stderr as a `CONSOLE` line, and the page must produce none.
docs/report-demo.png is the demo's report, made the same way:

    edgekit pipeline && edgekit report build/digits
    chromium --headless=new --no-sandbox --hide-scrollbars --window-size=1280,HEIGHT \\
        --screenshot=docs/report-demo.png file://$PWD/build/digits/report.html     # HEIGHT: the page's, in px
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, one_line_error

from edgekit.files import sha256_file
from edgekit.plots import roofline_chart
from edgekit.report import report_html
from edgekit.target_spec import load_target

GATES = ["accuracy", "top3_accuracy", "top1_agreement", "cosine_min", "sqnr_db", "max_abs"]
SECTION_IDS = ["model", "target", "quantization", "sensitivity", "layers", "latency", "gates"]
CONSOLE_LINE = re.compile(r":CONSOLE[:(].*")


# ---- headless Chromium ----


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        pytest.fail("chromium not found: run scripts/setup_report.sh (scripts/test.sh does)")
    return path


def render(page: Path, profile: Path, *extra: str) -> tuple[str, list[str]]:
    """Load `page` in headless Chromium: (the DOM after load, the console messages it logged)."""
    command = [chromium(), "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0",
               f"--user-data-dir={profile}", *extra, "--dump-dom", page.resolve().as_uri()]
    result = subprocess.run(command, capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout, [match.group(0) for match in CONSOLE_LINE.finditer(result.stderr)]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


# ---- the demo build ----


def _env() -> dict[str, str]:
    return dict(os.environ, PATH=f"{os.path.dirname(sys.executable)}:{os.environ['PATH']}")


@pytest.fixture(scope="module")
def demo_build(tmp_path_factory) -> Path:
    """The demo project (model and data linked) after `edgekit pipeline` and `edgekit report`."""
    folder = tmp_path_factory.mktemp("report") / "demo"
    folder.mkdir()
    for name in ("edgekit", "calibration_data"):
        (folder / name).symlink_to(REPO / name)
    shutil.copyfile(REPO / "edgekit.toml", folder / "edgekit.toml")
    for command in (["pipeline"], ["report", "build/digits", "--runs", "100"]):
        result = subprocess.run([sys.executable, "-m", "edgekit", "-q", *command], cwd=folder, env=_env(),
                                capture_output=True, text=True, timeout=600, check=False)
        assert result.returncode == 0, result.stderr[-3000:]
    assert "wrote build/digits/report.html" in result.stdout
    return folder / "build" / "digits"


@pytest.fixture(scope="module")
def rendered(demo_build, tmp_path_factory) -> tuple[str, list[str]]:
    return render(demo_build / "report.html", tmp_path_factory.mktemp("chromium"))


def _gate_table(dom: str) -> str:
    match = re.search(r'<table id="gates"[^>]*>(.*?)</table>', dom, re.DOTALL)
    assert match, "no table with id=gates in the rendered DOM"
    return match.group(1)


@pytest.mark.slow
def test_pipeline_records_the_sensitivity_report(demo_build):
    record = json.loads((demo_build / "build.json").read_text())
    quantize = next(stage for stage in record["stages"] if stage["stage"] == "quantize")
    outputs = {entry["path"]: entry["sha256"] for entry in quantize["outputs"]}
    assert list(outputs) == ["model.int8.onnx", "model.int8.quant.json", "model.int8.sensitivity.json", "model.int8.sensitivity.html"]
    assert all(sha256_file(demo_build / path) == digest for path, digest in outputs.items())
    assert quantize["command"].endswith(" --analyze")
    sensitivity = json.loads((demo_build / "model.int8.sensitivity.json").read_text())
    assert sensitivity["format"] == "edgekit-sensitivity/1" and len(sensitivity["layers"]) == 7  # 4 convs, ReduceMean, Add, Gemm


@pytest.mark.slow
def test_report_renders_in_chromium_without_console_messages(rendered):
    dom, console = rendered
    assert console == []
    assert "<h1>digits: build report</h1>" in dom
    assert 'id="verdict">PASSED: 6 of 6 gates passed</div>' in dom


@pytest.mark.slow
def test_rendered_gate_table_has_one_passing_row_per_gate(rendered, demo_build):
    table = _gate_table(rendered[0])
    rows = re.findall(r'<tr class="(pass|fail)">(.*?)</tr>', table, re.DOTALL)
    assert [cls for cls, _ in rows] == ["pass"] * len(GATES)
    names = [re.findall(r"<td[^>]*>(.*?)</td>", cells)[1] for _, cells in rows]
    assert [re.sub(r"<[^>]+>", "", name) for name in names] == GATES
    assert all('<td class="result">PASS</td>' in cells for _, cells in rows)
    check = json.loads((demo_build / "check.json").read_text())
    assert [g["gate"] for g in check["targets"][0]["gates"]] == GATES


@pytest.mark.slow
def test_rendered_page_has_every_section_in_order_and_its_charts(rendered):
    dom = rendered[0]
    positions = [dom.index(f'id="section-{key}"') for key in SECTION_IDS]
    assert positions == sorted(positions)
    charts = re.findall(r'<svg xmlns="http://www.w3.org/2000/svg" class="chart ([a-z-]+)"', dom)
    # sensitivity: ranked bars + accumulated line; per target: kernel latency bars, roofline, histogram
    assert sorted(charts) == sorted(["bar-chart", "line-chart", "bar-chart", "roofline", "histogram"])
    roofline = re.search(r'class="chart roofline".*?</svg>', dom, re.DOTALL).group(0)
    peak = load_target("x86_64").peak  # the roofs are the target TOML's figures, read where they live
    assert roofline.count('class="point"') >= 8 and f"int8 {peak.int8_gops:g}" in roofline and f"{peak.memory_bandwidth_gbs:g} GB/s" in roofline
    histogram = re.search(r'class="chart histogram".*?</svg>', dom, re.DOTALL).group(0)
    assert "latency of 100 inferences" in histogram and histogram.count('class="bar"') == 30


@pytest.mark.slow
def test_report_is_self_contained(demo_build):
    page = (demo_build / "report.html").read_text()
    assert "<script" not in page and "url(" not in page and " src=" not in page
    assert all(link.startswith("#") for link in re.findall(r'href=[\'"]([^\'"]*)', page))
    assert "Content-Security-Policy" in page


@pytest.mark.slow
def test_screenshot_of_the_report(demo_build, tmp_path):
    shot = tmp_path / "report.png"
    render(demo_build / "report.html", tmp_path / "profile", "--hide-scrollbars", "--window-size=1280,2000", f"--screenshot={shot}")
    assert png_size(shot) == (1280, 2000)


def test_console_check_fails_on_a_script_error_and_a_blocked_load(tmp_path):
    # The page's own policy: any script or external load must show up as a console message.
    csp = "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'\">"
    broken = tmp_path / "broken.html"
    broken.write_text(f"<!DOCTYPE html><html><head>{csp}</head><body><img src='missing.png'><p>text</p></body></html>")
    _, console = render(broken, tmp_path / "profile")
    assert len(console) == 1 and "violates the following Content Security Policy" in console[0]
    scripted = tmp_path / "scripted.html"
    scripted.write_text("<!DOCTYPE html><html><body><script>undefinedFunction();</script></body></html>")
    _, console = render(scripted, tmp_path / "profile")
    assert len(console) == 1 and "Uncaught ReferenceError: undefinedFunction is not defined" in console[0]


@pytest.mark.slow
def test_report_output_option_and_errors(cli, demo_build, tmp_path):
    output = tmp_path / "pages" / "digits.html"
    result = cli("report", demo_build, "-o", output, "--runs", "5", "--profile-runs", "2")
    assert result.exit_code == 0 and output.is_file()
    assert [p.name for p in output.parent.iterdir()] == ["digits.html"]  # nothing half-written beside it

    missing = cli("report", tmp_path / "nowhere")
    assert missing.exit_code == 2 and "build folder not found" in one_line_error(missing)

    incomplete = tmp_path / "incomplete"
    shutil.copytree(demo_build, incomplete, symlinks=True)
    (incomplete / "build.json").unlink()
    result = cli("report", incomplete)
    assert result.exit_code == 2 and "no complete build" in one_line_error(result) and "edgekit pipeline" in result.stderr
    assert (incomplete / "report.html").read_bytes() == (demo_build / "report.html").read_bytes()  # left as it was

    tampered = tmp_path / "tampered"
    shutil.copytree(demo_build, tampered, symlinks=True)
    with (tampered / "check.json").open("a") as f:
        f.write(" ")
    result = cli("report", tampered)
    assert result.exit_code == 2 and "check report" in one_line_error(result) and "changed since the build" in result.stderr


# ---- the HTML builder, on a hand-made build ----


def _hand_made(**changes) -> dict:
    """A report dict as collect_report writes it: a float build for an arm64 board (not measured here), one gate failing."""
    hostile = "<script>alert('x')</script>"
    data = {
        "project": {"name": f"demo {hostile}", "file": "/p/edgekit.toml"},
        "build": "build/demo", "created": "2026-01-02T03:04:05Z", "versions": {"edgekit": "0.1.0", "tvm": "0.27.0"},
        "deployed_model": "model.onnx",
        "model": {
            "source": "model.onnx", "opset": 17,
            "reference": {"path": "model.onnx", "bytes": 2048, "sha256": "ab" * 32}, "deployed": {"path": "model.onnx", "bytes": 2048, "sha256": "ab" * 32},
            "inputs": [{"name": "x&y", "shape": [1, 3], "dtype": "float32"}],
            "outputs": [{"name": "out", "shape": [1, 2], "dtype": "float32"}], "parity": None,
        },
        "stages": [{"stage": "export", "command": f"cp a.onnx '{hostile}'", "seconds": 0.01}],
        "targets": [{
            "name": "arm64", "artifact": "artifacts/arm64", "description": "a board", "device": "cpu", "pipeline": "edgekit CPU pipeline",
            "cpu": {"triple": "aarch64-linux-gnu", "mcpu": "cortex-a76", "cores": 4, "simd_bits": 128},
            "peak": {"fp32_gflops": 50.0, "int8_gops": 200.0, "memory_bandwidth_gbs": 10.0}, "accelerator": None, "integer": None,
            "library": {"path": "artifacts/arm64/model.so", "bytes": 4096, "sha256": "cd" * 32}, "runs_here": False, "profile": None, "latency": None,
        }],
        "quantization": None, "sensitivity": None,
        "check": {
            "data": {"path": "eval.npz", "samples": 10}, "baseline": None, "passed": False,
            "failures": [f"arm64: gate {hostile}: max_abs of out = 2, above the maximum 1"],
            "targets": [{"target": "arm64", "gates": [
                {"gate": "accuracy", "metric": "accuracy", "output": "out", "value": 0.9, "threshold": ">= 0.8",
                 "baseline": None, "change": None, "allowed_change": None, "passed": True},
                {"gate": hostile, "metric": "max_abs", "output": "out", "value": 2.0, "threshold": "<= 1",
                 "baseline": 0.5, "change": 1.5, "allowed_change": 0.1, "passed": False},
            ]}],
        },
    }
    return data | changes


def test_page_escapes_every_string_from_the_build():
    page = report_html(_hand_made())
    assert "<script" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<title>edgekit report: demo &lt;script&gt;" in page and "x&amp;y" in page


def test_page_colours_the_failing_gate_and_says_failed():
    page = report_html(_hand_made())
    table = re.search(r"<table id='gates' class='gates'>(.*?)</table>", page, re.DOTALL).group(1)
    rows = re.findall(r"<tr class='(pass|fail)'>(.*?)</tr>", table, re.DOTALL)
    assert [cls for cls, _ in rows] == ["pass", "fail"]
    assert "<td class='result'>PASS</td>" in rows[0][1] and "<td class='result'>FAIL</td>" in rows[1][1]
    assert "<td class='num'>+1.5</td>" in rows[1][1] and "<td class='num'>0.5</td>" in rows[1][1]
    assert "<div class='verdict fail' id='verdict'>FAILED: 1 of 2 gates passed</div>" in page
    assert "<ul class='failures'><li>arm64: gate &lt;script&gt;" in page
    assert "table.gates tr.fail td.result { background: #f3c4c0; color: #a12228;" in page


def test_page_says_why_a_section_is_empty():
    page = report_html(_hand_made())
    assert "Float build: the project has no [quantize] table" in page
    assert "No sensitivity report in this build" in page
    assert page.count("Not measured: this machine does not run arm64 artifacts.") == 2  # per-layer latency, histogram
    assert "<svg" not in page
    assert [m for m in re.findall(r"id='section-([a-z]+)'", page)] == SECTION_IDS


def test_page_forbids_scripts_and_external_loads():
    page = report_html(_hand_made())
    assert "<meta http-equiv='Content-Security-Policy' content=\"default-src 'none'; style-src 'unsafe-inline'\">" in page


# ---- the roofline chart ----


def test_roofline_places_points_on_log_axes_under_the_roofs():
    svg = roofline_chart(["conv", "pad"], [100.0, 1.0], [40.0, 2.0], title="roof", peaks={"int8": 300.0, "fp32": 100.0}, bandwidth=10.0,
                         groups=["int8", "fp32"], marks=["#0", "#1"], width=700, height=400)
    # x decades 10^0..10^2 (ridges 10 and 30, intensities 1 and 100) over pixels 64..676: 306 px per decade
    points = re.findall(r'<circle class="point" cx="([\d.]+)" cy="([\d.]+)"', svg)
    assert [float(x) for x, _ in points] == [676.0, 64.0]
    assert '<title>conv: 100 FLOP/byte, 40 GFLOP/s (int8)</title>' in svg
    assert svg.count('class="roof compute-roof"') == 2 and svg.count('class="roof memory-roof"') == 1
    assert ">int8 300<" in svg and ">10 GB/s<" in svg and ">#1<" in svg
    assert svg.count('<circle class="legend"') == 2  # one dot per group


def test_roofline_rejects_what_a_log_axis_cannot_show():
    with pytest.raises(ValueError, match="positive"):
        roofline_chart(["pad"], [0.0], [1.0], title="t", peaks={"fp32": 10.0}, bandwidth=1.0)
    with pytest.raises(ValueError, match="labels"):
        roofline_chart(["a", "b"], [1.0], [1.0], title="t", peaks={"fp32": 10.0}, bandwidth=1.0)
    with pytest.raises(ValueError, match="non-finite"):
        roofline_chart(["a"], [float("nan")], [1.0], title="t", peaks={"fp32": 10.0}, bandwidth=1.0)
