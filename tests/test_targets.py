"""Target descriptors: every bundled TOML loads, the CLI lists them, and TVM accepts what they say.

A board's facts live in its TOML file only, so these tests read the TOML themselves (tomllib)
and compare, instead of repeating triples or core counts here.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from conftest import REPO
from edgekit.resources import data_dir
from edgekit.target_spec import TargetSpec, known_targets, list_targets, load_target, targets_dir

BUNDLED = ("arm64", "orin", "rk3588", "x86_64", "x86_64-avx512")
TARGET_FILES = sorted((REPO / "targets").glob("*.toml"))
# The TVM target attribute that carries the TOML's `accelerator.arch` for each kind.
ACCELERATOR_ARCH_ATTR = {"cuda": "arch", "opencl": "device"}


def toml_of(name: str) -> dict:
    return tomllib.loads((targets_dir() / f"{name}.toml").read_text())


def accelerator_target(spec: TargetSpec) -> dict:
    assert spec.accelerator is not None
    key = ACCELERATOR_ARCH_ATTR[spec.accelerator.kind]
    return {"kind": spec.accelerator.kind, key: spec.accelerator.arch, "host": spec.tvm_cpu_target()}


def test_targets_folder_is_found_through_resources_data_dir():
    folder = data_dir("targets")
    assert folder == targets_dir()
    assert folder.resolve() == (REPO / "targets").resolve()
    assert sorted(p.stem for p in folder.glob("*.toml")) == known_targets()


def test_data_dir_of_a_missing_folder_raises_file_not_found():
    with pytest.raises(FileNotFoundError, match="no_such_data_folder"):
        data_dir("no_such_data_folder")


def test_the_bundled_targets_are_known():
    assert known_targets() == sorted(BUNDLED)
    assert sorted(p.stem for p in TARGET_FILES) == sorted(BUNDLED)


@pytest.mark.parametrize("path", TARGET_FILES, ids=lambda p: p.stem)
def test_every_bundled_target_loads_and_its_name_matches_its_file(path: Path):
    spec = load_target(path.stem)
    assert spec.name == path.stem
    assert Path(spec.source).resolve() == path.resolve()
    assert spec.description


@pytest.mark.parametrize("path", TARGET_FILES, ids=lambda p: p.stem)
def test_loading_by_path_equals_loading_by_name(path: Path):
    assert load_target(str(path)) == load_target(path.stem)


@pytest.mark.parametrize("name", BUNDLED)
def test_spec_carries_the_toml_facts(name: str):
    raw = toml_of(name)
    spec = load_target(name)
    assert spec.cpu.triple == raw["cpu"]["triple"]
    assert spec.cpu.mcpu == raw["cpu"]["mcpu"]
    assert list(spec.cpu.features) == raw["cpu"]["features"]
    assert spec.cpu.cores == raw["cpu"]["cores"]
    assert spec.cpu.simd_bits == raw["cpu"]["simd_bits"]
    assert list(spec.cpu.cpu_ids) == raw["cpu"].get("cpu_ids", [])
    assert spec.cpu.cross_compiler == raw["cpu"].get("cross_compiler", "")
    for key, value in raw["peak"].items():
        assert getattr(spec.peak, key) == pytest.approx(value)
    if "accelerator" in raw:
        assert spec.accelerator is not None
        assert (spec.accelerator.kind, spec.accelerator.name, spec.accelerator.arch) == (
            raw["accelerator"]["kind"], raw["accelerator"]["name"], raw["accelerator"]["arch"],
        )
    else:
        assert spec.accelerator is None


def test_list_targets_returns_every_bundled_spec_in_name_order():
    assert [spec.name for spec in list_targets()] == sorted(BUNDLED)


def test_rk3588_runs_on_the_big_cores_4_to_7():
    spec = load_target("rk3588")
    assert spec.cpu.cpu_ids == (4, 5, 6, 7)
    assert spec.cpu.cores == len(spec.cpu.cpu_ids)


def test_only_the_host_target_is_native():
    assert not load_target("x86_64").is_cross
    for name in ("arm64", "orin", "rk3588"):
        assert load_target(name).is_cross, name


def test_x86_64_tvm_cpu_target_is_an_llvm_dict_with_the_toml_triple_and_mcpu():
    raw = toml_of("x86_64")
    target = load_target("x86_64").tvm_cpu_target()
    assert isinstance(target, dict)
    assert target["kind"] == "llvm"
    assert target["mtriple"] == raw["cpu"]["triple"]
    assert target["mcpu"] == raw["cpu"]["mcpu"]
    assert target["num-cores"] == raw["cpu"]["cores"]
    assert "mattr" not in target  # the TOML lists no extra features


@pytest.mark.parametrize("name", ["arm64", "orin", "rk3588"])
def test_arm_tvm_cpu_targets_carry_the_toml_features_as_mattr(name: str):
    raw = toml_of(name)
    target = load_target(name).tvm_cpu_target()
    assert target["kind"] == "llvm"
    assert target["mtriple"] == raw["cpu"]["triple"]
    assert target["mattr"] == raw["cpu"]["features"]


@pytest.mark.parametrize("name", BUNDLED)
def test_tvm_accepts_every_cpu_target_and_llvm_knows_its_mcpu(name: str, capfd):
    import tvm

    spec = load_target(name)
    capfd.readouterr()
    target = tvm.target.Target(spec.tvm_cpu_target())
    logged = capfd.readouterr()
    # TVM only logs (does not raise) when LLVM does not know -mcpu, then silently uses "generic".
    assert "is not valid" not in logged.err + logged.out, logged.err
    assert target.kind.name == "llvm"
    assert str(target.attrs["mcpu"]) == spec.cpu.mcpu
    assert str(target.attrs["mtriple"]) == spec.cpu.triple
    assert int(target.attrs["num-cores"]) == spec.cpu.cores
    if spec.cpu.triple.startswith("aarch64"):
        assert "arm_cpu" in [str(k) for k in target.keys]


def test_llvm_mcpu_check_catches_an_unknown_cpu(capfd):
    # The check above relies on TVM logging this; make sure it still does.
    import tvm

    capfd.readouterr()
    tvm.target.Target({"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mcpu": "cortex-nosuch"})
    assert "is not valid" in capfd.readouterr().err


@pytest.mark.parametrize("name", ["orin", "rk3588"])
def test_tvm_accepts_the_accelerator_target_with_the_cpu_as_host(name: str, capfd):
    import tvm

    spec = load_target(name)
    capfd.readouterr()
    target = tvm.target.Target(accelerator_target(spec))
    assert "is not valid" not in capfd.readouterr().err
    assert target.kind.name == spec.accelerator.kind
    assert str(target.attrs[ACCELERATOR_ARCH_ATTR[spec.accelerator.kind]]) == spec.accelerator.arch
    assert target.host is not None and target.host.kind.name == "llvm"
    assert str(target.host.attrs["mcpu"]) == spec.cpu.mcpu


def test_cli_targets_lists_all_with_their_triples(cli):
    result = cli("targets")
    assert result.exit_code == 0, result.stderr
    rows = {}
    for line in result.stdout.splitlines():
        cells = [cell.strip() for cell in line.strip("│ \n").split("│")]
        if cells and cells[0] in BUNDLED:
            rows[cells[0]] = cells
    assert sorted(rows) == sorted(BUNDLED), result.stdout
    for name, cells in rows.items():
        raw = toml_of(name)
        assert cells[1] == raw["cpu"]["triple"], cells
        assert cells[2] == raw["cpu"]["mcpu"], cells
        assert cells[4] == str(raw["cpu"]["cores"]), cells
        accel = raw.get("accelerator")
        assert cells[5] == (f"{accel['kind']} {accel['arch']}" if accel else "-"), cells


def test_cli_targets_json_parses_and_has_positive_fp32_peaks(cli):
    result = cli("targets", "--json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert sorted(entry["name"] for entry in data) == sorted(BUNDLED)
    for entry in data:
        raw = toml_of(entry["name"])
        assert entry["peak"]["fp32_gflops"] > 0
        assert entry["peak"]["fp32_gflops"] == pytest.approx(raw["peak"]["fp32_gflops"])
        assert entry["peak"]["int8_gops"] > 0
        assert entry["peak"]["memory_bandwidth_gbs"] > 0
        assert entry["cpu"]["triple"] == raw["cpu"]["triple"]
        assert "source" not in entry
        if "accelerator" in raw:
            assert entry["peak"]["accelerator_fp32_gflops"] > 0
            assert entry["accelerator"]["kind"] == raw["accelerator"]["kind"]
        else:
            assert entry["accelerator"] is None


def test_python_api_targets_stays_callable_after_the_targets_module_is_imported():
    import importlib

    import edgekit

    importlib.import_module("edgekit.target_spec")  # what compile, or any `from edgekit.target_spec import`, does
    assert callable(edgekit.targets), f"edgekit.targets is {edgekit.targets!r}"
    first = edgekit.targets()
    second = edgekit.targets()
    assert [s.name for s in first] == [s.name for s in second] == sorted(BUNDLED)
