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
import resource
import statistics
import sys
import time
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


def torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def cpu_s() -> float:
    """CPU seconds of this process (the worker and the model; the embedded Redis is another)."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def packets(per_camera: int) -> list:
    out = []
    for k, (cam, name) in enumerate(CAMERAS):
        frames = read_frames(MEDIA / name, [k * 7 + 3 * i for i in range(6 * per_camera)])
        out += [make_packet(frames[j * 6:(j + 1) * 6], camera=cam, pid=f"{cam}-{j}", ts=[0.4 * i for i in range(6)])
                for j in range(per_camera)]
    return out


def split_times(backend: MiniCPMBackend, loaded, pkts: list, tokens: int) -> tuple[float, float, float]:
    """Seconds for 4 packets: their visual tokens (one packet at a time either way), one batched
    generation, four one-packet generations."""
    from analyzer.backends.minicpm_vision import vision_states
    from analyzer.prompts import build_prompt

    model, proc = loaded
    group = pkts[:4]
    t0 = time.perf_counter()
    vision = [vision_states(model, proc, packet_images(p), p.temporal_ids) for p in group]
    t1 = time.perf_counter()
    kw = dict(tokenizer=proc.tokenizer, processor=proc, use_image_id=False, max_slice_nums=1, enable_thinking=False,
              max_new_tokens=tokens, **backend.decoding())
    msgs = [[{"role": "user", "content": [*packet_images(p), build_prompt(p).question]}] for p in group]
    model.chat(msgs=msgs, vision_hidden_states=vision, temporal_ids=[p.temporal_ids for p in group], **kw)
    t2 = time.perf_counter()
    for m, v, p in zip(msgs, vision, group, strict=True):
        model.chat(msgs=[m], vision_hidden_states=[v], temporal_ids=[p.temporal_ids], **kw)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


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
    if a.threads:
        import torch

        # Busy shared cores make torch's spinning intra-op threads burn time unevenly; one thread
        # keeps the CPU figures repeatable (the ratio is what counts).
        torch.set_num_threads(a.threads)
    settings = MiniCPMSettings(model_id=model_id, device=a.device, dtype=a.dtype, max_new_tokens=a.tokens)
    loaded = load_model(settings)
    pkts = packets(2 if a.quick else 4)
    a.rounds = 1 if a.quick else a.rounds
    print(f"model {'tiny random-weight MiniCPM-V 4.5 (official code)' if a.model is None else model_id} on "
          f"{a.device} ({a.dtype}), {len(pkts)} six-frame packets from {len(CAMERAS)} cameras, "
          f"{a.tokens} new tokens each, torch threads {torch_threads()}\n")
    print(f"| {'scenario':<44} |   n | pkt/s   | p50 ms   | p95 ms   | vis.tok| vs baseline      |")
    print(f"|{'-' * 46}|-----|---------|----------|----------|--------|------------------|")

    def backend(batch: int) -> MiniCPMBackend:
        return MiniCPMBackend(settings.model_copy(update={"max_batch": batch}), ThinkingSettings(), loaded=loaded)

    await measure(backend(4), pkts[:4])  # warm-up (first-call allocations), not counted
    # Rounds in A-B-B-A order so load from other work on the machine hits both alike; the
    # figure is the median of the per-round ratios (wall-clock packets/s and CPU s per packet).
    rounds: list[dict[int, dict]] = []
    for k in range(a.rounds):
        got: dict[int, dict] = {}
        for batch in ((1, 4) if k % 2 == 0 else (4, 1)):
            cpu0 = cpu_s()
            got[batch] = await measure(backend(batch), pkts)
            got[batch]["cpu_per_packet"] = (cpu_s() - cpu0) / got[batch]["packets"]
        rounds.append(got)
        for batch in (1, 4):
            base = got[1] if batch > 1 else None
            print(row(f"round {k + 1}: minicpm official code, batch {batch}", got[batch], base), flush=True)
    wall = sorted(r[4]["pps"] / r[1]["pps"] for r in rounds)
    cpu = sorted(r[1]["cpu_per_packet"] / r[4]["cpu_per_packet"] for r in rounds)
    print(f"\nbatch 4 vs 1, median of {len(rounds)} rounds: {statistics.median(wall):.2f}x packets/s "
          f"(rounds {wall[0]:.2f}-{wall[-1]:.2f}); CPU per packet {statistics.median(cpu):.2f}x less "
          f"({cpu[0]:.2f}-{cpu[-1]:.2f})")
    for batch in (1, 4):
        each = Counter(t for r in rounds for t in r[batch]["tokens_each"])
        print(f"batch {batch}: visual tokens each packet was measured to receive: "
              + ", ".join(f"{t} for {n}/{sum(each.values())}" for t, n in sorted(each.items())))
    vis, gen4, gen1 = split_times(backend(4), loaded, pkts, a.tokens)
    print(f"where the time goes, 4 packets: visual tokens {vis:.2f} s (per packet in both modes); generation "
          f"batched {gen4:.2f} s vs one at a time {gen1:.2f} s ({gen1 / gen4:.2f}x)")
    short = [t for r in rounds for t in r[4]["tokens_each"] if t < 64]
    n4 = sum(len(r[4]["tokens_each"]) for r in rounds)
    blind, n = official_blind(loaded, pkts, 4, a.tokens)
    print(f"packets answered without (all of) their frames, batches of 4: through Vigil {len(short)}/{n4}; "
          f"the official batched chat() as published {blind}/{n}")

if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer packets (a smoke run)")
    ap.add_argument("--model", help="a MiniCPM-V 4.5 checkpoint (default: the tiny random-weight one)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--tokens", type=int, default=128, help="max_new_tokens per answer (a JSON verdict is ~100-200)")
    ap.add_argument("--rounds", type=int, default=3, help="batch 1 / batch 4 measurement rounds")
    ap.add_argument("--threads", type=int, help="torch CPU threads (default: 1 on cpu, torch's own otherwise)")
    args = ap.parse_args()
    if args.threads is None and args.device == "cpu":
        args.threads = 1
    asyncio.run(main(args))
