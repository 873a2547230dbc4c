"""Paced files keep stream time and wall time together for any number of loops, and a
looping file that is almost empty is not reopened in a tight loop (issue #16, item 10)."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest

from bus.messages import Camera
from ingest.camera import CameraIngest
from ingest.settings import IngestSettings
from ingest.sources.pyav import MIN_LOOP_S, Clock, PyAVSource
from tests.conftest import need, which

FPS = 12.5
LOOPS = 300


class FastForward(Clock):
    """Waits pass at once; the work in between (decoding, reopening) takes real time."""

    def __init__(self) -> None:
        self.skipped = 0.0

    def monotonic(self) -> float:
        return time.monotonic() + self.skipped

    def time(self) -> float:
        return time.time() + self.skipped

    def wait(self, stop: threading.Event, delay: float) -> bool:
        self.skipped += delay
        return stop.is_set()


def _clip(media: Path, out: Path, *extra: str) -> Path:
    need(which("ffmpeg") is not None, "ffmpeg (Debian package)")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(media / "car-detection.mp4"), "-an",
                    "-vf", "scale=192:108", "-c:v", "libx264", "-preset", "ultrafast", *extra, str(out)],
                   check=True, timeout=60)
    return out


@pytest.fixture(scope="module")
def short_clip(media, tmp_path_factory) -> Path:
    """One second of real footage (13 frames at 12.5 fps)."""
    return _clip(media, tmp_path_factory.mktemp("clock") / "short.mp4", "-t", "1.0")


@pytest.fixture(scope="module")
def one_frame(media, tmp_path_factory) -> Path:
    return _clip(media, tmp_path_factory.mktemp("clock") / "one.mp4", "-frames:v", "1")


def test_paced_loops_do_not_drift(short_clip):
    clock = FastForward()
    src = PyAVSource(str(short_clip), realtime=True, loop=True, threads=1, clock=clock)
    stop = threading.Event()
    firsts: list[float] = []  # stream time of each loop's first frame
    worst_loop_lag: list[float] = []  # per loop: the smallest lag of its frames behind the clock
    prev_ts = -1.0
    loop_lag = float("inf")
    frames = src.frames(stop)
    for item in frames:
        # How late this frame is against the one clock of the run (Frame.wall is epoch + ts on
        # the same clock; the monotonic side is compared here, free of wall-clock steps).
        lag = clock.monotonic() - (src.anchor + item.ts)
        if prev_ts >= 0:  # one frame interval apart, across loop boundaries too
            assert item.ts - prev_ts == pytest.approx(1 / FPS, abs=1e-4), (prev_ts, item.ts)
        if src.opens > len(firsts):  # a new loop began
            firsts.append(item.ts)
            if loop_lag != float("inf"):
                worst_loop_lag.append(loop_lag)
            loop_lag = float("inf")
        loop_lag = min(loop_lag, lag)
        assert lag > -1e-4, "a frame was released before its time"
        prev_ts = item.ts
        if len(firsts) > LOOPS:
            break
    frames.close()
    n_frames = 13
    clip = n_frames / FPS
    # A loop restarts the clock at exactly the clip's length: no drift in stream time ...
    for k, t in enumerate(firsts):
        assert t == pytest.approx(k * clip, abs=1e-6), (k, t)
    # ... nor between stream time and the clock, however many loops (hundreds here).
    print(f"\n{LOOPS} loops ({LOOPS * clip:.0f} s of stream time) fast-forwarded: lag behind the clock "
          f"max {max(worst_loop_lag) * 1000:.1f} ms, last loop {worst_loop_lag[-1] * 1000:.1f} ms "
          f"(frame interval {1000 / FPS:.0f} ms)")
    assert max(worst_loop_lag) < 1 / FPS
    assert worst_loop_lag[-1] < 1 / FPS


def test_frame_wall_time_is_the_paced_clock(short_clip):
    src = PyAVSource(str(short_clip), realtime=True, loop=True, threads=1, clock=FastForward())
    cam = Camera(id="c", url=str(short_clip), loop=True)
    ingest = CameraIngest(None, cam, IngestSettings(), source=src)  # type: ignore[arg-type]
    stop = threading.Event()
    gen = src.frames(stop)
    item = next(gen)
    assert ingest._wall(item.ts) == src.epoch + item.ts
    gen.close()


def _run_for(src: PyAVSource, seconds: float) -> tuple[int, float]:
    """Consume the source in a thread for `seconds`: (frames, CPU seconds of that thread)."""
    stop = threading.Event()
    out = {"n": 0, "cpu": 0.0}

    def consume() -> None:
        t0 = time.thread_time()
        for _ in src.frames(stop):
            out["n"] += 1
        out["cpu"] = time.thread_time() - t0

    t = threading.Thread(target=consume)
    t.start()
    time.sleep(seconds)
    stop.set()
    t.join(10)
    assert not t.is_alive()
    return out["n"], out["cpu"]


def test_a_looping_one_frame_file_is_paced(one_frame):
    seconds = 2.5
    paced = PyAVSource(str(one_frame), realtime=True, loop=True, threads=1)
    n, cpu = _run_for(paced, seconds)
    print(f"\none-frame file, paced, {seconds:g} s: {paced.opens} opens, {n} frames, {cpu:.3f} s CPU")
    # Once per MIN_LOOP_S (it was ~250 opens a second, 89 % of a core).
    assert paced.opens <= seconds / MIN_LOOP_S + 2
    assert n >= 2
    fast = PyAVSource(str(one_frame), realtime=False, loop=True, threads=1)
    n, cpu = _run_for(fast, seconds)
    print(f"one-frame file, fast, {seconds:g} s: {fast.opens} opens, {n} frames, {cpu:.3f} s CPU")
    assert fast.opens <= seconds / 0.1 + 2
