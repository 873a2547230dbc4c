"""The minicpm backend's batching on MiniCPM-V 4.5's official code: packets per second with
`max_batch` 4 vs 1, through the real worker on a real (embedded) Redis, and the visual tokens
each packet was measured to receive.

    python bench/minicpm.py [--quick] [--device cuda --dtype bfloat16] [--model PATH]

Without --model it runs the tiny random-weight checkpoint built from ../shared/models (built
once and cached, like the tests; CPU, float32). Random weights never stop early, so every
answer is --tokens long: the figure is batched generation against one-at-a-time, not answer
quality. The baseline (batch 1) is measured in the same run; the ratio is the figure.

Also shown: what the official batched chat() (no per-packet visual tokens) gives the same
batches -- packets answered without their frames.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analyzer.backends.minicpm import MiniCPMBackend, load_model, packet_images  # noqa: E402
from analyzer.backends.minicpm_vision import SlotProbe  # noqa: E402
from analyzer.settings import MiniCPMSettings, ThinkingSettings  # noqa: E402
from bench.analyzer import measure, row  # noqa: E402
from tests.analyzer_helpers import make_packet, read_frames  # noqa: E402

MEDIA = ROOT.parent / "shared" / "media"
CAMERAS = [("campus", "vtest.avi"), ("cars", "car-detection.mp4"), ("road", "bikes.mp4"), ("path", "vtest.avi")]


def packets(per_camera: int) -> list:
    out = []
    for k, (cam, name) in enumerate(CAMERAS):
        frames = read_frames(MEDIA / name, [k * 7 + 3 * i for i in range(6 * per_camera)])
        out += [make_packet(frames[j * 6:(j + 1) * 6], camera=cam, pid=f"{cam}-{j}", ts=[0.4 * i for i in range(6)])
                for j in range(per_camera)]
    return out


def official_blind(loaded, pkts: list, batch: int, tokens: int) -> tuple[int, int]:
    """(packets with no visual tokens, packets) when the same batches go through the official
    batched chat() as published."""
    model, proc = loaded
    blind = 0
    for i in range(0, len(pkts), batch):
        group = pkts[i:i + batch]
        msgs = [[{"role": "user", "content": [*packet_images(p), "What happens?"]}] for p in group]
        with SlotProbe(model, proc.tokenizer.unk_token_id, len(group)) as probe:
            model.chat(msgs=msgs, tokenizer=proc.tokenizer, processor=proc, use_image_id=False, max_slice_nums=1,
                       temporal_ids=[p.temporal_ids for p in group], enable_thinking=False, max_new_tokens=tokens,
                       sampling=False, num_beams=1)
        blind += sum(1 for u in probe.unk_rows or [] if u)
    return blind, len(pkts)


async def main(a: argparse.Namespace) -> None:
    model_id = a.model
    if model_id is None:
        from tests.support.tiny_minicpm import tiny_model

        model_id = str(tiny_model().path)
    settings = MiniCPMSettings(model_id=model_id, device=a.device, dtype=a.dtype, max_new_tokens=a.tokens)
    loaded = load_model(settings)
    pkts = packets(2 if a.quick else 6)
    print(f"model {'tiny random-weight MiniCPM-V 4.5 (official code)' if a.model is None else model_id} on "
          f"{a.device} ({a.dtype}), {len(pkts)} six-frame packets from {len(CAMERAS)} cameras, "
          f"{a.tokens} new tokens each\n")
    print(f"| {'scenario':<44} |   n | pkt/s   | p50 ms   | p95 ms   | vis.tok| vs baseline      |")
    print(f"|{'-' * 46}|-----|---------|----------|----------|--------|------------------|")

    def backend(batch: int) -> MiniCPMBackend:
        return MiniCPMBackend(settings.model_copy(update={"max_batch": batch}), ThinkingSettings(), loaded=loaded)

    await measure(backend(4), pkts[:4])  # warm-up (first-call allocations), not counted
    results = {}
    for batch in (1, 4):
        results[batch] = await measure(backend(batch), pkts)
        print(row(f"minicpm official code, batch {batch}", results[batch], results.get(1) if batch > 1 else None),
              flush=True)
    for batch, r in results.items():
        each = Counter(r["tokens_each"])
        print(f"\nbatch {batch}: visual tokens each packet was measured to receive: "
              + ", ".join(f"{t} for {n}/{len(r['tokens_each'])}" for t, n in sorted(each.items())))
    short = sum(1 for t in results[4]["tokens_each"] if t < 64)
    blind, n = official_blind(loaded, pkts, 4, a.tokens)
    print(f"packets answered without (all of) their frames, batches of 4: through Vigil {short}/{n}; "
          f"the official batched chat() as published {blind}/{n}")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer packets (a smoke run)")
    ap.add_argument("--model", help="a MiniCPM-V 4.5 checkpoint (default: the tiny random-weight one)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--tokens", type=int, default=32, help="max_new_tokens per answer")
    asyncio.run(main(ap.parse_args()))
