"""edgekit quantize end to end: QDQ models that ONNX Runtime and TVM run, records that reproduce them,
transformers with float-minimum masks, recipe overrides, and the accuracy budget.

Every accuracy figure is measured here in ONNX Runtime on held-out data the quantizer never saw.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from conftest import CALIB_DATA, EVAL_DATA, REPO
from onnx import numpy_helper
from quant_models import sentence_batch

import edgekit
from edgekit.quantizer.accuracy_budget import AccuracyBudget, meet_budget
from edgekit.quantizer.calibration import plan_with
from edgekit.quantizer.job import build_qdq, start_job
from edgekit.quantizer.params import QuantParams, quantize
from edgekit.quantizer.plan import RESIDUAL_REASON, make_plan
import edgekit.quantizer.sensitivity as sensitivity_module
from edgekit.quantizer.sensitivity import error_growth, layers, reuse_ranking, sensitivity_report
from edgekit.reference import Reference

BERT_FACTORY = f"{REPO / 'tests' / 'quant_models.py'}:sentence_encoder"


def top1(model: Path, data: Path = EVAL_DATA) -> float:
    """Held-out top-1 in percent, measured with ONNX Runtime."""
    session = Reference(Path(model))
    with np.load(data) as d:
        images, labels = d["image"], d["label"]
    predictions = [int(np.argmax(session({"image": x})["logits"])) for x in images]
    return 100.0 * float(np.mean(np.array(predictions) == labels))


def initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}


@pytest.fixture(scope="module")
def demo_int8(workdir, demo_onnx) -> edgekit.quantizer.QuantizeResult:
    return edgekit.quantize(demo_onnx, CALIB_DATA, workdir / "quant" / "digits.int8.onnx")


@pytest.fixture(scope="module")
def bert(workdir) -> tuple[Path, Path, Path]:
    """The BERT-style sentence encoder, calibration data (64 sentences) and held-out data (64)."""
    folder = workdir / "bert"
    folder.mkdir(exist_ok=True)
    model = folder / "encoder.onnx"
    edgekit.export(BERT_FACTORY, model, input_names=["input_ids", "attention_mask"], output_names=["embedding"])
    np.savez(folder / "calib.npz", **sentence_batch(64, seed=1))
    np.savez(folder / "eval.npz", **sentence_batch(64, seed=2))
    return model, folder / "calib.npz", folder / "eval.npz"


# ------------------------------------------------------------------ the demo model


def test_demo_default_recipe_loses_at_most_one_point(demo_onnx, demo_int8):
    float_top1, int8_top1 = top1(demo_onnx), top1(demo_int8.model_path)
    assert float_top1 > 98.0
    assert float_top1 - int8_top1 <= 1.0, (float_top1, int8_top1)


def test_qdq_model_is_quantized_the_way_the_record_says(demo_int8):
    model = onnx.load(str(demo_int8.model_path))
    ops = [n.op_type for n in model.graph.node]
    record = demo_int8.record
    assert ops.count("QuantizeLinear") == record["summary"]["quantized_activations"]
    assert ops.count("DequantizeLinear") == record["summary"]["quantized_activations"] + record["summary"]["quantized_constants"]
    precision = {n["name"]: n["precision"] for n in record["nodes"]}
    assert precision["node_Conv_67"] == "int8" and precision["node_linear"] == "int8"
    assert precision["node_mean"] == "int8"  # ReduceMean averages on the integer grid
    reasons = {n["name"]: n["reason"] for n in record["nodes"] if n["precision"] == "float"}
    assert all(reasons.values()), "every float node says why"
    # ReLUs after convs run inside the conv's integer output: no QDQ between them.
    fused = {f["producer"]: f["activation"] for f in record["fused"]}
    assert fused["node_Conv_67"] == "node_relu"
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] == "getitem" for n in model.graph.node)


def test_record_parameters_reproduce_the_models_constants(demo_onnx, demo_int8):
    """Rounding each float constant with the recorded scale and zero point gives the QDQ model's own int8/int32 values."""
    qdq = initializers(onnx.load(str(demo_int8.model_path)))
    source = initializers(onnx.load(str(demo_onnx)))
    constants = [t for t in demo_int8.record["tensors"] if t["role"] != "activation"]
    assert {t["role"] for t in constants} == {"weight", "bias"}
    for entry in constants:
        params = QuantParams.from_dict(entry)
        stored = qdq[entry["quantized_name"]]
        assert stored.dtype == np.dtype(entry["dtype"])
        np.testing.assert_array_equal(quantize(source[entry["name"]], params), stored, err_msg=entry["name"])
        key = entry["quantized_name"].removesuffix("_quantized")
        np.testing.assert_array_equal(qdq[f"{key}_scale"].reshape(-1), np.float32(entry["scale"]))
        np.testing.assert_array_equal(qdq[f"{key}_zero_point"].reshape(-1), np.array(entry["zero_point"], stored.dtype))
    for entry in demo_int8.record["tensors"]:
        if entry["role"] == "activation":
            assert qdq[f"{entry['name']}_scale"] == np.float32(entry["scale"][0])
            assert qdq[f"{entry['name']}_zero_point"] == entry["zero_point"][0]


def test_record_describes_every_quantized_tensor(demo_int8):
    record = demo_int8.record
    for entry in record["tensors"]:
        for key in ("name", "role", "dtype", "scale", "zero_point", "granularity", "observed_range", "method", "clipped_fraction", "consumers"):
            assert key in entry, (entry["name"], key)
        assert all(s > 0 for s in entry["scale"])
        assert 0.0 <= entry["clipped_fraction"] <= 1.0
        if entry["role"] == "weight":
            assert entry["granularity"] == "per_channel" and entry["dtype"] == "int8" and set(entry["zero_point"]) == {0}
        if entry["role"] == "bias":
            assert entry["dtype"] == "int32"
    weights = {t["consumers"][0]: t for t in record["tensors"] if t["role"] == "weight"}
    activations = {t["name"]: t for t in record["tensors"] if t["role"] == "activation"}
    for bias in (t for t in record["tensors"] if t["role"] == "bias"):
        input_scale = activations[bias["scale_from"]["input"]]["scale"][0]
        expected = np.float32(input_scale) * np.float32(weights[bias["consumers"][0]]["scale"])
        np.testing.assert_allclose(bias["scale"], expected, rtol=1e-6)
    # MaxPool's input reuses the parameters calibrated on the pool's output (plan._pooled_grids).
    pooled = activations["relu"]
    assert pooled["shares_params_with"] == "max_pool2d" and pooled["scale"] == activations["max_pool2d"]["scale"]
    json.dumps(record, allow_nan=False)  # the record is strict JSON


def test_same_inputs_give_byte_identical_outputs(tmp_path, demo_onnx):
    first = edgekit.quantize(demo_onnx, CALIB_DATA, tmp_path / "a" / "m.int8.onnx", recipe="int8-entropy")
    second = edgekit.quantize(demo_onnx, CALIB_DATA, tmp_path / "b" / "m.int8.onnx", recipe="int8-entropy")
    assert first.model_path.read_bytes() == second.model_path.read_bytes()
    assert first.record_path.read_bytes() == second.record_path.read_bytes()


@pytest.mark.slow
def test_qdq_model_compiles_runs_and_checks_with_tvm(tmp_path, cli, demo_int8):
    artifact = tmp_path / "digits_int8"
    assert cli("compile", demo_int8.model_path, "-o", artifact).exit_code == 0
    # TVM rounds x / scale with its own float code, so an activation can land one step away from
    # ONNX Runtime's; that shows as a small max abs, not in cosine or top-1.
    result = cli("check", artifact, "--reference", demo_int8.model_path, "--data", EVAL_DATA,
                 "--max-abs", "0.1", "--min-cosine", "0.999", "--min-top1", "0.99")
    assert result.exit_code == 0, result.stdout + result.stderr


# ------------------------------------------------------------------ recipes


def test_recipe_overrides_reach_the_record(tmp_path, demo_onnx):
    result = edgekit.quantize(demo_onnx, CALIB_DATA, tmp_path / "m.int8.onnx", recipe="int8-overrides-example")
    record = result.record
    nodes = {n["name"]: n for n in record["nodes"]}
    assert nodes["node_linear"]["precision"] == "float"
    assert "nodes.\"node_linear\".exclude" in nodes["node_linear"]["reason"]
    tensors = {t["name"]: t for t in record["tensors"] if t["role"] == "activation"}
    relu = tensors["relu"]
    assert relu["method"] == "fixed" and relu["clip_range"] == [0.0, 6.0]
    assert relu["rule_sources"] == ["op_types.Relu", 'tensors."relu"']
    assert relu["scale"][0] == pytest.approx(6.0 / 255, rel=1e-6)  # asymmetric int8 over [0, 6]
    conv73_out = next(t for t in tensors.values() if t["producer"] == "node_Conv_73")
    assert conv73_out["method"] == "mse"


def test_every_calibration_method_stays_within_a_point_on_the_demo(tmp_path, demo_onnx):
    float_top1 = top1(demo_onnx)
    for recipe in ("int8-entropy", "int8-percentile", "int8-mse"):
        result = edgekit.quantize(demo_onnx, CALIB_DATA, tmp_path / f"{recipe}.onnx", recipe=recipe)
        assert float_top1 - top1(result.model_path) <= 1.0, recipe
        methods = {t["method"] for t in result.record["tensors"] if t["role"] == "activation"}
        assert recipe.removeprefix("int8-") in methods


# ------------------------------------------------------------------ transformers


def test_bert_encoder_keeps_sentence_embeddings(tmp_path, bert):
    model, calib, held_out = bert
    result = edgekit.quantize(model, calib, tmp_path / "encoder.int8.onnx")
    reference, quantized = Reference(model), Reference(result.model_path)
    with np.load(held_out) as data:
        samples = [{name: data[name][i] for name in ("input_ids", "attention_mask")} for i in range(len(data["input_ids"]))]
    cosines = []
    for feeds in samples:
        a, b = reference(feeds)["embedding"].ravel(), quantized(feeds)["embedding"].ravel()
        cosines.append(float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)))
    assert np.mean(cosines) >= 0.99 and np.min(cosines) >= 0.98, (np.mean(cosines), np.min(cosines))
    record = result.record
    precision = {}
    for node in record["nodes"]:
        precision.setdefault(node["op_type"], set()).add(node["precision"])
    assert precision["MatMul"] == {"int8"}
    for op in ("LayerNormalization", "Softmax", "Gather"):
        assert precision[op] == {"float"}, op
    # GELU (Div, Erf, Add, Mul, Mul of the FFN's hidden activation) is one lookup table per layer.
    assert precision["Erf"] == {"int8"} and precision["Div"] >= {"int8"}
    chains = record["lookup_chains"]
    assert chains and all(len(c["nodes"]) == 5 for c in chains), chains
    # Residual adds into LayerNorm stay float by rule; Linear's bias Add is the MatMul's int32 bias.
    residual = [n for n in record["nodes"] if n["op_type"] == "Add" and n["precision"] == "float" and "residual add" in n["reason"]]
    assert residual and all(n["reason"] == RESIDUAL_REASON for n in residual)
    bias_adds = [n for n in record["nodes"] if any("as the int32 bias of" in note for note in n["notes"])]
    assert bias_adds and all(n["precision"] == "int8" for n in bias_adds)
    biases = [t for t in record["tensors"] if t["role"] == "bias" and any(t["name"] in note for n in bias_adds for note in n["notes"])]
    assert biases and all(t["dtype"] == "int32" for t in biases), biases


def test_float_minimum_mask_stays_float_and_histograms_survive_it(tmp_path, bert):
    """ONNX Runtime's Percentile and Entropy calibrators crash on this model ('Too many bins for data range')."""
    model, calib, _ = bert
    for recipe in ("int8-percentile", "int8-entropy", "int8-mse"):
        result = edgekit.quantize(model, calib, tmp_path / f"{recipe}.onnx", recipe=recipe)
        record = result.record
        extreme = {e["tensor"]: e["why"] for e in record["extreme_tensors"]}
        assert extreme and all("mask or sentinel" in why for why in extreme.values())
        mask_readers = [n for n in record["nodes"] if any(t in n["reason"] for t in extreme)]
        assert mask_readers and all(n["precision"] == "float" for n in mask_readers)
        for entry in record["tensors"]:
            assert entry["name"] not in extreme
            assert max(abs(v) for v in entry["observed_range"]) < 1e4
        assert result.agreement[0].cosine_mean > 0.98, recipe


# ------------------------------------------------------------------ one plan per recipe


def test_one_plan_per_job_serves_every_build_that_forces_nothing(demo_onnx):
    job = start_job(demo_onnx, CALIB_DATA)
    assert job.calibration.extreme == {}  # nothing for calibration to change: the candidate plan is the plan
    assert job.plan == plan_with(job.view, job.recipe, job.calibration)
    assert build_qdq(job).plan is job.plan and build_qdq(job, {}).plan is job.plan
    forced = build_qdq(job, {"node_linear": "test"}).plan
    assert "node_linear" in job.plan.quantized_nodes()
    assert forced.quantized_nodes() == job.plan.quantized_nodes() - {"node_linear"}


def test_extreme_tensors_replan_after_calibration(bert):
    model, calib, _ = bert
    job = start_job(model, calib)
    assert job.calibration.extreme
    assert job.plan == plan_with(job.view, job.recipe, job.calibration)
    assert job.plan != make_plan(job.view, job.recipe)  # the mask's readers stay float


def test_every_single_layer_build_finds_its_calibration(bert):
    """The analysis quantizes one layer at a time; a lookup-table chain is one layer (it becomes one
    table), so no single-layer build cuts one short. A chain cut short from outside (one of its
    nodes forced to float) quantizes the chain's interior tensors, which the full plan hides inside
    one table: they are calibrated too (once a KeyError)."""
    model, calib, _ = bert
    job = start_job(model, calib)
    full = build_qdq(job)
    groups = layers(full)
    assert job.plan.chains
    for chain in job.plan.chains:
        assert groups[chain.nodes[0]] == list(chain.nodes)
    for name in groups:
        others = {node: "test" for group, nodes in groups.items() if group != name for node in nodes}
        assert set(build_qdq(job, others).activations) <= set(job.calibration.tensors)
    interiors = set().union(*(chain.inner for chain in job.plan.chains))
    chain = next(c for c in job.plan.chains if len(c.nodes) >= 3)
    cut = build_qdq(job, {chain.nodes[0]: "test"})  # the rest is a chain on the first node's output
    assert set(cut.activations) & interiors and set(cut.activations) <= set(job.calibration.tensors)


# ------------------------------------------------------------------ accuracy budget


def sensitized_demo(demo_onnx: Path, path: Path, factor: float = 2000.0) -> Path:
    """The demo model with one ReLU channel scaled up by `factor` and the next conv scaled down.

    ReLU and MaxPool commute with positive scaling, so the float model computes the same function;
    but one channel now dominates the per-tensor range of `relu`, and int8 crushes the others.
    """
    model = onnx.load(str(demo_onnx))
    weights = {init.name: init for init in model.graph.initializer}
    conv1 = next(n for n in model.graph.node if n.name == "node_Conv_67")
    conv2 = next(n for n in model.graph.node if n.name == "node_Conv_69")
    w1 = numpy_helper.to_array(weights[conv1.input[1]]).copy()
    w1[0] *= factor
    weights[conv1.input[1]].CopyFrom(numpy_helper.from_array(w1, conv1.input[1]))
    if len(conv1.input) > 2:
        b1 = numpy_helper.to_array(weights[conv1.input[2]]).copy()
        b1[0] *= factor
        weights[conv1.input[2]].CopyFrom(numpy_helper.from_array(b1, conv1.input[2]))
    w2 = numpy_helper.to_array(weights[conv2.input[1]]).copy()
    w2[:, 0] /= factor
    weights[conv2.input[1]].CopyFrom(numpy_helper.from_array(w2, conv2.input[1]))
    onnx.save(model, str(path))
    return path


def test_budget_falls_back_the_sensitive_layer(tmp_path, demo_onnx):
    model = sensitized_demo(demo_onnx, tmp_path / "sensitive.onnx")
    float_top1 = top1(model)
    assert abs(float_top1 - top1(demo_onnx)) < 0.5  # the same function in float
    plain = edgekit.quantize(model, CALIB_DATA, tmp_path / "plain.int8.onnx")
    plain_drop = float_top1 - top1(plain.model_path)
    assert plain_drop > 3.0, f"the sensitized layer should hurt int8: drop {plain_drop}"

    budgeted = edgekit.quantize(model, CALIB_DATA, tmp_path / "budget.int8.onnx", max_drop=1.0, evaluation="top1", eval_data=EVAL_DATA)
    drop = float_top1 - top1(budgeted.model_path)
    assert drop <= 1.0 < plain_drop
    fallbacks = budgeted.record["fallbacks"]
    outcome = budgeted.record["budget"]
    assert fallbacks and outcome["drop"] <= 1.0 and outcome["fallbacks"] == len(fallbacks)
    # How sure the final score is: a binomial standard error over the evaluation set.
    sure = outcome["confidence"]
    p = (float_top1 - outcome["drop"]) / 100.0
    assert sure["samples"] == len(np.load(EVAL_DATA)["label"]) and sure["standard_error"] == pytest.approx(100 * np.sqrt(p * (1 - p) / sure["samples"]), rel=1e-3)
    # Every prefix the search tried is recorded: none (the plain model's drop) first, the one kept among them.
    search = outcome["search"]
    assert search[0] == {"fallbacks": 0, "score": pytest.approx(float_top1 - plain_drop, abs=1e-6), "drop": pytest.approx(plain_drop, abs=1e-6)}
    prefixes = [step for step in search if "fallbacks" in step]
    found = max(step["fallbacks"] for step in prefixes if step["drop"] <= 1.0 and not any(0 < other["fallbacks"] < step["fallbacks"] and other["drop"] <= 1.0 for other in prefixes))
    assert all(step["drop"] > 1.0 for step in prefixes if step["fallbacks"] < found)
    # Then the costliest of that prefix are tried back in int8; those that stay there are not fallbacks.
    restored = {step["restored"] for step in search if step.get("kept_int8")}
    assert len(fallbacks) == found - len(restored) and not restored & {f["node"] for f in fallbacks}
    assert all(f["order"] <= found and f["macs"] > 0 for f in fallbacks)
    # The first layer to go is one that reads the crushed tensor.
    assert {"node_Conv_67", "node_Conv_69"} & {f["node"] for f in fallbacks}
    precision = {n["name"]: n for n in budgeted.record["nodes"]}
    for fallback in fallbacks:
        assert precision[fallback["node"]]["precision"] == "float"
        assert "accuracy budget" in precision[fallback["node"]]["reason"]
    # Each fallback is a layer with its fused ReLU; the rest of the model stays int8.
    assert len(fallbacks) <= 3 and budgeted.record["summary"]["int8_nodes"] >= plain.record["summary"]["int8_nodes"] // 2


def test_budget_ranking_is_the_analysis_ranking(tmp_path, demo_onnx):
    """--max-drop with --analyze ranks the layers once: the budget's ranking, restricted to the layers
    still int8, is the report that measuring the final model again gives."""
    job = start_job(sensitized_demo(demo_onnx, tmp_path / "sensitive.onnx"), CALIB_DATA)
    plain = build_qdq(job)
    met = meet_budget(job, plain, AccuracyBudget(1.0, "top1", EVAL_DATA))
    assert met.fallbacks and met.ranking
    fallen = {f["node"] for f in met.fallbacks}
    reused = sensitivity_report(job, met.quantized, ranking=met.ranking)
    assert reused == sensitivity_report(job, met.quantized)
    assert [row["node"] for row in reused["layers"]] == [row.node for row in met.ranking if row.node not in fallen]
    # A ranking that misses one of the model's layers is measured afresh, not reused.
    assert reuse_ranking(met.ranking, plain) == met.ranking
    assert reuse_ranking(met.ranking[:-1], plain) is None


def test_cosine_budget_records_how_sure_its_score_is(tmp_path, demo_onnx):
    model = sensitized_demo(demo_onnx, tmp_path / "sensitive.onnx")
    result = edgekit.quantize(model, CALIB_DATA, tmp_path / "m.int8.onnx", max_drop=0.001, evaluation="cosine", eval_data=EVAL_DATA)
    outcome = result.record["budget"]
    assert outcome["drop"] <= 0.001 and outcome["fallbacks"] >= 1
    sure = outcome["confidence"]
    assert sure["samples"] == sure["data_samples"] == len(np.load(EVAL_DATA)["label"])  # the demo is cheap: all of it
    assert 0.0 <= sure["standard_error"] < 0.01 and sure["min"] <= outcome["int8_score"] <= 1.0


def test_budget_evaluation_is_bounded_by_its_cost(tmp_path, demo_onnx, monkeypatch):
    """Past EVAL_MACS the budget evaluates on the first samples only (never below EVAL_MIN_SAMPLES),
    and says so: budget.confidence gives the samples used and the samples in the file."""
    import edgekit.quantizer.accuracy_budget as budget_module

    model = sensitized_demo(demo_onnx, tmp_path / "sensitive.onnx")
    monkeypatch.setattr(budget_module, "EVAL_MACS", 1.0)
    result = edgekit.quantize(model, CALIB_DATA, tmp_path / "m.int8.onnx", max_drop=0.01, evaluation="cosine", eval_data=EVAL_DATA)
    sure = result.record["budget"]["confidence"]
    assert sure["samples"] == budget_module.EVAL_MIN_SAMPLES < sure["data_samples"] == len(np.load(EVAL_DATA)["label"])


def test_error_growth_finds_the_sensitive_layer_in_one_run(tmp_path, demo_onnx, monkeypatch):
    """The one-run estimate ranks the layer reading the crushed tensor first, as the single-layer
    pass does; the budget uses it where the single-layer pass would cost too much, and meets its drop."""
    model = sensitized_demo(demo_onnx, tmp_path / "sensitive.onnx")
    job = start_job(model, CALIB_DATA)
    plain = build_qdq(job)
    estimated = error_growth(job, plain)
    assert estimated[0].node in {"node_Conv_67", "node_Conv_69"}
    assert {row.node for row in estimated} == set(layers(plain))
    monkeypatch.setattr(sensitivity_module, "SENSITIVITY_MACS", 1.0)
    met = meet_budget(job, plain, AccuracyBudget(1.0, "top1", EVAL_DATA))
    assert met.outcome["sensitivity"].startswith("error growth") and met.outcome["drop"] <= 1.0
    assert met.ranking is None  # an estimate is not what --analyze measures: it is not reused


def test_budget_and_analysis_write_what_each_writes_alone(tmp_path, demo_onnx):
    model = sensitized_demo(demo_onnx, tmp_path / "sensitive.onnx")
    both = edgekit.quantize(model, CALIB_DATA, tmp_path / "both" / "m.int8.onnx", max_drop=1.0, evaluation="top1", eval_data=EVAL_DATA, analyze=True)
    budget = edgekit.quantize(model, CALIB_DATA, tmp_path / "budget" / "m.int8.onnx", max_drop=1.0, evaluation="top1", eval_data=EVAL_DATA)
    assert both.record["fallbacks"] and both.record == budget.record
    assert both.model_path.read_bytes() == budget.model_path.read_bytes()
    job = start_job(model, CALIB_DATA)
    final = build_qdq(job, {node: "fallback" for f in both.record["fallbacks"] for node in f["nodes"]})
    report = json.loads(both.extra_files[0].read_text())
    assert report == json.loads(json.dumps(sensitivity_report(job, final)))


def test_budget_that_cannot_be_met_fails_with_exit_1(tmp_path, cli, demo_onnx):
    out = tmp_path / "never.int8.onnx"
    result = cli("quantize", demo_onnx, "--calib", CALIB_DATA, "-o", out, "--max-drop", "-50", "--eval", "top1", "--eval-data", EVAL_DATA)
    assert result.exit_code == 1
    assert "accuracy budget not met" in result.stderr
    assert not out.exists()


def test_budget_with_a_user_evaluation_function(tmp_path, demo_onnx):
    script = tmp_path / "my_eval.py"
    script.write_text(
        "import numpy as np, onnxruntime as ort\n"
        f"DATA = np.load({str(EVAL_DATA)!r})\n"
        "def evaluate(model_path):\n"
        "    s = ort.InferenceSession(model_path)\n"
        "    hits = [int(np.argmax(s.run(None, {'image': x})[0])) == y for x, y in zip(DATA['image'][:100], DATA['label'][:100])]\n"
        "    return 100.0 * sum(hits) / len(hits)\n"
    )
    model = sensitized_demo(demo_onnx, tmp_path / "sensitive.onnx")
    result = edgekit.quantize(model, CALIB_DATA, tmp_path / "m.int8.onnx", max_drop=2.0, evaluation=f"{script}:evaluate")
    assert result.record["fallbacks"]
    assert result.record["fallbacks"][0]["metric"] == f"{script}:evaluate"
    assert result.record["budget"]["drop"] <= 2.0


@pytest.mark.parametrize(("dtype", "symmetric"), [("uint8", False), ("uint8", True), ("int8", True)])
def test_activation_dtype_and_symmetry_follow_the_recipe(tmp_path, demo_onnx, dtype, symmetric):
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'name = "r"\n[activations]\ndtype = "{dtype}"\nsymmetric = {str(symmetric).lower()}\n')
    result = edgekit.quantize(demo_onnx, CALIB_DATA, tmp_path / "m.int8.onnx", recipe=recipe)
    activations = [t for t in result.record["tensors"] if t["role"] == "activation"]
    assert {t["dtype"] for t in activations} == {dtype}
    if symmetric:
        assert {t["zero_point"][0] for t in activations} == {0 if dtype == "int8" else 128}
    else:
        relu = next(t for t in activations if t["name"] == "relu")
        assert relu["zero_point"][0] == (0 if dtype == "uint8" else -128)  # [0, max] uses the whole grid
    qdq = initializers(onnx.load(str(result.model_path)))
    assert qdq["relu_zero_point"].dtype == np.dtype(dtype)
    assert top1(demo_onnx) - top1(result.model_path) <= 1.0


def test_a_scalar_model_input_calibrates(tmp_path):
    """silero-vad takes its sample rate as a 0-d int64 input: its samples are numpy scalars."""
    x = onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 8])
    rate = onnx.helper.make_tensor_value_info("sr", onnx.TensorProto.INT64, [])
    y = onnx.helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 4])
    weight = numpy_helper.from_array(np.random.default_rng(0).standard_normal((8, 4)).astype(np.float32), "w")
    nodes = [
        onnx.helper.make_node("Cast", ["sr"], ["srf"], to=onnx.TensorProto.FLOAT),
        onnx.helper.make_node("MatMul", ["x", "w"], ["mm"]),
        onnx.helper.make_node("Mul", ["mm", "srf"], ["y"]),
    ]
    graph = onnx.helper.make_graph(nodes, "scalar_input", [x, rate], [y], [weight])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, tmp_path / "m.onnx")
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "calib.npz", x=rng.standard_normal((32, 1, 8)).astype(np.float32), sr=np.full(32, 16000, np.int64))
    result = edgekit.quantize(tmp_path / "m.onnx", tmp_path / "calib.npz", tmp_path / "m.int8.onnx")
    assert result.agreement[0].cosine_min > 0.99
    assert any(n["op_type"] == "MatMul" and n["precision"] == "int8" for n in result.record["nodes"])
