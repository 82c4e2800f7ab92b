"""export: factory and .pt2 sources, names, dynamic axes, and the parity gate against PyTorch."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

import edgekit
from edgekit.errors import GateFailure
from edgekit.reference import Reference

from conftest import DEMO_FACTORY, REPO, one_line_error

MODELS = REPO / "tests" / "torch_models.py"


def _torch_run(factory_name: str, *inputs: torch.Tensor) -> list[np.ndarray]:
    import importlib.util

    spec = importlib.util.spec_from_file_location("torch_models_for_test", MODELS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model, example = getattr(module, factory_name)()
    with torch.no_grad():
        out = model(*(inputs or example))
    return [t.numpy() for t in (out if isinstance(out, tuple) else (out,))]


def test_factory_export_writes_checked_onnx_with_given_names(demo_onnx):
    model = onnx.load(demo_onnx)
    onnx.checker.check_model(model, full_check=True)
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["logits"]
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 18


@pytest.mark.parametrize("factory", ["encoder", "mobile", "two_heads"])
def test_varied_architectures_export_within_tolerance(factory, tmp_path):
    path = tmp_path / f"{factory}.onnx"
    report = edgekit.export(f"{MODELS}:{factory}", path)
    assert report.passed and path.is_file()
    model = onnx.load(path)
    assert len(report.outputs) == len(model.graph.output) == len(_torch_run(factory))
    assert all(o.max_abs <= 1e-4 for o in report.outputs)


def test_exported_program_file_is_a_source(tmp_path):
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 6 * 6, 2)).eval()
    x = torch.randn(1, 3, 8, 8)
    program_path = tmp_path / "net.pt2"
    torch.export.save(torch.export.export(module, (x,)), program_path)

    report = edgekit.export(program_path, tmp_path / "net.onnx", input_names=["x"], output_names=["y"])

    assert report.passed
    got = Reference(tmp_path / "net.onnx")({"x": x.numpy()})["y"]
    np.testing.assert_allclose(got, module(x).detach().numpy(), atol=1e-5)


def test_dynamic_axes_make_the_batch_symbolic(tmp_path, cli):
    path = tmp_path / "digits_dyn.onnx"
    result = cli("export", DEMO_FACTORY, "-o", path, "--input-name", "image", "--output-name", "logits", "--dynamic", "image:0=batch")
    assert result.exit_code == 0, result.stderr

    dim = onnx.load(path).graph.input[0].type.tensor_type.shape.dim[0]
    assert dim.dim_param == "batch"
    batch = np.random.default_rng(0).standard_normal((3, 1, 32, 32)).astype(np.float32)
    got = Reference(path)({"image": batch})["logits"]
    from edgekit.demo.digits_cnn import factory

    model, _ = factory()
    with torch.no_grad():
        np.testing.assert_allclose(got, model(torch.from_numpy(batch)).numpy(), atol=1e-4)


def test_parity_beyond_tolerance_fails_with_exit_1_and_writes_nothing(tmp_path, cli):
    path = tmp_path / "chain.onnx"
    json_path = tmp_path / "parity.json"
    result = cli("export", f"{MODELS}:deep_matmul_chain", "-o", path, "--atol", "0", "--rtol", "0", "--json", json_path)

    assert result.exit_code == 1
    line = one_line_error(result, prefix="edgekit: gate failed: ").replace("edgekit: gate failed: ", "")
    assert "differs from PyTorch on output" in line and "atol 0" in line
    assert not path.exists()
    report = json.loads(json_path.read_text())
    assert report["passed"] is False and report["outputs"][0]["max_abs"] > 0


def test_parity_failure_raises_gate_failure_in_python(tmp_path):
    with pytest.raises(GateFailure) as info:
        edgekit.export(f"{MODELS}:deep_matmul_chain", tmp_path / "chain.onnx", atol=0.0, rtol=0.0)
    assert info.value.exit_code == 1
    assert info.value.report.outputs[0].max_abs > 0


def test_export_prints_per_output_errors(tmp_path, cli):
    result = cli("export", f"{MODELS}:two_heads", "-o", tmp_path / "two.onnx")
    assert result.exit_code == 0, result.stderr
    for column in ("max abs", "max rel"):
        assert column in result.stdout
    assert result.stdout.count(" ok ") == 2


def test_factory_must_return_model_and_inputs(tmp_path, cli):
    result = cli("export", f"{MODELS}:not_a_tuple", "-o", tmp_path / "x.onnx")
    assert result.exit_code == 2
    assert "must return (model, example_inputs)" in one_line_error(result)
