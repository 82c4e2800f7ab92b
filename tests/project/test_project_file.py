"""edgekit.toml validated up front: targets, recipe and data sets are loaded by `load_project`, so a
typo fails before any stage runs, naming the project file and the key."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from conftest import REPO, one_line_error
from project_files import project_folder

from edgekit.errors import InputError
from edgekit.project.project_file import load_project
from edgekit.target_spec import DEFAULT_TARGET

GOOD = """
[project]
name = "p"

[model]
source = "model.onnx"

[quantize]
recipe = "int8-default"

[data]
calib = "calib.npz"
eval = "eval.npz"

[compile]
targets = ["x86_64", "arm64"]

[gates.accuracy]
min = 0.5
"""


@pytest.fixture
def folder(tmp_path) -> Path:
    """A project folder whose files exist; the model is never read before export, so any bytes do."""
    return project_folder(tmp_path, calib=True, labels=True)


def write(folder: Path, text: str) -> Path:
    path = folder / "edgekit.toml"
    path.write_text(textwrap.dedent(text))
    return path


def load_error(path: Path) -> InputError:
    with pytest.raises(InputError) as info:
        load_project(path)
    return info.value


def test_a_good_project_loads_every_target_and_the_recipe(folder):
    project = load_project(write(folder, GOOD))
    assert project.targets == ("x86_64", "arm64") and project.recipe == "int8-default"
    assert project.calib_data == folder / "calib.npz" and project.eval_data == folder / "eval.npz"


def test_the_default_target_is_the_shared_default(folder):
    project = load_project(write(folder, GOOD.replace('targets = ["x86_64", "arm64"]', "")))
    assert project.targets == (DEFAULT_TARGET,)


def test_target_and_recipe_files_resolve_relative_to_the_project(folder):
    (folder / "boards").mkdir()
    board = (REPO / "targets" / "arm64.toml").read_text()
    (folder / "boards" / "arm64.toml").write_text(board)
    (folder / "mine.toml").write_text('name = "mine"\n[activations]\nmethod = "entropy"\n')
    project = load_project(write(folder, GOOD.replace('"int8-default"', '"mine.toml"').replace('"arm64"]', '"boards/arm64.toml"]')))
    assert project.recipe == str(folder / "mine.toml")
    assert project.targets == ("x86_64", str(folder / "boards" / "arm64.toml"))


# Each case: (edit of GOOD, files to write into the folder, the key the error must name, words it must hold).
BAD = {
    "typo'd target": (('"arm64"]', '"arm-64"]'), {}, "compile.targets", "unknown target 'arm-64'"),
    "target file with a bad key": (('"arm64"]', '"board.toml"]'), {"board.toml": 'name = "board"\nnme = 1\n'}, "compile.targets", "board.toml"),
    "missing target file": (('"arm64"]', '"boards/nope.toml"]'), {}, "compile.targets", "file not found"),
    "unknown recipe preset": (('"int8-default"', '"int8-defualt"'), {}, "quantize.recipe", "unknown recipe preset 'int8-defualt'"),
    "missing recipe file": (('"int8-default"', '"recipes/mine.toml"'), {}, "quantize.recipe", "file not found"),
    "recipe with a bad key": (('"int8-default"', '"mine.toml"'), {"mine.toml": 'name = "mine"\n[activations]\nmetod = "mse"\n'}, "quantize.recipe", "unknown key 'activations.metod'"),
    "missing calibration data": (('"calib.npz"', '"nope.npz"'), {}, "data.calib", "data set not found"),
    "unreadable eval data": (('"eval.npz"', '"junk.npz"'), {"junk.npz": "not an npz archive"}, "data.eval", "is not a readable .npz file"),
    "data folder without npz files": (('"eval.npz"', '"empty"'), {"empty/readme.txt": "nothing here"}, "data.eval", "holds no .npz files"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_project_fails_in_load_project_naming_file_and_key(folder, case):
    (old, new), files, key, words = BAD[case]
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    error = load_error(write(folder, GOOD.replace(old, new)))
    assert error.message.startswith(f"edgekit.toml: key '{key}': "), error.message
    assert words in error.message, error.message
    assert error.hint


def test_the_hint_of_an_unknown_target_lists_the_known_ones(folder):
    error = load_error(write(folder, GOOD.replace('"arm64"]', '"arm-64"]')))
    assert error.hint.startswith("known targets: ") and "arm64" in error.hint and "x86_64" in error.hint


@pytest.mark.parametrize("case", list(BAD))
def test_pipeline_on_a_bad_project_exits_2_before_any_stage(folder, cli, case):
    (old, new), files, key, _ = BAD[case]
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    path = write(folder, GOOD.replace(old, new))
    before = sorted(folder.rglob("*"))
    result = cli("pipeline", "--project", path)
    assert result.exit_code == 2
    assert f"key '{key}'" in one_line_error(result)
    assert not (folder / "build").exists()
    assert sorted(folder.rglob("*")) == before  # no stage wrote anything


def test_a_user_metric_that_fails_to_import_names_the_key(folder):
    (folder / "metric.py").write_text("import no_such_module_here\n")
    text = GOOD + '\n[gates.mine]\nmetric = "metric.py:score"\nmin = 1\n'
    error = load_error(write(folder, text))
    assert error.message == "edgekit.toml: key 'gates.mine.metric': importing metric.py failed: ModuleNotFoundError: No module named 'no_such_module_here'"
    (folder / "metric.py").write_text("def other(outputs, reference, labels):\n    return 1.0\n")
    error = load_error(write(folder, text))
    assert error.message == "edgekit.toml: key 'gates.mine.metric': metric.py has no function 'score'"


def test_a_user_metric_may_import_its_neighbours(folder):
    (folder / "helpers.py").write_text("def mean(values):\n    return sum(values) / len(values)\n")
    (folder / "metric.py").write_text("from helpers import mean\ndef score(outputs, reference, labels):\n    return mean([1.0, 3.0])\n")
    project = load_project(write(folder, GOOD + '\n[gates.mine]\nmetric = "metric.py:score"\nmin = 1\n'))
    function = {gate.name: gate for gate in project.gates}["mine"].function
    assert function(None, None, None) == 2.0
