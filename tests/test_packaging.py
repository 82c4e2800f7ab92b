"""The wheel carries the data folders (targets/, quant/) inside the package."""

from __future__ import annotations

import subprocess
import sys
import zipfile

from conftest import REPO, assert_repository_untouched, files_outside_git


def test_wheel_ships_targets_as_package_data(tmp_path):
    before = files_outside_git()
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path)],
        check=True, capture_output=True, text=True, timeout=300,
    )
    wheel = next(tmp_path.glob("edgekit-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for board in ("x86_64", "arm64", "rk3588", "orin"):
        assert f"edgekit/targets/{board}.toml" in names
    assert "edgekit/demo/digits_cnn.pt" in names
    assert any(name.startswith("edgekit/quant/") for name in names)
    assert not any(name.startswith(("tests/", "out/", "calibration_data/")) for name in names)
    assert_repository_untouched(before)  # the build left nothing in the source tree (no build/, no egg-info)
