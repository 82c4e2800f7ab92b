"""`edgekit.dataset.load_dataset`: the documented data-set format (calibration_data/README.md).

Accepted: `(N, *shape)` arrays named after the inputs, the batch-1 shorthand `(N, *shape[1:])`,
an optional integer `label` of shape `(N,)`, and folders of such files concatenated in sorted
file-name order. Everything else is an InputError that names the file and the problem.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edgekit.dataset import load_dataset
from edgekit.errors import InputError
from edgekit.onnx_model import TensorSpec

IMAGE = TensorSpec("image", (1, 1, 8, 8), "float32")
# A two-input model without a batch-1 axis: tokens (6,) int64 and a (2, 3) float32 feature map.
TOKENS = TensorSpec("tokens", (6,), "int64")
FEATURES = TensorSpec("features", (2, 3), "float32")


def images(n: int, start: float = 0.0) -> np.ndarray:
    """`n` distinct samples of IMAGE's shape: sample i is filled with start + i."""
    return (start + np.arange(n, dtype=np.float32)).reshape(n, 1, 1, 1, 1) * np.ones((n, *IMAGE.shape), np.float32)


def save(path: Path, **arrays: np.ndarray) -> Path:
    np.savez(path, **arrays)
    return path


def raises_input_error(path: Path, inputs, *fragments: str) -> str:
    with pytest.raises(InputError) as info:
        load_dataset(path, inputs)
    message = info.value.one_line()
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


# ---------------------------------------------------------------------------- accepted forms


def test_canonical_arrays_are_returned_sample_by_sample(tmp_path):
    data = save(tmp_path / "data.npz", image=images(4))
    dataset = load_dataset(data, [IMAGE])
    assert len(dataset) == 4
    assert dataset.labels is None
    assert dataset.source == str(data)
    assert dataset.arrays["image"].shape == (4, 1, 1, 8, 8)
    assert dataset.arrays["image"].dtype == np.float32
    sample = dataset.sample(2)
    assert list(sample) == ["image"]
    assert sample["image"].shape == IMAGE.shape
    assert np.all(sample["image"] == 2.0)


def test_path_may_be_given_as_a_string(tmp_path):
    data = save(tmp_path / "data.npz", image=images(2))
    assert len(load_dataset(str(data), [IMAGE])) == 2


def test_batch_one_shorthand_gets_its_batch_axis_back(tmp_path):
    short = images(3)[:, 0]  # (N, 1, 8, 8): the model's batch axis left out
    assert short.shape == (3, 1, 8, 8)
    dataset = load_dataset(save(tmp_path / "data.npz", image=short), [IMAGE])
    assert dataset.arrays["image"].shape == (3, 1, 1, 8, 8)
    assert dataset.sample(1)["image"].shape == IMAGE.shape
    np.testing.assert_array_equal(dataset.arrays["image"][:, 0], short)


def test_shorthand_is_not_accepted_when_the_first_dim_is_not_one(tmp_path):
    data = save(tmp_path / "data.npz", features=np.zeros((4, 3), np.float32), tokens=np.zeros((4, 6), np.int64))
    raises_input_error(data, [TOKENS, FEATURES], str(data), "'features'", "(4, 3)", "(N, 2, 3)")


def test_labels_are_read_as_int64(tmp_path):
    labels = np.array([3, 1, 4, 1], np.int32)
    dataset = load_dataset(save(tmp_path / "data.npz", image=images(4), label=labels), [IMAGE])
    assert dataset.labels.dtype == np.int64
    np.testing.assert_array_equal(dataset.labels, labels)


def test_several_inputs_are_read_by_name(tmp_path):
    tokens = np.arange(5 * 6, dtype=np.int64).reshape(5, 6)
    features = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    dataset = load_dataset(save(tmp_path / "data.npz", tokens=tokens, features=features), [TOKENS, FEATURES])
    assert len(dataset) == 5
    sample = dataset.sample(4)
    np.testing.assert_array_equal(sample["tokens"], tokens[4])
    np.testing.assert_array_equal(sample["features"], features[4])


def test_folder_files_are_concatenated_in_sorted_name_order_with_labels(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    # Written out of order; the names sort as part_01 < part_02 < part_10.
    save(folder / "part_10.npz", image=images(1, start=100.0), label=np.array([7]))
    save(folder / "part_01.npz", image=images(2, start=10.0), label=np.array([1, 2]))
    save(folder / "part_02.npz", image=images(3, start=20.0)[:, 0], label=np.array([3, 4, 5]))  # shorthand mixes in
    (folder / "README.txt").write_text("not data; ignored\n")
    dataset = load_dataset(folder, [IMAGE])
    assert len(dataset) == 6
    assert dataset.source == str(folder)
    firsts = [float(dataset.sample(i)["image"].flat[0]) for i in range(6)]
    assert firsts == [10.0, 11.0, 20.0, 21.0, 22.0, 100.0]
    np.testing.assert_array_equal(dataset.labels, [1, 2, 3, 4, 5, 7])


def test_unlabelled_folder_has_no_labels(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    save(folder / "a.npz", image=images(2))
    save(folder / "b.npz", image=images(1))
    dataset = load_dataset(folder, [IMAGE])
    assert len(dataset) == 3
    assert dataset.labels is None


# ---------------------------------------------------------------------------- rejected forms


def test_folder_mixing_labelled_and_unlabelled_files_is_rejected(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    save(folder / "a.npz", image=images(2), label=np.array([0, 1]))
    save(folder / "b.npz", image=images(2))
    raises_input_error(folder, [IMAGE], str(folder / "b.npz"), "label")


def test_wrong_dtype_names_file_input_and_both_dtypes(tmp_path):
    data = save(tmp_path / "data.npz", image=images(2).astype(np.float64))
    raises_input_error(data, [IMAGE], str(data), "'image'", "float64", "float32")


def test_wrong_integer_dtype_is_rejected_too(tmp_path):
    data = save(tmp_path / "data.npz", tokens=np.zeros((2, 6), np.int32), features=np.zeros((2, 2, 3), np.float32))
    raises_input_error(data, [TOKENS, FEATURES], str(data), "'tokens'", "int32", "int64")


def test_wrong_shape_shows_given_and_expected(tmp_path):
    data = save(tmp_path / "data.npz", image=np.zeros((2, 1, 1, 16, 16), np.float32))
    raises_input_error(data, [IMAGE], str(data), "'image'", "(2, 1, 1, 16, 16)", "(N, 1, 1, 8, 8)")


def test_single_sample_without_sample_axis_is_rejected(tmp_path):
    data = save(tmp_path / "data.npz", image=np.zeros((1, 8, 8), np.float32))
    raises_input_error(data, [IMAGE], str(data), "'image'", "(1, 8, 8)", "(N, 1, 1, 8, 8)")


def test_unknown_array_name_lists_the_inputs(tmp_path):
    data = save(tmp_path / "data.npz", image=images(2), pixels=images(2))
    raises_input_error(data, [IMAGE], str(data), "'pixels'", "image", "label")


def test_missing_input_array_names_the_input(tmp_path):
    data = save(tmp_path / "data.npz", tokens=np.zeros((2, 6), np.int64))
    raises_input_error(data, [TOKENS, FEATURES], str(data), "'features'", "(N, 2, 3)")


def test_inputs_with_different_sample_counts_are_rejected(tmp_path):
    data = save(tmp_path / "data.npz", tokens=np.zeros((3, 6), np.int64), features=np.zeros((2, 2, 3), np.float32))
    raises_input_error(data, [TOKENS, FEATURES], str(data), "sample counts")


def test_zero_samples_are_rejected(tmp_path):
    data = save(tmp_path / "data.npz", image=np.zeros((0, 1, 1, 8, 8), np.float32))
    raises_input_error(data, [IMAGE], str(data), "'image'", "no samples")


def test_nan_names_the_sample(tmp_path):
    array = images(5)
    array[2, 0, 0, 3, 4] = np.nan
    data = save(tmp_path / "data.npz", image=array)
    raises_input_error(data, [IMAGE], str(data), "'image'", "sample 2", "NaN")


def test_inf_names_the_first_bad_sample(tmp_path):
    array = images(6)
    array[4, 0, 0, 0, 0] = np.inf
    array[5, 0, 0, 7, 7] = -np.inf
    data = save(tmp_path / "data.npz", image=array)
    raises_input_error(data, [IMAGE], str(data), "sample 4", "Inf")


def test_nan_in_a_later_folder_file_names_that_file(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    save(folder / "a.npz", image=images(3))
    bad = images(3)
    bad[1, 0, 0, 0, 0] = np.nan
    save(folder / "b.npz", image=bad)
    raises_input_error(folder, [IMAGE], str(folder / "b.npz"), "sample 1")


def test_float_labels_are_rejected(tmp_path):
    data = save(tmp_path / "data.npz", image=images(3), label=np.array([0.0, 1.0, 2.0]))
    raises_input_error(data, [IMAGE], str(data), "'label'", "integer", "float64")


def test_labels_of_wrong_shape_are_rejected(tmp_path):
    data = save(tmp_path / "data.npz", image=images(3), label=np.array([[0], [1], [2]]))
    raises_input_error(data, [IMAGE], str(data), "'label'", "(3,)", "(3, 1)")


def test_labels_of_wrong_length_are_rejected(tmp_path):
    data = save(tmp_path / "data.npz", image=images(3), label=np.array([0, 1]))
    raises_input_error(data, [IMAGE], str(data), "'label'", "(3,)", "(2,)")


def test_empty_folder_is_rejected(tmp_path):
    folder = tmp_path / "empty"
    folder.mkdir()
    raises_input_error(folder, [IMAGE], str(folder), "no .npz")


def test_folder_without_npz_files_is_rejected(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    np.save(folder / "image.npy", images(2))
    raises_input_error(folder, [IMAGE], str(folder), "no .npz")


def test_missing_path_is_rejected(tmp_path):
    raises_input_error(tmp_path / "nowhere.npz", [IMAGE], str(tmp_path / "nowhere.npz"), "not found")


def test_text_file_is_not_a_readable_npz(tmp_path):
    data = tmp_path / "data.npz"
    data.write_text("image,label\n0.1,3\n")
    raises_input_error(data, [IMAGE], str(data), "not a readable .npz")


def test_truncated_npz_is_not_a_readable_npz(tmp_path):
    whole = save(tmp_path / "whole.npz", image=images(4))
    data = tmp_path / "truncated.npz"
    data.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    raises_input_error(data, [IMAGE], str(data), "not a readable .npz")


def test_npy_file_given_as_data_set_is_not_a_readable_npz(tmp_path):
    data = tmp_path / "images.npy"
    np.save(data, images(2))
    raises_input_error(data, [IMAGE], str(data), ".npz")


def test_pickled_object_array_is_refused(tmp_path):
    data = tmp_path / "data.npz"
    np.savez(data, image=np.array([images(1)[0], "x"], dtype=object))
    raises_input_error(data, [IMAGE], str(data), "not a readable .npz")
