"""Awkward real streams: a resolution change midway (with a timestamp restart), 4K, 16x16.
Each must run through ingest and the scheduler without error and keep the packet contract."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import need, run_cli, which

pytestmark = pytest.mark.integration


def _ffmpeg(out: Path, size: str, seconds: float, rate: int = 10) -> Path:
    exe = which("ffmpeg")
    need(exe is not None, "ffmpeg (Debian package ffmpeg)")
    subprocess.run([exe, "-loglevel", "error", "-y", "-f", "lavfi", "-i", f"testsrc2=size={size}:rate={rate}",
                    "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", str(out)], check=True, timeout=120)
    return out


def _packets(path: Path) -> list[dict]:
    res = run_cli(["packets", str(path), "--json"], timeout=180)
    assert res.returncode == 0, res.stderr
    assert "Traceback" not in res.stderr
    return [json.loads(line) for line in res.stdout.splitlines()]


def _contract(packets: list[dict]) -> None:
    for p in packets:
        # At most the model processor's size (about 448x448 of area; 16:9 -> 602x336).
        assert 1 <= len(p["frame_ts"]) <= 6 and p["width"] * p["height"] <= 602 * 336
        assert p["frame_ts"] == sorted(p["frame_ts"])


def test_resolution_change_and_timestamp_restart_midway(tmp_path: Path):
    # Two MPEG-TS segments of different sizes, concatenated: the second restarts its clock.
    a = _ffmpeg(tmp_path / "a.ts", "640x360", 4)
    b = _ffmpeg(tmp_path / "b.ts", "320x240", 4)
    joined = tmp_path / "joined.ts"
    joined.write_bytes(a.read_bytes() + b.read_bytes())
    packets = _packets(joined)
    _contract(packets)
    sizes = {(p["width"], p["height"]) for p in packets}
    assert (602, 336) in sizes
    assert (320, 240) in sizes, f"no packets after the resolution change: {sizes}"
    starts = [p["frame_ts"][0] for p in packets]
    assert starts == sorted(starts)  # stream time keeps moving forward across the restart


def test_4k_and_16x16(tmp_path: Path):
    big = _packets(_ffmpeg(tmp_path / "big.mp4", "3840x2160", 3, rate=5))
    assert big, "a moving 4K pattern yields packets"
    _contract(big)
    assert {(p["width"], p["height"]) for p in big} == {(602, 336)}
    tiny = _packets(_ffmpeg(tmp_path / "tiny.mp4", "16x16", 3))
    _contract(tiny)
    assert all(p["width"] == 16 and p["height"] == 16 for p in tiny)  # never upscaled


def test_random_bytes_that_probe_as_a_raw_stream_say_invalid_data(tmp_path: Path):
    """Random data now and then probes as raw h263 and fails in the decoder with EPERM
    ("Operation not permitted"): the operator must read "invalid data", not a permission problem."""
    import random

    bad = tmp_path / "noise.mp4"
    bad.write_bytes(random.Random(37).randbytes(300_000))  # seed 37: probes as h263 (FFmpeg 7)
    res = run_cli(["packets", str(bad)], timeout=60)
    assert "Traceback" not in res.stderr
    assert "cannot decode noise.mp4: invalid data" in res.stderr, res.stderr
