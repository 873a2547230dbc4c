#!/usr/bin/env bash
# The two commands a newcomer needs, on a fresh Debian machine with Python 3.11:
#   ./run.sh demo    set up, then run the demo (dashboard on http://127.0.0.1:8000)
#   ./run.sh test    set up, then run the whole test suite
set -euo pipefail
cd "$(dirname "$0")"

PY=${PYTHON:-python3}
VENV=.venv
# Debian packages the tests drive for real: compose validation, ffmpeg, the browser, GStreamer's
# RTSP server (a real camera), an MQTT broker for the MQTT alert channel.
TEST_DEBS=(docker-compose ffmpeg chromium mosquitto
  python3-gi gir1.2-gst-rtsp-server-1.0 gstreamer1.0-plugins-base gstreamer1.0-plugins-good
  gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav)

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "need root (or sudo) to install: $*" >&2; return 1; fi; }

need_debs() {
  local missing=()
  for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
  if [ ${#missing[@]} -gt 0 ]; then
    echo ">> installing Debian packages: ${missing[*]}" >&2
    as_root apt-get update -qq
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
}

venv() {
  local extras=$1 stamp="$VENV/.installed-$1"
  if ! "$PY" -m venv --help >/dev/null 2>&1; then need_debs python3-venv; fi
  [ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
  local want; want=$(cat pyproject.toml | sha256sum | cut -c1-16)
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo ">> installing Python dependencies into $VENV" >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip
    "$VENV/bin/python" -m pip install -q -e ".$extras"
    echo "$want" > "$stamp"
  fi
}

case "${1:-}" in
  demo) shift; venv "[demo]"; exec "$VENV/bin/vigil" demo "$@" ;;
  test) shift; need_debs "${TEST_DEBS[@]}"; venv "[test]"; exec "$VENV/bin/python" -m pytest "$@" ;;
  *) echo "usage: ./run.sh demo [--source URL|PATH] | ./run.sh test [pytest args]" >&2; exit 2 ;;
esac
