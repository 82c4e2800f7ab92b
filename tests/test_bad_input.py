"""Bad input through the CLI: one clear stderr line, exit 2, no traceback, nothing left behind.

Every case of the issue has a test here: missing or non-ONNX files, ops TVM cannot import,
unknown targets, malformed target TOML, wrong run-time inputs and tampered artifacts, plus the
same discipline for `check` and `export`. `--debug` is the one way to get the traceback.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from conftest import DEMO_FACTORY, EVAL_DATA, REPO, one_line_error
from edgekit.cli import main
from edgekit.errors import EdgekitError, InputError

KNOWN_TARGETS = ("arm64", "orin", "rk3588", "x86_64")
# ONNX Runtime 1.2x reads IR version <= 13; onnx.helper would stamp its own newest (14).
IR_VERSION = 10


# ---------------------------------------------------------------------------- helpers


def assert_no_compile_output(out: Path) -> None:
    """The -o folder was not created and no temporary `.NAME.*.tmp` folder was left beside it."""
    assert not out.exists(), f"{out} was created"
    if out.parent.exists():
        leftovers = sorted(p.name for p in out.parent.glob(f".{out.name}.*"))
        assert not leftovers, f"temporary files left behind: {leftovers}"


def assert_no_file(path: Path) -> None:
    assert not path.exists(), f"{path} was created"
    if path.parent.exists():
        leftovers = sorted(p.name for p in path.parent.glob(f".{path.name}.*"))
        assert not leftovers, f"temporary files left behind: {leftovers}"


def fails_with(result, *fragments: str) -> str:
    """Exit 2 with exactly one error line that contains every fragment; return the line."""
    line = one_line_error(result)
    assert result.exit_code == 2, (result.exit_code, line)
    for fragment in fragments:
        assert fragment in line, f"{fragment!r} not in {line!r}"
    return line


def single_op_model(op_type: str, *, domain: str = "", node_name: str = "my_node", shape=(1, 4), opsets=None) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, list(shape))
    node = helper.make_node(op_type, ["x"], ["y"], name=node_name, domain=domain)
    graph = helper.make_graph([node], "single_op", [x], [y])
    model = helper.make_model(graph, opset_imports=opsets or [helper.make_opsetid("", 18)], ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    return model


def write_target(folder: Path, stem: str, edit=lambda text: text) -> Path:
    """A copy of targets/x86_64.toml named `stem`.toml (its `name` key matches), passed through `edit`."""
    text = (REPO / "targets" / "x86_64.toml").read_text().replace('name = "x86_64"', f'name = "{stem}"')
    path = folder / f"{stem}.toml"
    path.write_text(edit(text))
    return path


def replace_key(key: str, line: str):
    """An edit of a target TOML: its one `key = ...` line, whatever value the board has today, becomes `line`
    (removed if `line` is empty), so these tests do not repeat the board's figures."""
    pattern = re.compile(rf"^{re.escape(key)} = [^\n]*\n", re.MULTILINE)

    def edit(text: str) -> str:
        assert len(pattern.findall(text)) == 1, f"'{key} = ' starts {len(pattern.findall(text))} lines"
        return pattern.sub(f"{line}\n" if line else "", text)

    return edit


@pytest.fixture
def artifact_copy(demo_artifact, tmp_path) -> Path:
    copy = tmp_path / "artifact"
    shutil.copytree(demo_artifact, copy)
    return copy


# ---------------------------------------------------------------------------- compile: the ONNX file


def test_compile_missing_onnx_file_names_the_path(cli, tmp_path):
    out = tmp_path / "art"
    line = fails_with(cli("compile", tmp_path / "missing.onnx", "-o", out), str(tmp_path / "missing.onnx"), "not found")
    assert "check the path" in line
    assert_no_compile_output(out)


def test_compile_text_file_named_onnx_is_not_an_onnx_model(cli, tmp_path):
    source = tmp_path / "x.onnx"
    source.write_text("this is a text file, not a protobuf\n")
    out = tmp_path / "art"
    fails_with(cli("compile", source, "-o", out), str(source), "ONNX")
    assert_no_compile_output(out)


def test_compile_truncated_onnx_file_is_rejected(cli, demo_onnx, tmp_path):
    data = demo_onnx.read_bytes()
    source = tmp_path / "truncated.onnx"
    source.write_bytes(data[: len(data) // 2])
    out = tmp_path / "art"
    fails_with(cli("compile", source, "-o", out), str(source), "ONNX")
    assert_no_compile_output(out)


def test_compile_random_bytes_are_rejected(cli, tmp_path):
    source = tmp_path / "noise.onnx"
    source.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    out = tmp_path / "art"
    fails_with(cli("compile", source, "-o", out), str(source), "ONNX")
    assert_no_compile_output(out)


def test_compile_empty_file_is_rejected(cli, tmp_path):
    source = tmp_path / "empty.onnx"
    source.write_bytes(b"")
    out = tmp_path / "art"
    fails_with(cli("compile", source, "-o", out), str(source), "ONNX")
    assert_no_compile_output(out)


def test_compile_custom_domain_op_names_op_type_and_node(cli, tmp_path):
    model = single_op_model(
        "MyCustomOp",
        domain="com.example",
        node_name="custom_block_3",
        opsets=[helper.make_opsetid("", 18), helper.make_opsetid("com.example", 1)],
    )
    source = tmp_path / "custom.onnx"
    onnx.save(model, source)
    out = tmp_path / "art"
    fails_with(cli("compile", source, "-o", out), "MyCustomOp", "custom_block_3")
    assert_no_compile_output(out)


def test_compile_standard_op_without_tvm_importer_names_op_type_and_node(cli, tmp_path):
    from tvm.relax.frontend.onnx import onnx_frontend

    # Celu is a plain ONNX op (opset 12) that TVM 0.27's Relax importer does not convert.
    assert "Celu" in {schema.name for schema in onnx.defs.get_all_schemas() if schema.domain == ""}
    assert "Celu" not in onnx_frontend._get_convert_map()
    source = tmp_path / "celu.onnx"
    onnx.save(single_op_model("Celu", node_name="act/celu_7"), source)
    out = tmp_path / "art"
    fails_with(cli("compile", source, "-o", out), "Celu", "act/celu_7")
    assert_no_compile_output(out)


def test_compile_symbolic_non_batch_dim_without_shape_suggests_shape_option(cli, tmp_path):
    source = tmp_path / "seq.onnx"
    onnx.save(single_op_model("Relu", shape=(1, "seq_len", 8)), source)
    out = tmp_path / "art"
    fails_with(cli("compile", source, "-o", out), "seq_len", "--shape x=")
    assert_no_compile_output(out)


@pytest.mark.parametrize("option", ["image=1xax32x32", "image", "=1x1x32x32", "image=1x0x32x32", "image=1x-1x32x32"])
def test_compile_malformed_shape_option_names_the_option(cli, demo_onnx, tmp_path, option):
    out = tmp_path / "art"
    fails_with(cli("compile", demo_onnx, "--shape", option, "-o", out), f"--shape '{option}'", "name=")
    assert_no_compile_output(out)


def test_compile_shape_for_unknown_input_lists_the_inputs(cli, demo_onnx, tmp_path):
    out = tmp_path / "art"
    fails_with(cli("compile", demo_onnx, "--shape", "nosuch=1x1x32x32", "-o", out), "nosuch", "image")
    assert_no_compile_output(out)


def test_compile_directory_as_model_is_rejected(cli, tmp_path):
    folder = tmp_path / "model_dir.onnx"
    folder.mkdir()
    out = tmp_path / "art"
    fails_with(cli("compile", folder, "-o", out), str(folder), "not a file")
    assert_no_compile_output(out)


def test_compile_output_path_that_is_a_file_is_left_untouched(cli, demo_onnx, tmp_path):
    out = tmp_path / "taken"
    out.write_text("keep me\n")
    fails_with(cli("compile", demo_onnx, "-o", out), str(out), "not a directory")
    assert out.read_text() == "keep me\n"
    assert not list(tmp_path.glob(".taken.*"))


def test_failed_compile_leaves_an_existing_artifact_intact(cli, artifact_copy, tmp_path):
    from edgekit.artifact import verify_artifact

    before = {p.name: p.read_bytes() for p in artifact_copy.iterdir()}
    source = tmp_path / "broken.onnx"
    source.write_text("not onnx")
    fails_with(cli("compile", source, "-o", artifact_copy), str(source))
    assert {p.name: p.read_bytes() for p in artifact_copy.iterdir()} == before
    verify_artifact(artifact_copy)
    assert not list(tmp_path.glob(f".{artifact_copy.name}.*"))


# ---------------------------------------------------------------------------- compile: the target


def test_compile_unknown_target_lists_known_targets(cli, demo_onnx, tmp_path):
    out = tmp_path / "art"
    line = fails_with(cli("compile", demo_onnx, "--target", "nosuchboard", "-o", out), "nosuchboard", *KNOWN_TARGETS)
    assert "known targets" in line
    assert_no_compile_output(out)


def test_compile_missing_target_file_names_the_path(cli, demo_onnx, tmp_path):
    out = tmp_path / "art"
    fails_with(cli("compile", demo_onnx, "--target", tmp_path / "nowhere.toml", "-o", out), str(tmp_path / "nowhere.toml"), "not found")
    assert_no_compile_output(out)


def test_compile_target_toml_syntax_error_names_the_file_and_line(cli, demo_onnx, tmp_path):
    target = write_target(tmp_path, "broken", replace_key("cores", "cores = "))
    out = tmp_path / "art"
    fails_with(cli("compile", demo_onnx, "--target", target, "-o", out), str(target), "TOML", "line")
    assert_no_compile_output(out)


def test_compile_target_toml_unknown_key_names_file_and_key(cli, demo_onnx, tmp_path):
    target = write_target(tmp_path, "typo", replace_key("cores", "coress = 4"))
    out = tmp_path / "art"
    fails_with(cli("compile", demo_onnx, "--target", target, "-o", out), str(target), "cpu.coress", "unknown")
    assert_no_compile_output(out)


def test_compile_target_toml_wrong_type_names_file_and_key(cli, demo_onnx, tmp_path):
    target = write_target(tmp_path, "wrongtype", replace_key("cores", 'cores = "four"'))
    out = tmp_path / "art"
    fails_with(cli("compile", demo_onnx, "--target", target, "-o", out), str(target), "cpu.cores", "int", "'four'")
    assert_no_compile_output(out)


def test_compile_target_toml_missing_required_key_names_file_and_key(cli, demo_onnx, tmp_path):
    target = write_target(tmp_path, "incomplete", replace_key("simd_bits", ""))
    out = tmp_path / "art"
    fails_with(cli("compile", demo_onnx, "--target", target, "-o", out), str(target), "cpu.simd_bits", "missing")
    assert_no_compile_output(out)


def test_compile_target_toml_missing_peak_key_names_file_and_key(cli, demo_onnx, tmp_path):
    target = write_target(tmp_path, "nopeak", replace_key("memory_bandwidth_gbs", ""))
    out = tmp_path / "art"
    fails_with(cli("compile", demo_onnx, "--target", target, "-o", out), str(target), "peak.memory_bandwidth_gbs", "missing")
    assert_no_compile_output(out)


def test_compile_target_toml_name_differing_from_file_name_is_rejected(cli, demo_onnx, tmp_path):
    path = tmp_path / "myboard.toml"
    path.write_text((REPO / "targets" / "x86_64.toml").read_text())  # still says name = "x86_64"
    out = tmp_path / "art"
    fails_with(cli("compile", demo_onnx, "--target", path, "-o", out), str(path), "name", "x86_64")
    assert_no_compile_output(out)


def test_compile_target_toml_native_mcpu_is_rejected(cli, demo_onnx, tmp_path):
    target = write_target(tmp_path, "native", replace_key("mcpu", 'mcpu = "native"'))
    out = tmp_path / "art"
    fails_with(cli("compile", demo_onnx, "--target", target, "-o", out), str(target), "cpu.mcpu", "native")
    assert_no_compile_output(out)


# ---------------------------------------------------------------------------- run


def test_run_missing_artifact_folder_names_the_path(cli, demo_sample, tmp_path):
    out = tmp_path / "out.npz"
    fails_with(cli("run", tmp_path / "no_artifact", "-i", demo_sample, "-o", out), str(tmp_path / "no_artifact"), "not found")
    assert_no_file(out)


def test_run_folder_without_manifest_is_not_an_artifact(cli, demo_sample, tmp_path):
    folder = tmp_path / "not_an_artifact"
    folder.mkdir()
    (folder / "model.so").write_bytes(b"\x7fELF")
    out = tmp_path / "out.npz"
    fails_with(cli("run", folder, "-i", demo_sample, "-o", out), str(folder), "manifest.json")
    assert_no_file(out)


def test_run_wrong_input_shape_shows_expected_and_given(cli, demo_artifact, tmp_path):
    given = tmp_path / "small.npy"
    np.save(given, np.zeros((1, 1, 16, 16), np.float32))
    out = tmp_path / "out.npz"
    fails_with(cli("run", demo_artifact, "-i", given, "-o", out), "'image'", "1x1x16x16 float32", "expected 1x1x32x32 float32")
    assert_no_file(out)


def test_run_wrong_input_dtype_shows_expected_and_given(cli, demo_artifact, tmp_path):
    given = tmp_path / "double.npy"
    np.save(given, np.zeros((1, 1, 32, 32), np.float64))
    out = tmp_path / "out.npz"
    fails_with(cli("run", demo_artifact, "-i", given, "-o", out), "'image'", "1x1x32x32 float64", "expected 1x1x32x32 float32")
    assert_no_file(out)


def test_run_wrong_input_name_shows_given_and_expected_names(cli, demo_artifact, demo_sample, tmp_path):
    out = tmp_path / "out.npz"
    fails_with(cli("run", demo_artifact, "-i", f"nosuch={demo_sample}", "-o", out), "'nosuch'", "image 1x1x32x32 float32")
    assert_no_file(out)


def test_run_wrong_array_name_in_npz_input_shows_expected_names(cli, demo_artifact, tmp_path):
    given = tmp_path / "inputs.npz"
    np.savez(given, img=np.zeros((1, 1, 32, 32), np.float32))
    out = tmp_path / "out.npz"
    fails_with(cli("run", demo_artifact, "-i", given, "-o", out), "'img'", "image 1x1x32x32 float32")
    assert_no_file(out)


def test_run_missing_input_file_names_the_path(cli, demo_artifact, tmp_path):
    out = tmp_path / "out.npz"
    fails_with(cli("run", demo_artifact, "-i", tmp_path / "nowhere.npy", "-o", out), str(tmp_path / "nowhere.npy"), "not found")
    assert_no_file(out)


def test_run_without_input_lists_the_model_inputs(cli, demo_artifact, tmp_path):
    out = tmp_path / "out.npz"
    fails_with(cli("run", demo_artifact, "-o", out), "--input", "image")
    assert_no_file(out)


def test_run_truncated_npy_input_is_rejected(cli, demo_artifact, demo_sample, tmp_path):
    data = demo_sample.read_bytes()
    given = tmp_path / "truncated.npy"
    given.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.npz"
    fails_with(cli("run", demo_artifact, "-i", given, "-o", out), str(given), ".npy")
    assert_no_file(out)


def test_run_garbage_npy_input_is_rejected(cli, demo_artifact, tmp_path):
    given = tmp_path / "garbage.npy"
    given.write_bytes(b"not numpy at all " * 64)
    out = tmp_path / "out.npz"
    fails_with(cli("run", demo_artifact, "-i", given, "-o", out), str(given), ".npy")
    assert_no_file(out)


def test_run_truncated_npz_input_is_rejected(cli, demo_artifact, tmp_path):
    whole = tmp_path / "whole.npz"
    np.savez(whole, image=np.zeros((1, 1, 32, 32), np.float32))
    data = whole.read_bytes()
    given = tmp_path / "truncated.npz"
    given.write_bytes(data[: len(data) // 2])  # starts like a zip file, has no central directory
    out = tmp_path / "out.npz"
    fails_with(cli("run", demo_artifact, "-i", given, "-o", out), str(given), ".npz")
    assert_no_file(out)


def test_run_output_with_bad_suffix_writes_nothing(cli, demo_artifact, demo_sample, tmp_path):
    out = tmp_path / "out.txt"
    fails_with(cli("run", demo_artifact, "-i", demo_sample, "-o", out), str(out), ".npz", ".npy")
    assert_no_file(out)


def test_run_tampered_library_is_refused_naming_file_and_sha256(cli, artifact_copy, demo_sample, tmp_path):
    library = artifact_copy / "model.so"
    data = bytearray(library.read_bytes())
    data[len(data) // 2] ^= 0xFF
    library.write_bytes(bytes(data))
    out = tmp_path / "out.npz"
    fails_with(cli("run", artifact_copy, "-i", demo_sample, "-o", out), "model.so", "sha256", "manifest")
    assert_no_file(out)


def test_run_artifact_missing_its_library_is_refused(cli, artifact_copy, demo_sample, tmp_path):
    (artifact_copy / "model.so").unlink()
    out = tmp_path / "out.npz"
    fails_with(cli("run", artifact_copy, "-i", demo_sample, "-o", out), "model.so", "missing")
    assert_no_file(out)


def test_run_corrupt_manifest_is_refused(cli, artifact_copy, demo_sample, tmp_path):
    (artifact_copy / "manifest.json").write_text("{ not json")
    out = tmp_path / "out.npz"
    fails_with(cli("run", artifact_copy, "-i", demo_sample, "-o", out), "manifest.json", "not a valid")
    assert_no_file(out)


def test_run_bad_cpus_option_names_the_option(cli, demo_artifact, demo_sample, tmp_path):
    out = tmp_path / "out.npz"
    fails_with(cli("run", demo_artifact, "-i", demo_sample, "--cpus", "a-b", "-o", out), "--cpus 'a-b'")
    assert_no_file(out)


def test_run_json_without_repeat_is_a_usage_error_that_writes_nothing(cli, demo_artifact, demo_sample, tmp_path):
    out = tmp_path / "out.npz"
    stats = tmp_path / "stats.json"
    fails_with(cli("run", demo_artifact, "-i", demo_sample, "-o", out, "--json", stats), "--json", "--repeat")
    assert_no_file(stats)
    assert_no_file(out)  # a usage error must not leave the outputs of a half-done command behind


@pytest.mark.parametrize("threads", ["0", "-1"])
def test_run_non_positive_threads_is_rejected(cli, demo_artifact, demo_sample, tmp_path, threads):
    out = tmp_path / "out.npz"
    fails_with(cli("run", demo_artifact, "-i", demo_sample, "--threads", threads, "-o", out), "--threads", threads)
    assert_no_file(out)


# ---------------------------------------------------------------------------- check


def _check(cli, artifact, data, tmp_path, reference=None):
    report = tmp_path / "report.json"
    result = cli("check", artifact, "--reference", reference, "--data", data, "--json", report)
    return result, report


def test_check_data_with_wrong_array_name_names_file_array_and_inputs(cli, demo_artifact, demo_onnx, tmp_path):
    data = tmp_path / "data.npz"
    np.savez(data, pixels=np.zeros((2, 1, 1, 32, 32), np.float32))
    result, report = _check(cli, demo_artifact, data, tmp_path, demo_onnx)
    fails_with(result, str(data), "'pixels'", "image")
    assert_no_file(report)


def test_check_data_with_wrong_shape_shows_expected_and_given(cli, demo_artifact, demo_onnx, tmp_path):
    data = tmp_path / "data.npz"
    np.savez(data, image=np.zeros((2, 1, 1, 16, 16), np.float32))
    result, report = _check(cli, demo_artifact, data, tmp_path, demo_onnx)
    fails_with(result, str(data), "(2, 1, 1, 16, 16)", "(N, 1, 1, 32, 32)")
    assert_no_file(report)


def test_check_data_with_nan_names_the_sample(cli, demo_artifact, demo_onnx, tmp_path):
    images = np.zeros((5, 1, 1, 32, 32), np.float32)
    images[3, 0, 0, 7, 9] = np.nan
    data = tmp_path / "data.npz"
    np.savez(data, image=images)
    result, report = _check(cli, demo_artifact, data, tmp_path, demo_onnx)
    fails_with(result, str(data), "sample 3", "NaN")
    assert_no_file(report)


def test_check_missing_data_names_the_path(cli, demo_artifact, demo_onnx, tmp_path):
    result, report = _check(cli, demo_artifact, tmp_path / "nowhere.npz", tmp_path, demo_onnx)
    fails_with(result, str(tmp_path / "nowhere.npz"), "not found")
    assert_no_file(report)


def test_check_reference_lacking_artifact_inputs_names_them(cli, demo_artifact, tmp_path):
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])
    logits = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, 10])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["logits"], name="relu")], "other", [x], [logits])
    other = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=IR_VERSION)
    reference = tmp_path / "other.onnx"
    onnx.save(other, reference)
    result, report = _check(cli, demo_artifact, EVAL_DATA, tmp_path, reference)
    fails_with(result, str(reference), "image")
    assert_no_file(report)


def test_check_reference_that_is_not_onnx_is_rejected(cli, demo_artifact, tmp_path):
    reference = tmp_path / "ref.onnx"
    reference.write_text("not onnx\n")
    result, report = _check(cli, demo_artifact, EVAL_DATA, tmp_path, reference)
    fails_with(result, str(reference), "ONNX")
    assert_no_file(report)


def test_check_tampered_artifact_is_refused(cli, artifact_copy, demo_onnx, tmp_path):
    library = artifact_copy / "model.so"
    data = bytearray(library.read_bytes())
    data[-1] ^= 0x01
    library.write_bytes(bytes(data))
    result, report = _check(cli, artifact_copy, EVAL_DATA, tmp_path, demo_onnx)
    fails_with(result, "model.so", "sha256")
    assert_no_file(report)


def test_check_data_given_as_npy_is_rejected(cli, demo_artifact, demo_onnx, tmp_path):
    data = tmp_path / "images.npy"
    np.save(data, np.zeros((2, 1, 1, 32, 32), np.float32))
    result, report = _check(cli, demo_artifact, data, tmp_path, demo_onnx)
    fails_with(result, str(data), ".npz")
    assert_no_file(report)


# ---------------------------------------------------------------------------- export


def test_export_missing_factory_file_names_the_path(cli, tmp_path):
    out = tmp_path / "model.onnx"
    fails_with(cli("export", f"{tmp_path / 'nowhere.py'}:factory", "-o", out), str(tmp_path / "nowhere.py"), "not found")
    assert_no_file(out)


def test_export_unknown_factory_function_names_file_and_function(cli, tmp_path):
    out = tmp_path / "model.onnx"
    factory_file = DEMO_FACTORY.rpartition(":")[0]
    fails_with(cli("export", f"{factory_file}:nosuchfn", "-o", out), factory_file, "'nosuchfn'")
    assert_no_file(out)


def test_export_source_of_unknown_kind_says_what_is_accepted(cli, tmp_path):
    source = tmp_path / "model.bin"
    source.write_bytes(b"weights")
    out = tmp_path / "model.onnx"
    fails_with(cli("export", source, "-o", out), str(source), ".pt2", "file.py:")
    assert_no_file(out)


def test_export_garbage_pt2_is_not_a_torch_export_program(cli, tmp_path):
    source = tmp_path / "model.pt2"
    source.write_bytes(np.random.default_rng(1).integers(0, 256, 2048, dtype=np.uint8).tobytes())
    out = tmp_path / "model.onnx"
    fails_with(cli("export", source, "-o", out), str(source), "torch.export")
    assert_no_file(out)


def test_export_missing_pt2_names_the_path(cli, tmp_path):
    out = tmp_path / "model.onnx"
    fails_with(cli("export", tmp_path / "nowhere.pt2", "-o", out), str(tmp_path / "nowhere.pt2"), "not found")
    assert_no_file(out)


def test_export_factory_file_that_raises_names_the_file(cli, tmp_path):
    source = tmp_path / "broken_model.py"
    source.write_text("raise RuntimeError('boom at import')\n")
    out = tmp_path / "model.onnx"
    fails_with(cli("export", f"{source}:factory", "-o", out), str(source), "boom at import")
    assert_no_file(out)


def test_export_opset_below_18_is_rejected(cli, tmp_path):
    out = tmp_path / "model.onnx"
    fails_with(cli("export", DEMO_FACTORY, "--opset", "11", "-o", out), "--opset 11", "18")
    assert_no_file(out)


def test_export_malformed_dynamic_option_names_it(cli, tmp_path):
    out = tmp_path / "model.onnx"
    fails_with(cli("export", DEMO_FACTORY, "--dynamic", "image=batch", "-o", out), "--dynamic 'image=batch'", "name:axis=dim")
    assert_no_file(out)


# ---------------------------------------------------------------------------- --debug and the real console script


def test_debug_flag_lets_the_error_propagate_with_its_traceback(tmp_path):
    out = tmp_path / "art"
    result = CliRunner().invoke(main, ["--debug", "compile", str(tmp_path / "missing.onnx"), "-o", str(out)], catch_exceptions=True)
    assert isinstance(result.exception, EdgekitError), repr(result.exception)
    assert isinstance(result.exception, InputError)
    assert str(tmp_path / "missing.onnx") in str(result.exception)
    assert result.exc_info is not None and result.exc_info[2] is not None  # the traceback is there to show
    assert "edgekit: error:" not in result.stderr  # not swallowed into the one-line form
    assert_no_compile_output(out)


def test_without_debug_the_same_error_is_one_line_and_exit_2(tmp_path):
    out = tmp_path / "art"
    result = CliRunner().invoke(main, ["compile", str(tmp_path / "missing.onnx"), "-o", str(out)], catch_exceptions=True)
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    fails_with(result, str(tmp_path / "missing.onnx"))


def test_console_script_subprocess_prints_one_line_and_exits_2(tmp_path):
    out = tmp_path / "art"
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit", "compile", "missing.onnx", "-o", str(out)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env={k: v for k, v in os.environ.items() if k != "EDGEKIT_DEBUG"},
    )
    assert proc.returncode == 2, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("edgekit: error: ") and "missing.onnx" in lines[0]
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert_no_compile_output(out)


def test_console_script_subprocess_with_debug_shows_the_traceback(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "edgekit", "--debug", "compile", "missing.onnx", "-o", str(tmp_path / "art")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr
    assert "InputError" in proc.stderr and "missing.onnx" in proc.stderr
