"""The cpu backend's detectors on hand-counted frames of ../shared/media.

    python bench/detector.py            # needs the model: vigil setup-detector (or VIGIL_MODEL_DIR)

Every person (and vehicle) in the frames below was marked by hand, by eye, on the source
frames (a point on the body, in source pixels). Frames are prepared the way ingest sends them
(at the model size, bus/frame_size.py: 518x392 for 4:3, 602x336 for 16:9; JPEG quality 85). A detection is a hit when its box holds a marked point
not yet taken (strongest detections first); one holding only a point marked "optional" (a
person seen through a window, legs at the frame's edge) counts neither way; any other
detection of that kind is a false positive. One thread (cv2.setNumThreads(1)) for every
detector; ms per frame is the median over frames of the best of 3 runs. The baseline is OpenCV's
HOG people detector (the fallback), measured in the same run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analyzer.detect import store  # noqa: E402
from analyzer.detect.coco import VEHICLES  # noqa: E402
from analyzer.detect.detector import HogDetector, ObjectDetector, allowed_cores  # noqa: E402
from analyzer.detect.nanodet import NanoDet  # noqa: E402
from bus.frame_size import model_frame_size  # noqa: E402

MEDIA = Path(__file__).resolve().parent.parent.parent / "shared" / "media"
Pt = tuple[int, int]


@dataclass(frozen=True)
class Marked:
    people: list[Pt]
    vehicles: list[Pt] = ()  # type: ignore[assignment]
    optional: list[Pt] = ()  # type: ignore[assignment]  # people that count neither way


VT_VEHICLES = [(685, 70), (750, 70)]  # the parked van and car, top right, in every frame
# vtest.avi (768x576): 59 people in 10 frames.
VTEST = {
    0: Marked([(265, 265), (515, 195), (665, 280)], VT_VEHICLES),
    80: Marked([(280, 67), (272, 207), (385, 220), (418, 220), (460, 210), (488, 207), (584, 233)], VT_VEHICLES),
    160: Marked([(45, 115), (365, 208), (449, 250), (490, 243), (520, 263), (666, 135), (685, 152), (693, 125)],
                VT_VEHICLES),
    240: Marked([(50, 210), (251, 193), (467, 300), (627, 237), (681, 323), (653, 147), (675, 152)], VT_VEHICLES),
    320: Marked([(215, 207), (268, 237), (317, 207), (440, 177), (610, 227), (642, 223)], VT_VEHICLES),
    400: Marked([(288, 240), (603, 170), (715, 353)], VT_VEHICLES),
    480: Marked([(417, 253), (480, 283), (595, 293), (627, 327)], VT_VEHICLES),
    560: Marked([(93, 203), (393, 193), (600, 197), (657, 357), (185, 415), (222, 460)], VT_VEHICLES),
    640: Marked([(128, 177), (183, 197), (380, 193), (521, 290), (663, 257), (360, 455)], VT_VEHICLES),
    720: Marked([(77, 293), (145, 220), (275, 223), (315, 203), (478, 247), (509, 227), (575, 243), (567, 153),
                 (728, 70)], VT_VEHICLES),
}
# bikes.mp4 (640x272), the demo's clip: a cyclist at a kerb (with a van's rear, a motorbike and
# his bicycle), then a walker passing a parked bicycle, then the bicycle alone.
_KERB = [(130, 130), (590, 200), (430, 215)]
BIKES = {
    120: Marked([(420, 120)], _KERB, optional=[(465, 60), (530, 90)]),
    130: Marked([(420, 120)], _KERB, optional=[(465, 60), (530, 90)]),
    195: Marked([(265, 120)], [(420, 110)]),
    205: Marked([], [(420, 110)], optional=[(485, 110)]),
    225: Marked([], [(400, 110)]),
}
CLIPS = {"vtest.avi": VTEST, "bikes.mp4": BIKES}


def frames(clip: str, marks: dict[int, Marked]) -> list[tuple[str, np.ndarray, Marked, tuple[int, int]]]:
    cap = cv2.VideoCapture(str(MEDIA / clip))
    out, i = [], 0
    while len(out) < len(marks):
        ok, bgr = cap.read()
        if not ok:
            raise SystemExit(f"{clip}: ended before frame {max(marks)}")
        if i in marks:
            h, w = bgr.shape[:2]
            mw, mh = model_frame_size(w, h)
            small = cv2.resize(bgr, (mw, mh), interpolation=cv2.INTER_AREA)
            ok, buf = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, 85])
            out.append((f"{clip}#{i}", cv2.imdecode(buf, cv2.IMREAD_COLOR), marks[i], (w, h)))
        i += 1
    return out


def match(dets: list, points: list[Pt], optional: list[Pt], size: tuple[int, int]) -> tuple[int, int]:
    """(hits, false positives) of detections (strongest first) against marked points."""
    w, h = size
    todo = [(x / w, y / h) for x, y in points]
    maybe = [(x / w, y / h) for x, y in optional]
    hits = fps = 0
    for d in sorted(dets, key=lambda d: -d.score):
        x, y, bw, bh = d.box
        mx, my = 0.1 * bw, 0.1 * bh  # a point on the body's edge still counts

        def inside(p: tuple[float, float]) -> bool:
            return x - mx <= p[0] <= x + bw + mx and y - my <= p[1] <= y + bh + my

        hit = next((p for p in todo if inside(p)), None)
        if hit is not None:
            todo.remove(hit)
            hits += 1
            continue
        extra = next((p for p in maybe if inside(p)), None)
        if extra is not None:
            maybe.remove(extra)
            continue
        fps += 1
    return hits, fps


def run(name: str, detector, data) -> dict:
    people = found = fp = veh = vfound = vfp = 0
    ms: list[float] = []
    for _label, bgr, marks, size in data:
        detector.detect_image(bgr)  # warm caches once per frame size
        best = float("inf")
        for _ in range(3):  # best of 3: the cost of the work, not of whatever else shares the cores
            t0 = time.perf_counter()
            dets = detector.detect_image(bgr)
            best = min(best, time.perf_counter() - t0)
        ms.append(best * 1000)
        h, f = match([d for d in dets if d.label == "person"], marks.people, list(marks.optional), size)
        people, found, fp = people + len(marks.people), found + h, fp + f
        h, f = match([d for d in dets if d.label in VEHICLES], list(marks.vehicles), [], size)
        veh, vfound, vfp = veh + len(marks.vehicles), vfound + h, vfp + f
    n = len(data)
    return {"name": name, "people": people, "found": found, "recall": found / people, "fp": fp / n,
            "veh": veh, "vfound": vfound, "vfp": vfp / n, "ms": statistics.median(ms), "frames": n}


def throughput(detector, jpegs: list[bytes]) -> float:
    import asyncio

    async def go() -> float:
        await detector.detect(jpegs[:2])
        t0 = time.perf_counter()
        await detector.detect(jpegs)
        return len(jpegs) / (time.perf_counter() - t0)

    try:
        return asyncio.run(go())
    finally:
        detector.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="", help="ONNX file (default: the one vigil setup-detector cached)")
    ap.add_argument("--thresholds", default="0.35,0.4,0.5", help="object-model score thresholds to compare")
    args = ap.parse_args()
    cv2.setNumThreads(1)  # one thread for every detector: ms per frame are comparable
    found = store.find(args.model)
    if not isinstance(found, store.Installed):
        print(f"bench/detector.py: {found}", file=sys.stderr)
        return 2
    model = NanoDet(found.path)
    sets = {clip: frames(clip, marks) for clip, marks in CLIPS.items()}
    every = [f for d in sets.values() for f in d]
    thresholds = [float(t) for t in args.thresholds.split(",")]
    print(f"machine: {os.cpu_count()} cpus, load {os.getloadavg()[0]:.1f}; one thread; frames at the model size "
          f"(JPEG 85), NanoDet input 416x416 letterboxed")
    rows = [run("opencv-hog (baseline)", HogDetector(800, 0.3, threads=1), every)]
    for t in thresholds:
        rows.append(run(f"nanodet-g-416 @ {t:g}", ObjectDetector(model, t, threads=1), every))
    by_clip = {clip: [run("opencv-hog", HogDetector(800, 0.3, threads=1), d)] +
               [run(f"nanodet @ {t:g}", ObjectDetector(model, t, threads=1), d) for t in thresholds]
               for clip, d in sets.items()}
    head = f"{'detector':<24} {'people found':>13} {'recall':>7} {'FP/frame':>9} {'vehicles found':>15} {'veh FP/fr':>9} {'ms/frame':>9}"
    for title, table in [("all frames", rows)] + [(f"{clip} ({len(sets[clip])} frames)", r) for clip, r in by_clip.items()]:
        print(f"\n{title}\n{head}")
        for r in table:
            print(f"{r['name']:<24} {r['found']:>6}/{r['people']:<6} {r['recall'] * 100:>6.1f}% {r['fp']:>9.2f} "
                  f"{r['vfound']:>7}/{r['veh']:<7} {r['vfp']:>9.2f} {r['ms']:>9.1f}")
    base = rows[0]
    default = next((r for r in rows[1:] if r["name"].endswith("@ 0.4")), rows[1])
    cores = allowed_cores()
    jpegs = [cv2.imencode(".jpg", f[1])[1].tobytes() for f in every] * 2
    fps = {n: throughput(ObjectDetector(model, 0.4, threads=n), jpegs) for n in sorted({1, cores})}
    print(f"\nthroughput through detect() ({len(jpegs)} JPEG frames at once, the pool spreading them): " +
          ", ".join(f"{n} thread{'s' if n > 1 else ''}: {v:.1f} frames/s" for n, v in fps.items()) +
          (f"  RATIO {cores} / 1 = {fps[cores] / fps[1]:.2f}x" if cores > 1 else ""))
    print(f"\nRATIO {default['name']} / HOG: people found {default['found'] / max(1, base['found']):.2f}x, "
          f"ms per frame {default['ms'] / base['ms']:.2f}x")
    ok = default["recall"] >= 0.9 and default["fp"] <= 0.3 and default["ms"] <= 120
    print(f"goals (>= 90 % people, <= 0.3 FP/frame, <= 120 ms/frame, one thread): {'met' if ok else 'NOT met'} "
          f"({default['recall'] * 100:.1f} %, {default['fp']:.2f}, {default['ms']:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
