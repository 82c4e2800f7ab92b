"""The artifact contract (edgekit/artifact.py): the manifest's target is a TargetSpec, whether an
artifact runs here is decided in one place, and kernel costs are looked up by the VM's names."""

from __future__ import annotations

import json
import platform
from dataclasses import replace

import pytest

from edgekit.artifact import Manifest, read_manifest
from edgekit.errors import ArtifactError
from edgekit.files import read_versioned_json
from edgekit.onnx_model import TensorSpec
from edgekit.target_spec import TargetSpec, load_target


def manifest(target: TargetSpec, runtime: dict | None = None, kernels: dict | None = None) -> Manifest:
    spec = TensorSpec("x", (1, 4), "float32")
    return Manifest(
        name="m", library="model.so", inputs=[spec], outputs=[spec], target=target, tvm_target=target.tvm_cpu_target(),
        source={}, versions={}, build={}, runtime=runtime or {}, kernels=kernels or {},
    )


@pytest.mark.parametrize("name", ["x86_64", "x86_64-avx512", "arm64", "rk3588", "orin"])
def test_the_target_survives_the_manifest_round_trip(name):
    target = load_target(name)
    again = Manifest.from_json(manifest(target).to_json())
    assert again.target == target and again.target.to_dict() == target.to_dict()
    assert json.loads(manifest(target).to_json())["target"] == json.loads(json.dumps(target.to_dict()))


def test_an_artifact_for_another_cpu_or_a_gpu_does_not_run_here():
    here = next(load_target(n) for n in ("x86_64", "arm64") if load_target(n).machine == platform.machine())
    assert manifest(here).runs_here() and manifest(here).why_not_here() is None
    other = next(load_target(n) for n in ("x86_64", "arm64") if load_target(n).machine != platform.machine())
    assert f"built for {other.machine}" in manifest(other).why_not_here()
    gpu = manifest(here, runtime={"gpu": {"device": "cuda", "arch": "sm_87"}})
    assert not gpu.runs_here() and "cuda GPU (sm_87)" in gpu.why_not_here()


def test_a_cpu_feature_this_machine_lacks_is_named():
    here = next(load_target(n) for n in ("x86_64", "arm64") if load_target(n).machine == platform.machine())
    needs = replace(here, cpu=replace(here.cpu, features=(*here.cpu.features, "+avx512fp16" if here.machine == "x86_64" else "+sve2")))
    flags = open("/proc/cpuinfo").read()
    missing = "avx512_fp16" not in flags if here.machine == "x86_64" else " sve2" not in flags
    assert needs.runs_here() is not missing
    if missing:
        assert "lacks +" in needs.why_not_here()


def test_kernel_costs_are_found_under_scheduled_names():
    costs = {"fused_conv2d_add": {"flops": 10, "macs": 4, "bytes": 8}, "fused_conv2d_add_relu": {"flops": 12, "macs": 4, "bytes": 8}}
    m = manifest(load_target("x86_64"), kernels=costs)
    assert m.kernel_cost("fused_conv2d_add") == costs["fused_conv2d_add"]
    assert m.kernel_cost("fused_conv2d_add_relu_prepacked") == costs["fused_conv2d_add_relu"]  # the longest prefix
    assert m.kernel_cost("fused_conv2d") is None and m.kernel_cost("mean") is None


def test_a_manifest_without_kernels_reads_as_one_without_costs(tmp_path):
    data = json.loads(manifest(load_target("x86_64")).to_json())
    del data["kernels"]
    (tmp_path / "manifest.json").write_text(json.dumps(data))
    assert read_manifest(tmp_path).kernels == {}


def test_versioned_json_refuses_other_formats_versions_and_garbage(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"format": "edgekit-x", "format_version": 2, "a": 1}))
    assert read_versioned_json(path, "edgekit-x", 2, "an x record", "redo it")["a"] == 1
    for fmt, version, text in [("edgekit-x", 1, None), ("edgekit-y", 2, None), ("edgekit-x", 2, "{not json"), ("edgekit-x", 2, "[1]")]:
        if text is not None:
            path.write_text(text)
        with pytest.raises(ArtifactError, match="redo it|is not|not valid JSON") as caught:
            read_versioned_json(path, fmt, version, "an x record", "redo it")
        assert str(path) in caught.value.one_line() and "redo it" in caught.value.one_line()
    with pytest.raises(ArtifactError, match="is missing"):
        read_versioned_json(tmp_path / "none.json", "edgekit-x", 2, "an x record", "redo it")
