"""Channel equalization: the float model is unchanged, the equalized tensors' channel ranges are
close together, and every edit is in the record."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from conftest import REPO

import edgekit
from edgekit.dataset import load_dataset
from edgekit.onnx_model import model_inputs
from edgekit.quantizer.equalize import equalize
from edgekit.quantizer.job import prepare_model
from edgekit.reference import Reference


@pytest.fixture(scope="module")
def lcnet(workdir):
    """PP-LCNetV3-style blocks whose depthwise input spans 1000x across channels (tests/lut_models.py)."""
    folder = workdir / "equalize"
    folder.mkdir(exist_ok=True)
    path = folder / "lcnet.onnx"
    edgekit.export(f"{REPO / 'tests' / 'lut_models.py'}:lcnet_net", path, input_names=["x"])
    rng = np.random.default_rng(0)
    np.savez(folder / "calib.npz", x=rng.standard_normal((32, 1, 3, 32, 32)).astype(np.float32))
    return path, folder / "calib.npz"


def test_equalized_model_computes_the_same_and_narrows_the_channel_spread(lcnet):
    path, calib = lcnet
    model, _ = prepare_model(path)
    dataset = load_dataset(calib, model_inputs(model))
    equalized, done = equalize(model, dataset, alpha=0.5)
    by_consumer = {c: e for e in done for c in e.consumers}
    depthwise = next(n.name for n in model.graph.node if n.op_type == "Conv" and any(a.name == "group" and a.i > 1 for a in n.attribute))
    assert depthwise in by_consumer
    entry = by_consumer[depthwise]
    assert entry.alpha == 1.0 and entry.spread_before > 100 and entry.spread_after < 1.01, entry
    original, ours = Reference(model), Reference(equalized)
    for i in range(4):
        feeds = {"x": dataset.arrays["x"][i]}
        a, b = next(iter(original(feeds).values())), next(iter(ours(feeds).values()))
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * float(np.abs(a).max()))
    assert len({i.name for i in equalized.graph.initializer}) == len(equalized.graph.initializer)
    onnx.checker.check_model(equalized)


def test_recipe_turns_equalization_on_and_the_record_lists_it(lcnet, tmp_path):
    path, calib = lcnet
    recipe = tmp_path / "eq.toml"
    recipe.write_text((REPO / "quant" / "int8-default.toml").read_text().replace('name = "int8-default"', 'name = "eq"') + "\n[equalize]\nenabled = true\nalpha = 0.5\n")
    on = edgekit.quantize(path, calib, tmp_path / "on.onnx", recipe=recipe).record
    off = edgekit.quantize(path, calib, tmp_path / "off.onnx").record
    assert off["equalization"] == [] and off["recipe"]["equalize"] == {"enabled": False, "alpha": 0.5}
    assert on["equalization"] and on["recipe"]["equalize"]["enabled"] is True
    assert {"tensor", "producers", "consumers", "alpha", "scale_min", "scale_max", "spread_before", "spread_after"} <= set(on["equalization"][0])
    json.dumps(on)
