"""Run an artifact and its reference over every sample of a data set: the two stacks gates measure.

`edgekit check ARTIFACT` and a project's check both collect outputs here, so the artifact and
ONNX Runtime see the same samples in the same order and the stacks have one layout.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from edgekit import console
from edgekit.checker.gates import Measured
from edgekit.dataset import Dataset

if TYPE_CHECKING:
    from edgekit.runtime import CompiledModel


def collect_outputs(
    model: CompiledModel,
    reference: Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]],
    dataset: Dataset,
    *,
    target: str,
    progress: str | None = None,
    int8_macs: float | None = None,
) -> Measured:
    """The artifact's and the reference's outputs on every sample of `dataset`, stacked.

    `model` is a loaded artifact (called with inputs by name), `reference` a callable from feeds to
    outputs by name (an ONNX Runtime `Reference`) that must produce every output of the artifact;
    `target` names what was measured in gate messages. Each output comes back as (N, *shape), in
    the artifact's output order, with the data set's labels. `progress` labels a progress bar;
    `int8_macs` is the artifact's share of integer MACs (`integer_mac_share` of its manifest).
    Errors of either runtime (bad inputs, a missing reference output) propagate.
    """
    names = [spec.name for spec in model.outputs]
    ours: dict[str, list[np.ndarray]] = {name: [] for name in names}
    theirs: dict[str, list[np.ndarray]] = {name: [] for name in names}
    bar = console.progress(len(dataset), progress) if progress else contextlib.nullcontext(lambda: None)
    with bar as advance:
        for index in range(len(dataset)):
            feeds = dataset.sample(index)
            got, want = model(**feeds), reference(feeds)
            for name in names:
                ours[name].append(got[name])
                theirs[name].append(want[name])
            advance()
    return Measured(target, _stacked(ours), _stacked(theirs), dataset.labels, int8_macs)


def integer_mac_share(manifest) -> float | None:
    """The share of conv/matmul MACs in integers that compile wrote into the manifest (None: not counted, or no MACs)."""
    return (manifest.build.get("macs") or {}).get("integer_share")


def _stacked(outputs: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    return {name: np.stack(values) for name, values in outputs.items()}

