"""The official MiniCPM-V 4.5 code with tiny random weights, for tests and benchmarks.

`../shared/models/build_tiny_minicpmv45.py` builds the checkpoint from the official files
(about 160 MB, deterministic); it is built once and cached outside the repository, under
`$XDG_CACHE_HOME/vigil/` (default `~/.cache/vigil/`), in a folder named by a hash of the
shared model files and the builder, so a changed source builds a new one.

The remote code imports torchvision and never uses it. PyPI's torchvision wheels are CUDA
builds that do not import beside the CPU torch wheel, so where `import torchvision` fails an
empty stand-in package (created in the cache, never in the repository) goes first on
sys.path, and on PYTHONPATH for the subprocesses a test starts (`env`).
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

SHARED_MODELS = Path(__file__).resolve().parents[2].parent / "shared" / "models"
BUILDER = SHARED_MODELS / "build_tiny_minicpmv45.py"
OFFICIAL = SHARED_MODELS / "minicpm-v-4_5"


@dataclass(slots=True)
class TinyModel:
    path: Path  # the checkpoint folder: analyzer.minicpm.model_id
    env: dict[str, str] = field(default_factory=dict)  # extra environment for subprocesses


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vigil"


def source_hash() -> str:
    h = hashlib.sha256()
    for p in sorted([BUILDER, *OFFICIAL.iterdir()]):
        if p.is_file():
            h.update(p.name.encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def _torchvision_importable() -> bool:
    try:
        importlib.import_module("torchvision")
        return True
    except Exception:  # missing, or a CUDA build beside a CPU torch ("operator torchvision::nms does not exist")
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
        return False


def torchvision_env() -> dict[str, str]:
    """Make `import torchvision` work here and return the environment subprocesses need."""
    if _torchvision_importable():
        return {}
    stub = cache_root() / "torchvision-stand-in"
    (stub / "torchvision").mkdir(parents=True, exist_ok=True)
    (stub / "torchvision" / "__init__.py").touch()
    if str(stub) not in sys.path:
        sys.path.insert(0, str(stub))
    importlib.invalidate_caches()
    old = os.environ.get("PYTHONPATH", "")
    return {"PYTHONPATH": os.pathsep.join([str(stub), *([old] if old else [])])}


def tiny_checkpoint(env: dict[str, str]) -> Path:
    """The cached checkpoint, built first if missing (atomically: other test runs may race)."""
    out = cache_root() / f"tiny-minicpmv45-{source_hash()}"
    if (out / "model.safetensors").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f"{out.name}.building-{os.getpid()}")
    res = subprocess.run([sys.executable, str(BUILDER), str(tmp)], capture_output=True, text=True, timeout=600,
                         env={**os.environ, **env})
    if res.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RuntimeError(f"building the tiny MiniCPM-V 4.5 checkpoint failed:\n{res.stderr[-4000:]}")
    try:
        os.rename(tmp, out)
    except OSError:  # another run finished first
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def missing() -> str | None:
    """What is missing to run the official code here, or None."""
    if not BUILDER.is_file() or not (OFFICIAL / "modeling_minicpmv.py").is_file():
        return f"the official MiniCPM-V 4.5 files and builder in {SHARED_MODELS}"
    for mod in ("torch", "transformers"):
        if importlib.util.find_spec(mod) is None:
            return f"{mod} (the 'minicpm-cpu' extra)"
    return None


def tiny_model() -> TinyModel:
    env = torchvision_env()
    return TinyModel(tiny_checkpoint(env), env)
