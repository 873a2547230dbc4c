"""Whole-pipeline CPU: `vigil packets FILE` as a user runs it (process start, embedded Redis,
ingest and scheduler, default settings) against `ffmpeg -threads 1 -i FILE -f null -` (a
single-thread decode of the same file), alternating, several runs; prints CPU-time ratios.
Goal: <= 1.3x on 720p H.264.

    python bench/pipeline_cpu.py [--cases 720p,1080p,720p25] [--runs 3] [--loops 10] [--crf] [--model-size N]

The inputs are made at run time in a temporary directory from ../shared/media/car-detection.mp4
(768x432, 12.5 fps, 30 s, looped `--loops` times): scaled to 1280x720 and 1920x1080 at the
footage's own 12.5 fps, and a 25 fps variant of the 720p file (frames doubled by ffmpeg's fps
filter), all libx264 with a 2 s GOP at the bitrate of an IP camera's main stream (2 Mbit/s at
720p, 4 Mbit/s at 1080p; `--crf` instead uses x264's default quality-based rate, which gives
this upscaled footage far fewer bits, so a cheaper decode and a harder ratio). CPU time is the user+system time of each process and the
children it waited for (vigil's embedded redis-server included), read with wait4().
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MEDIA = ROOT.parent / "shared" / "media"

CASES = {  # name: (scale, fps, bitrate of an IP camera's main stream at that size)
    "720p": ("1280:720", 12.5, "2M"),
    "1080p": ("1920:1080", 12.5, "4M"),
    "720p25": ("1280:720", 25.0, "2M"),
    "720p10": ("1280:720", 10.0, "2M"),
}


def make_input(tmp: Path, name: str, loops: int, crf: bool) -> tuple[Path, int]:
    scale, fps, bitrate = CASES[name]
    out = tmp / f"{name}.mp4"
    gop = int(round(2 * fps))
    # Cameras stream at a set bitrate; --crf uses x264's default quality-based rate instead
    # (far fewer bits for this upscaled footage, so a cheaper decode and a harder ratio).
    rate = [] if crf else ["-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate.replace("M", "") + "M"]
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-stream_loop", str(loops - 1),
                    "-i", str(MEDIA / "car-detection.mp4"), "-an", "-vf", f"scale={scale},fps={fps}",
                    "-c:v", "libx264", "-preset", "veryfast", *rate, "-g", str(gop), "-bf", "0", str(out)], check=True)
    probe = subprocess.run(["ffprobe", "-v", "error", "-count_packets", "-select_streams", "v:0", "-show_entries",
                            "stream=nb_read_packets", "-of", "csv=p=0", str(out)], capture_output=True, text=True)
    return out, int(probe.stdout.strip() or 0)


def cpu_of(cmd: list[str], stdout_path: Path | None = None) -> tuple[float, float, int]:
    """(CPU seconds of the process and its waited-for children, wall seconds, exit status)."""
    out = open(stdout_path, "wb") if stdout_path else subprocess.DEVNULL
    try:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.PIPE, cwd=ROOT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        if proc.returncode != 0:
            raise SystemExit(f"{cmd[0]} failed ({proc.returncode}): {err[-800:]}")
        return usage.ru_utime + usage.ru_stime, wall, proc.returncode
    finally:
        if stdout_path:
            out.close()  # type: ignore[union-attr]


def vigil_cmd() -> list[str]:
    script = Path(sys.executable).with_name("vigil")  # the console script a user runs
    return [str(script)] if script.is_file() else [sys.executable, "-m", "vigil.cli"]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="720p,1080p,720p25")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--loops", type=int, default=10, help="how many times the 30 s clip repeats in each file")
    ap.add_argument("--crf", action="store_true", help="x264's default CRF 23 instead of a camera's bitrate")
    ap.add_argument("--model-size", type=int, help="ingest.model_size for vigil (default: Vigil's, 448: "
                    "keyframes of ~448x448 of area, 602x336 at 16:9)")
    args = ap.parse_args()
    print(f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; vigil: {' '.join(vigil_cmd())}")
    results = []
    with tempfile.TemporaryDirectory(prefix="vigil-cpu-") as tmp_s:
        tmp = Path(tmp_s)
        extra: list[str] = []
        if args.model_size:
            (tmp / "vigil.yaml").write_text(f"ingest:\n  model_size: {args.model_size}\n")
            extra = ["-c", str(tmp / "vigil.yaml")]
        for name in args.cases.split(","):
            path, frames = make_input(tmp, name, args.loops, args.crf)
            mbps = path.stat().st_size * 8 / (frames / CASES[name][1]) / 1e6
            base, ours, walls, packets = [], [], [], 0
            for _ in range(args.runs):  # alternating, so drift in machine load hits both alike
                base.append(cpu_of(["ffmpeg", "-loglevel", "error", "-threads", "1", "-i", str(path), "-f", "null", "-"])[0])
                lines = tmp / "packets.jsonl"
                cpu, wall, _ = cpu_of([*vigil_cmd(), "packets", str(path), "--json", *extra], lines)
                ours.append(cpu)
                walls.append(wall)
                packets = sum(1 for line in lines.read_text().splitlines() if json.loads(line).get("packet_id"))
            b, v = statistics.median(base), statistics.median(ours)
            sampled = frames / CASES[name][1] * 5  # sample_fps 5 (default)
            extra_ms = (v - b) / sampled * 1000
            results.append((name, v / b))
            print(f"{name:7s} {mbps:.1f} Mbit/s, {frames} frames ({frames / CASES[name][1]:.0f} s of video), {packets} packets: "
                  f"ffmpeg -threads 1 {b:.2f} s CPU, vigil packets {v:.2f} s CPU ({statistics.median(walls):.1f} s wall) "
                  f"-> RATIO {v / b:.2f}x  (runs: ffmpeg {', '.join(f'{x:.2f}' for x in base)}; "
                  f"vigil {', '.join(f'{x:.2f}' for x in ours)}; {extra_ms:+.2f} ms per sampled frame over decode)",
                  flush=True)
    print("summary: " + ", ".join(f"{n} {r:.2f}x" for n, r in results) + "   (goal <= 1.3x on 720p)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
