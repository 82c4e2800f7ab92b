"""Bad input to `edgekit quantize`: one clear stderr line naming the problem, exit 2, nothing written."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import CALIB_DATA, one_line_error


def calib_with(tmp_path: Path, **changes) -> Path:
    with np.load(CALIB_DATA) as data:
        arrays = {name: data[name] for name in data.files}
    for name, value in changes.items():
        if value is None:
            arrays.pop(name)
        else:
            arrays[name] = value
    path = tmp_path / "calib.npz"
    np.savez(path, **arrays)
    return path


def images(count: int = 40) -> np.ndarray:
    with np.load(CALIB_DATA) as data:
        return data["image"][:count].copy()


def with_nan() -> np.ndarray:
    x = images()
    x[7, 0, 0, 3, 3] = np.nan
    return x


CASES = {
    "missing model": (lambda t: {"model": t / "nope.onnx"}, "nope.onnx"),
    "not onnx": (lambda t: {"model": _write(t / "junk.onnx", b"not a model at all")}, "not"),
    "missing calib": (lambda t: {"calib": t / "nope.npz"}, "nope.npz"),
    "nan in calib": (lambda t: {"calib": calib_with(t, image=with_nan())}, "sample 7 contains NaN or Inf"),
    "wrong shape": (lambda t: {"calib": calib_with(t, image=np.zeros((40, 1, 3, 32, 32), np.float32))}, "expected (N, 1, 1, 32, 32)"),
    "wrong dtype": (lambda t: {"calib": calib_with(t, image=images().astype(np.float64))}, "float64, the model expects float32"),
    "missing array": (lambda t: {"calib": calib_with(t, image=None, other=np.zeros(3))}, "'other' is not a model input"),
    "unknown preset": (lambda t: {"recipe": "int8-fastest"}, "int8-default"),
    "bad recipe key": (lambda t: {"recipe": _write(t / "r.toml", b'name = "r"\n[activations]\nmethd = "mse"\n')}, "activations.methd"),
    "bad recipe value": (lambda t: {"recipe": _write(t / "r.toml", b'name = "r"\n[activations]\nmethod = "kl"\n')}, "activations.method"),
    "recipe names a missing node": (lambda t: {"recipe": _write(t / "r.toml", b'name = "r"\n[nodes."node_Conv_99"]\nexclude = true\n')}, 'nodes."node_Conv_99"'),
    "bad eval spec": (lambda t: {"extra": ["--max-drop", "1", "--eval", "accuracy"]}, "--eval 'accuracy'"),
    "top1 without labels": (lambda t: {"extra": ["--max-drop", "1", "--eval", "top1", "--eval-data", calib_with(t, label=None)]}, "needs labels"),
    "eval module without function": (lambda t: {"extra": ["--max-drop", "1", "--eval", f"{_write(t / 'e.py', b'x = 1')}:evaluate"]}, "no function 'evaluate'"),
    "eval module missing": (lambda t: {"extra": ["--max-drop", "1", "--eval", f"{t / 'nope.py'}:evaluate"]}, "--eval file not found: "),
    "eval module fails to import": (
        lambda t: {"extra": ["--max-drop", "1", "--eval", f"{_write(t / 'e.py', b'raise RuntimeError(' + repr('first line' + chr(10) + 'second').encode() + b')')}:evaluate"]},
        "failed to import: RuntimeError: first line. fix the evaluation module",
    ),
}


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_is_one_line_and_exit_2(case, tmp_path, cli, demo_onnx):
    make, expected = CASES[case]
    options = {"model": demo_onnx, "calib": CALIB_DATA, "recipe": None, "extra": [], **make(tmp_path)}
    out = tmp_path / "out" / "m.int8.onnx"
    args = ["quantize", options["model"], "--calib", options["calib"], "-o", out, *options["extra"]]
    if options["recipe"] is not None:
        args += ["--recipe", options["recipe"]]
    result = cli(*args)
    assert result.exit_code == 2, result.stdout + result.stderr
    line = one_line_error(result)
    assert expected in line, line
    assert not out.exists() and not out.with_name("m.int8.quant.json").exists()
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_few_samples_warn_but_quantize(tmp_path, cli, demo_onnx):
    calib = tmp_path / "few.npz"
    np.savez(calib, image=images(8))
    out = tmp_path / "m.int8.onnx"
    result = cli("quantize", demo_onnx, "--calib", calib, "-o", out)
    assert result.exit_code == 0, result.stderr
    assert "8 samples" in result.stderr and "unreliable" in result.stderr
    assert out.exists()


def test_debug_shows_the_traceback(tmp_path, demo_onnx):
    from click.testing import CliRunner

    from edgekit.cli import main
    from edgekit.errors import InputError

    with pytest.raises(InputError):
        CliRunner().invoke(main, ["--debug", "quantize", str(demo_onnx), "--calib", str(tmp_path / "nope.npz"), "-o", str(tmp_path / "m.onnx")], catch_exceptions=False)
