"""Recipes: every preset loads, names resolve, overrides resolve field by field, and every bad file
is an InputError naming the file and the key."""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path

import pytest

from edgekit.errors import InputError
from edgekit.quantizer.calibrators import ACTIVATION_DTYPES as CALIBRATOR_DTYPES
from edgekit.quantizer.calibrators import CALIBRATORS
from edgekit.quantizer.graph import GraphView
from edgekit.quantizer.job import prepare_model
from edgekit.quantizer.plan import QUANTIZERS
from edgekit.quantizer.recipe import (
    ACTIVATION_DTYPES,
    DEFAULT_EXTREME_ABS,
    DEFAULT_OPS,
    DEFAULT_RECIPE,
    METHODS,
    SUPPORTED_OPS,
    ActivationRule,
    Override,
    list_presets,
    load_recipe,
    presets_dir,
)
from edgekit.resources import is_preset_path, preset_name, preset_names, resolve_preset

PRESETS = ("int8-default", "int8-entropy", "int8-percentile", "int8-mse", "int8-overrides-example")
README = presets_dir() / "README.md"
N = 'name = "bad"\n'

PRECEDENCE = """
name = "precedence"
[activations]
method = "minmax"
bins = 1024

[op_types.Relu]
method = "percentile"
percentile = 99
symmetric = true

[op_types.Conv]
exclude = true

[op_types.Softmax]
exclude = true

[nodes."r1"]
percentile = 99.5

[nodes."keep"]
exclude = false

[nodes."drop.me"]
exclude = true

[tensors."r1_out"]
dtype = "uint8"

[tensors."image"]
range = [-1, 1]
"""


def write(tmp_path: Path, text: str, name: str = "recipe.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def load_error(path: Path) -> InputError:
    with pytest.raises(InputError) as info:
        load_recipe(path)
    return info.value


# --- presets and name resolution ---------------------------------------------------------------


def test_the_expected_presets_are_bundled():
    assert set(PRESETS) <= set(list_presets())
    assert DEFAULT_RECIPE in list_presets()
    assert not (presets_dir() / ".gitkeep").exists()


@pytest.mark.parametrize("preset", list_presets())
def test_every_preset_loads_and_explains_itself(preset):
    path = presets_dir() / f"{preset}.toml"
    recipe = load_recipe(preset)
    assert recipe.name == preset and recipe.description
    assert recipe.source == str(path)
    assert recipe.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.read_text().startswith("# "), "each preset opens with a comment saying when to use it"
    assert recipe.weight_granularity == "per_channel"
    json.dumps(recipe.to_dict(), allow_nan=False)


def test_presets_differ_in_what_their_names_say():
    assert load_recipe("int8-entropy").activations.method == "entropy"
    entropy = load_recipe("int8-entropy")
    assert entropy.activations.symmetric is False  # all 256 levels for ReLU outputs; TensorRT's grid is one key away
    # Model inputs (images with a constant background) keep min-max: KL would clip their foreground.
    assert entropy.activation_rule("image", None, None).method == "minmax"
    assert entropy.activation_rule("x", "Conv", "conv1").method == "entropy"
    percentile = load_recipe("int8-percentile").activations
    assert (percentile.method, percentile.percentile, percentile.symmetric) == ("percentile", 99.99, False)
    assert load_recipe("int8-mse").activations.method == "mse"
    # The default's method is the one line in its file (it may change); the rest is fixed here.
    default = load_recipe(None)
    assert default.activations.method == tomllib.loads((presets_dir() / "int8-default.toml").read_text())["activations"]["method"]
    assert (default.activations.dtype, default.activations.symmetric, default.quantize_ops) == ("int8", False, DEFAULT_OPS)


def test_none_loads_the_default_preset():
    recipe = load_recipe(None)
    assert recipe.name == DEFAULT_RECIPE
    assert Path(recipe.source) == presets_dir() / f"{DEFAULT_RECIPE}.toml"


def test_a_path_or_a_toml_name_is_a_file_not_a_preset(tmp_path, monkeypatch):
    path = write(tmp_path, 'name = "mine"\n', "int8-default.toml")
    assert load_recipe(path).source == str(path)
    assert load_recipe(str(path)).name == "mine"
    monkeypatch.chdir(tmp_path)
    assert load_recipe("int8-default.toml").name == "mine"  # ends in .toml: a file in the cwd
    assert load_recipe("int8-default").name == "int8-default"  # bare name: the preset


def test_unknown_preset_lists_the_presets():
    with pytest.raises(InputError) as info:
        load_recipe("int8-fancy")
    assert "'int8-fancy'" in info.value.message
    assert all(name in info.value.hint for name in list_presets())


def test_recipes_and_targets_share_one_name_or_path_resolver(tmp_path):
    assert resolve_preset("int8-entropy", "recipe") == presets_dir() / "int8-entropy.toml"
    assert resolve_preset("x86_64", "target").parent.name == "targets"
    assert [is_preset_path(s) for s in ("int8-default", "x86_64", "mine.toml", "sub/mine", Path("mine"))] == [False, False, True, True, True]
    assert [preset_name(s) for s in ("x86_64", "boards/arm64.toml", Path("a/b.toml"))] == ["x86_64", "arm64", "b"]
    with pytest.raises(InputError) as info:
        resolve_preset("x86-64", "target")
    assert (info.value.message, info.value.hint) == ("unknown target 'x86-64'", f"known targets: {', '.join(preset_names('target'))}")
    with pytest.raises(InputError) as info:
        resolve_preset(tmp_path / "board.toml", "target")
    assert (info.value.message, info.value.hint) == (f"target file not found: {tmp_path / 'board.toml'}", "check the path")
    with pytest.raises(InputError) as info:
        resolve_preset("int8-fancy", "recipe")
    assert info.value.hint == f"available presets: {', '.join(list_presets())}; or give the path of a .toml file"


def test_missing_file_and_directory_are_input_errors(tmp_path):
    missing = load_error(tmp_path / "nope.toml")
    assert "not found" in missing.message and str(tmp_path / "nope.toml") in missing.message
    folder = load_error(tmp_path)
    assert "not a file" in folder.message and str(tmp_path) in folder.message


def test_minimal_recipe_takes_the_defaults(tmp_path):
    recipe = load_recipe(write(tmp_path, 'name = "tiny"\n'))
    assert recipe.activations == ActivationRule()
    assert (recipe.description, recipe.weight_granularity, recipe.quantize_ops) == ("", "per_channel", DEFAULT_OPS)
    assert recipe.extreme_abs == DEFAULT_EXTREME_ABS
    assert recipe.op_types == recipe.nodes == recipe.tensors == {}


def test_integers_are_accepted_where_numbers_belong(tmp_path):
    recipe = load_recipe(write(tmp_path, N + '[activations]\npercentile = 100\nextreme_abs = 1000\n[tensors."t"]\nrange = [0, 6]\n'))
    assert recipe.activations.percentile == 100.0 and isinstance(recipe.activations.percentile, float)
    assert recipe.extreme_abs == 1000.0 and isinstance(recipe.extreme_abs, float)
    assert recipe.tensors["t"].range == (0.0, 6.0)


# --- precedence and exclusion ---------------------------------------------------------------


@pytest.fixture
def precedence(tmp_path):
    return load_recipe(write(tmp_path, PRECEDENCE))


def test_overrides_resolve_field_by_field(precedence):
    rule = precedence.activation_rule("r1_out", "Relu", "r1")
    assert rule == ActivationRule(dtype="uint8", symmetric=True, method="percentile", percentile=99.5, bins=1024)
    assert precedence.rule_sources("r1_out", "Relu", "r1") == ['op_types.Relu', 'nodes."r1"', 'tensors."r1_out"']
    assert rule.method_params() == {"percentile": 99.5}


def test_only_tables_that_set_something_are_sources(precedence):
    other_relu = precedence.activation_rule("r2_out", "Relu", "r2")
    assert (other_relu.method, other_relu.percentile, other_relu.dtype) == ("percentile", 99.0, "int8")
    assert precedence.rule_sources("r2_out", "Relu", "r2") == ["op_types.Relu"]
    # op_types.Softmax only excludes: it does not shape the tensor's rule.
    assert precedence.rule_sources("probs", "Softmax", "sm") == []
    assert precedence.activation_rule("probs", "Softmax", "sm") == ActivationRule(bins=1024)
    assert precedence.activation_rule("probs", "Softmax", "sm").method_params() == {}


def test_graph_inputs_take_defaults_and_their_tensor_table(precedence):
    rule = precedence.activation_rule("image", None, None)
    assert rule.range == (-1.0, 1.0) and rule.method == "minmax"
    assert precedence.rule_sources("image", None, None) == ['tensors."image"']


def test_exclusion_reasons_name_the_recipe_key(precedence):
    assert precedence.exclusion("drop.me", "Relu") == 'excluded by recipe key nodes."drop.me".exclude'
    assert precedence.exclusion("c1", "Conv") == "excluded by recipe key op_types.Conv.exclude"
    assert precedence.exclusion("sm", "Softmax") == "excluded by recipe key op_types.Softmax.exclude"
    assert precedence.exclusion("r1", "Relu") is None  # a node table without exclude inherits
    assert precedence.exclusion("m", "ReduceMean") is None  # [ops].quantize is the planner's question


def test_node_exclude_false_beats_op_type_exclude_true(precedence):
    assert precedence.exclusion("keep", "Conv") is None
    assert precedence.exclusion("c2", "Conv") is not None


def test_with_exclusions_copies_and_adds(precedence):
    budget = precedence.with_exclusions(["keep", "r1"])
    assert budget.exclusion("keep", "Conv") == "excluded by budget"
    assert budget.exclusion("r1", "Relu") == "excluded by budget"
    assert precedence.exclusion("keep", "Conv") is None  # the original is unchanged
    assert budget.activation_rule("r1_out", "Relu", "r1") == precedence.activation_rule("r1_out", "Relu", "r1")
    assert budget.rule_sources("r1_out", "Relu", "r1") == precedence.rule_sources("r1_out", "Relu", "r1")
    again = budget.with_exclusions(["x"], reason_key="sensitivity")
    assert again.exclusion("x", "Add") == "excluded by sensitivity"
    assert again.to_dict()["extra_exclusions"] == {"keep": "budget", "r1": "budget", "x": "sensitivity"}


def test_to_dict_is_deterministic_and_pins_the_file(tmp_path, precedence):
    path = tmp_path / "recipe.toml"
    first = json.dumps(precedence.to_dict())
    assert first == json.dumps(precedence.to_dict()) == json.dumps(load_recipe(path).to_dict())
    data = precedence.to_dict()
    assert data["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (data["name"], data["source"]) == ("precedence", str(path))
    assert data["activations"] == {**ActivationRule(bins=1024).to_dict(), "extreme_abs": DEFAULT_EXTREME_ABS}
    assert list(data["nodes"]) == sorted(data["nodes"])
    assert data["nodes"]["keep"] == {"exclude": False}
    assert data["tensors"]["image"] == {"range": [-1.0, 1.0]}
    assert data["op_types"]["Relu"] == {"symmetric": True, "method": "percentile", "percentile": 99.0}
    assert json.loads(first) == data


def test_rules_check_themselves():
    with pytest.raises(ValueError):
        ActivationRule(method="kl")
    with pytest.raises(ValueError):
        ActivationRule(range=(1.0, 6.0))
    with pytest.raises(ValueError):
        Override(bins=16)


# --- bad files ---------------------------------------------------------------------------------

BAD = [
    ("unknown-top", N + "colour = 1\n", "colour"),
    ("unknown-activation-key", N + '[activations]\nmethd = "mse"\n', "activations.methd"),
    ("unknown-weights-key", N + '[weights]\naxis = 0\n', "weights.axis"),
    ("unknown-ops-key", N + '[ops]\nskip = ["Conv"]\n', "ops.skip"),
    ("unknown-node-key", N + '[nodes."c1"]\nmethd = "mse"\n', 'nodes."c1".methd'),
    ("unknown-op-type-key", N + "[op_types.Relu]\nclip = 6\n", "op_types.Relu.clip"),
    ("dotted-node-name-unquoted", N + "[nodes.layer1.conv]\nexclude = true\n", 'nodes."layer1".conv'),
    ("exclude-on-tensor", N + '[tensors."t"]\nexclude = true\n', 'tensors."t".exclude'),
    ("range-in-activations", N + "[activations]\nrange = [0, 1]\n", "activations.range"),
    ("missing-name", '[activations]\nmethod = "mse"\n', "name"),
    ("name-not-string", "name = 3\n", "name"),
    ("name-empty", 'name = ""\n', "name"),
    ("description-not-string", N + "description = 3\n", "description"),
    ("activations-not-table", N + "activations = 3\n", "activations"),
    ("node-not-table", N + 'nodes = { "c1" = 3 }\n', 'nodes."c1"'),
    ("symmetric-int", N + "[activations]\nsymmetric = 1\n", "activations.symmetric"),
    ("percentile-string", N + '[activations]\npercentile = "99.9"\n', "activations.percentile"),
    ("percentile-bool", N + "[activations]\npercentile = true\n", "activations.percentile"),
    ("bins-float", N + "[activations]\nbins = 2048.0\n", "activations.bins"),
    ("bins-bool", N + "[activations]\nbins = true\n", "activations.bins"),
    ("dtype-int", N + "[activations]\ndtype = 8\n", "activations.dtype"),
    ("exclude-string", N + '[nodes."c1"]\nexclude = "yes"\n', 'nodes."c1".exclude'),
    ("extreme-bool", N + "[activations]\nextreme_abs = true\n", "activations.extreme_abs"),
    ("method-unknown", N + '[activations]\nmethod = "kl"\n', "activations.method"),
    ("method-unknown-in-op-type", N + '[op_types.Add]\nmethod = "max"\n', "op_types.Add.method"),
    ("dtype-unknown", N + '[activations]\ndtype = "int16"\n', "activations.dtype"),
    ("dtype-unknown-in-tensor", N + '[tensors."x.y"]\ndtype = "int4"\n', 'tensors."x.y".dtype'),
    ("granularity-unknown", N + '[weights]\ngranularity = "per_row"\n', "weights.granularity"),
    ("percentile-too-low", N + "[activations]\npercentile = 50\n", "activations.percentile"),
    ("percentile-too-high", N + "[activations]\npercentile = 100.5\n", "activations.percentile"),
    ("percentile-nan", N + "[activations]\npercentile = nan\n", "activations.percentile"),
    ("percentile-in-node", N + '[nodes."c1"]\npercentile = 10\n', 'nodes."c1".percentile'),
    ("bins-too-few", N + "[activations]\nbins = 64\n", "activations.bins"),
    ("bins-too-many", N + "[activations]\nbins = 100000\n", "activations.bins"),
    ("extreme-zero", N + "[activations]\nextreme_abs = 0\n", "activations.extreme_abs"),
    ("extreme-inf", N + "[activations]\nextreme_abs = inf\n", "activations.extreme_abs"),
    ("range-one-number", N + '[tensors."t"]\nrange = [6.0]\n', 'tensors."t".range'),
    ("range-not-list", N + '[tensors."t"]\nrange = 6.0\n', 'tensors."t".range'),
    ("range-string", N + '[tensors."t"]\nrange = [0, "6"]\n', 'tensors."t".range'),
    ("range-reversed", N + '[tensors."t"]\nrange = [6.0, -1.0]\n', 'tensors."t".range'),
    ("range-empty", N + '[tensors."t"]\nrange = [0.0, 0.0]\n', 'tensors."t".range'),
    ("range-without-zero", N + '[nodes."c1"]\nrange = [1.0, 6.0]\n', 'nodes."c1".range'),
    ("range-inf", N + '[tensors."t"]\nrange = [0.0, inf]\n', 'tensors."t".range'),
    ("ops-unsupported", N + '[ops]\nquantize = ["Conv", "Softmax"]\n', "ops.quantize"),
    ("ops-not-list", N + '[ops]\nquantize = "Conv"\n', "ops.quantize"),
    ("ops-not-strings", N + "[ops]\nquantize = [1]\n", "ops.quantize"),
]


@pytest.mark.parametrize(("text", "key"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_bad_recipe_names_file_and_key(tmp_path, text, key):
    path = write(tmp_path, text, "bad.toml")
    error = load_error(path)
    assert error.message.startswith(f"{path}: "), error.message
    assert f"'{key}'" in error.message, error.message
    assert error.hint, "every error says how to fix it"
    assert "\n" not in error.one_line()


@pytest.mark.parametrize(
    ("text", "allowed"),
    [
        (N + '[activations]\nmethd = "mse"\n', ["dtype", "method", "percentile", "bins", "extreme_abs"]),
        (N + '[activations]\nmethod = "kl"\n', list(METHODS)),
        (N + '[activations]\ndtype = "int16"\n', list(ACTIVATION_DTYPES)),
        (N + '[weights]\ngranularity = "per_row"\n', ["per_channel", "per_tensor"]),
        (N + '[tensors."t"]\nexclude = true\n', ["dtype", "range"]),
        (N + '[ops]\nquantize = ["Softmax"]\n', list(SUPPORTED_OPS)),
        (N + "[activations]\nbins = 64\n", ["128", "65536"]),
    ],
)
def test_hint_gives_the_allowed_keys_or_values(tmp_path, text, allowed):
    error = load_error(write(tmp_path, text, "bad.toml"))
    assert all(word in error.hint for word in allowed), error.hint


def test_unsupported_op_is_named(tmp_path):
    error = load_error(write(tmp_path, N + '[ops]\nquantize = ["Conv", "Softmax", "LSTM"]\n', "bad.toml"))
    assert "Softmax, LSTM" in error.message


def test_toml_syntax_error_gives_the_line(tmp_path):
    path = write(tmp_path, N + '[activations\nmethod = "mse"\n', "bad.toml")
    error = load_error(path)
    assert error.message.startswith(f"{path}: malformed TOML")
    assert "line 2" in error.message


def test_non_utf8_file_is_an_input_error(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_bytes(b'name = "caf\xe9"\n')
    assert load_error(path).message.startswith(f"{path}: ")


# --- the recipe against a model ------------------------------------------------------------------

NODES = {"node_Conv_67", "node_relu", "node_Conv_73", "node_linear"}
TENSORS = {"image", "getitem", "relu", "relu_1", "logits"}


def test_check_against_accepts_names_the_model_has(tmp_path):
    recipe = load_recipe(write(tmp_path, N + '[nodes."node_Conv_73"]\nmethod = "mse"\n[tensors."relu"]\nbins = 512\n'))
    recipe.check_against(NODES, TENSORS)


def test_check_against_names_the_unknown_node_with_close_matches(tmp_path):
    path = write(tmp_path, N + '[nodes."node_Conv_76"]\nexclude = true\n')
    recipe = load_recipe(path)
    with pytest.raises(InputError) as info:
        recipe.check_against(NODES, TENSORS)
    assert info.value.message.startswith(f"{path}: key 'nodes.\"node_Conv_76\"'")
    assert "node_Conv_73" in info.value.hint and "node_Conv_67" in info.value.hint


def test_check_against_names_the_unknown_tensor_with_examples(tmp_path):
    path = write(tmp_path, N + '[tensors."zzzz"]\nbins = 512\n')
    with pytest.raises(InputError) as info:
        load_recipe(path).check_against(NODES, TENSORS)
    assert "'tensors.\"zzzz\"'" in info.value.message and "tensor" in info.value.message
    assert "getitem" in info.value.hint  # no close match: some of the model's tensor names


def test_overrides_example_fits_the_demo_model(demo_onnx):
    view = GraphView.of(prepare_model(demo_onnx)[0])
    recipe = load_recipe("int8-overrides-example")
    recipe.check_against({n.name for n in view.nodes}, view.tensor_names())
    assert recipe.op_types and recipe.nodes and recipe.tensors
    assert recipe.exclusion("node_linear", "Gemm") == 'excluded by recipe key nodes."node_linear".exclude'
    assert recipe.activation_rule("relu", "Relu", "node_relu").range is not None


# --- one fact, one place ---------------------------------------------------------------------------


def test_recipe_vocabulary_matches_the_quantizer():
    assert set(SUPPORTED_OPS) == set(QUANTIZERS)
    assert METHODS == tuple(CALIBRATORS)
    assert ACTIVATION_DTYPES == CALIBRATOR_DTYPES


def test_readme_documents_every_preset_and_supported_op():
    text = README.read_text()
    assert all(f"`{preset}`" in text for preset in list_presets())
    assert all(f"`{op}`" in text for op in SUPPORTED_OPS)
    assert "--recipe int8-entropy" in text


def test_readme_toml_examples_are_valid_recipes(tmp_path):
    blocks = re.findall(r"```toml\n(.*?)```", README.read_text(), re.DOTALL)
    assert len(blocks) >= 8
    for index, block in enumerate(blocks):
        text = block if re.search(r"^name\s*=", block, re.MULTILINE) else 'name = "readme"\n' + block
        load_recipe(write(tmp_path, text, f"block{index}.toml"))


def test_readme_error_example_is_what_edgekit_prints(tmp_path, monkeypatch):
    shown = re.search(r"^edgekit: error: (my-recipe\.toml: .*)$", README.read_text(), re.MULTILINE).group(1)
    monkeypatch.chdir(tmp_path)
    write(tmp_path, N + '[activations]\nmethd = "mse"\n', "my-recipe.toml")
    assert load_error(Path("my-recipe.toml")).one_line() == shown
