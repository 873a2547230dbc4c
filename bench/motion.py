"""Motion cost per frame on the luma plane at 720p and 1080p, as ratios to baselines timed
in the same run.

Frames are real footage (car-detection.mp4) scaled up to each size. For each size it times:
  motion      MotionDetector.score on the full-resolution luma plane (what a camera's
              decoder hands over without colour conversion)
  motion@320  the same on the 320-wide plane ingest puts on the bus (the service's case)
  cvtColor    cv2.cvtColor BGR->GRAY of the same frame: the price of just getting luma in a
              BGR pipeline (baseline 1)
  to_bgr      PyAV yuv420p -> bgr24 conversion of the same frame: the step Vigil skips for
              frames that will not become keyframes (baseline 2)
and prints ratios (lower is better). Times are CPU seconds on one OpenCV thread, the cases
interleaved round by round; absolute figures are for reference only (shared machine).

    python bench/motion.py [--frames 60] [--repeat 9]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402

from scheduler.motion import MotionDetector  # noqa: E402
from scheduler.offline import decode_luma  # noqa: E402
from scheduler.settings import MotionSettings  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"


def _interleaved(cases: dict[str, tuple], repeat: int) -> dict[str, float]:
    """Median over `repeat` rounds of the CPU seconds per item of each case. The cases take
    turns within every round so they see the same machine load, and CPU time (one OpenCV
    thread) leaves out the time other processes on this shared machine hold the cores."""
    runs: dict[str, list[float]] = {k: [] for k in cases}
    for fn, items in cases.values():
        fn(items[0])
    for _ in range(repeat):
        for name, (fn, items) in cases.items():
            t = time.process_time()
            for it in items:
                fn(it)
            runs[name].append((time.process_time() - t) / len(items))
    return {k: statistics.median(v) for k, v in runs.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--repeat", type=int, default=9)
    ap.add_argument("--source", default=str(MEDIA / "car-detection.mp4"))
    args = ap.parse_args()
    cv2.setNumThreads(1)  # CPU time is compared: keep every case on one thread

    base = [f.luma for f in decode_luma(args.source, luma_width=768)][: args.frames]
    print(f"source: {Path(args.source).name}, {len(base)} frames, repeat {args.repeat} (median)")
    print(f"{'size':>10} {'motion ms':>10} {'@320 ms':>8} {'cvtColor ms':>12} {'to_bgr ms':>10}"
          f" {'motion/cvtColor':>16} {'motion/to_bgr':>14} {'@320/cvtColor':>14}")
    for w, h in ((1280, 720), (1920, 1080)):
        luma = [cv2.resize(y, (w, h), interpolation=cv2.INTER_LINEAR) for y in base]
        small = [cv2.resize(y, (320, 180), interpolation=cv2.INTER_AREA) for y in luma]
        bgr = [cv2.cvtColor(y, cv2.COLOR_GRAY2BGR) for y in luma]
        yuv = [av.VideoFrame.from_ndarray(b, format="bgr24").reformat(format="yuv420p") for b in bgr[:20]]

        def scorer(frames: list[np.ndarray]):
            det = MotionDetector(MotionSettings())
            clock = iter(range(10**9))
            return lambda y: det.score(y, next(clock) * 0.2)

        t = _interleaved({
            "motion": (scorer(luma), luma),
            "small": (scorer(small), small),
            "cvt": (lambda b: cv2.cvtColor(b, cv2.COLOR_BGR2GRAY), bgr),
            "bgr": (lambda f: f.to_ndarray(format="bgr24"), yuv),
        }, args.repeat)
        t_motion, t_small, t_cvt, t_bgr = t["motion"], t["small"], t["cvt"], t["bgr"]
        print(f"{h:>9}p {t_motion * 1e3:>10.3f} {t_small * 1e3:>8.3f} {t_cvt * 1e3:>12.3f} {t_bgr * 1e3:>10.3f}"
              f" {t_motion / t_cvt:>16.3f} {t_motion / t_bgr:>14.3f} {t_small / t_cvt:>14.3f}")
    print("goal: motion <= 0.2 ms per frame on the luma plane (read the ratios: this machine is shared)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
