"""MiniCPM-V 4.5 in-process through transformers: the only path that uses the 3D resampler.

One packet = up to six <=448x448 frames + their `temporal_ids` group -> 64 visual tokens
(`max_slice_nums=1`, `use_image_id=False`). Waiting packets of several cameras go into one
`chat()` call (msgs is a list of conversations, temporal_ids one level deeper).

torch and transformers are imported only when the real model is loaded (the `minicpm`
extra); tests hand in a stand-in model object instead.
"""

from __future__ import annotations

import asyncio
import io
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from PIL import Image

from analyzer.backends.model import ModelBackend
from analyzer.prompts import Prompt
from analyzer.settings import MiniCPMSettings, ThinkingSettings
from bus.messages import Packet

log = logging.getLogger("vigil.analyzer.minicpm")
TOKENS_PER_PACKET = 64  # one 3D-resampler query set per group of <= 6 frames at max_slice_nums=1


def load_model(s: MiniCPMSettings) -> tuple[Any, Any]:
    """Load weights and tokenizer (blocking; called in the generation thread)."""
    try:
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:  # the extra is optional
        raise RuntimeError(
            "analyzer.backend 'minicpm' needs the 'minicpm' extra (torch, transformers): "
            "pip install 'vigil[minicpm]'") from exc
    dtype = getattr(torch, s.dtype)
    quantized = any(q in s.model_id.lower() for q in ("int4", "awq"))
    kwargs: dict[str, Any] = {"trust_remote_code": True, "attn_implementation": s.attn_implementation, "torch_dtype": dtype}
    if quantized:
        kwargs["device_map"] = s.device  # pre-quantised weights are placed on load, not moved after
    model = AutoModel.from_pretrained(s.model_id, **kwargs)
    if not quantized:
        model = model.to(device=s.device)
    model = model.eval()
    tok = AutoTokenizer.from_pretrained(s.model_id, trust_remote_code=True)
    return model, tok


def packet_images(packet: Packet) -> list[Image.Image]:
    frames = []
    for f in packet.frames:
        with Image.open(io.BytesIO(f.jpeg)) as im:
            frames.append(im.convert("RGB"))
    return frames


class MiniCPMBackend(ModelBackend):
    name = "minicpm"
    tokens_note = "3D resampler: 64 visual tokens per packet of up to 6 frames"

    def __init__(self, settings: MiniCPMSettings, thinking: ThinkingSettings | None = None,
                 model: Any = None, tokenizer: Any = None) -> None:
        super().__init__(thinking or ThinkingSettings())
        self.s = settings
        self.model = settings.model_id
        self._model = model
        self._tok = tokenizer
        self.concurrency = 1  # one GPU generation at a time; throughput comes from batching
        self.max_batch = settings.max_batch
        # A dedicated thread: generation holds the GPU for seconds and must not block the loop;
        # one thread keeps CUDA state on one OS thread.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="minicpm")

    async def start(self) -> None:
        if self._model is None:
            loop = asyncio.get_running_loop()
            log.info("loading %s on %s (%s, %s)", self.s.model_id, self.s.device, self.s.dtype, self.s.attn_implementation)
            self._model, self._tok = await loop.run_in_executor(self._pool, load_model, self.s)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def visual_tokens(self, packet: Packet) -> int:
        return TOKENS_PER_PACKET * max(1, len(packet.temporal_ids))

    async def generate(self, prompts: list[Prompt], thinking: bool) -> list[str]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._chat, prompts, thinking)

    def _chat(self, prompts: list[Prompt], thinking: bool) -> list[str]:
        # Decoding JPEGs here too keeps that CPU work off the event loop.
        msgs = [[{"role": "user", "content": [*packet_images(p.packet), p.question]}] for p in prompts]
        tids = [p.packet.temporal_ids for p in prompts]
        batched = len(prompts) > 1
        # One system prompt for the whole batch: it is the same for every camera by design
        # (per-camera context lives in each question).
        answer = self._model.chat(
            msgs=msgs if batched else msgs[0],
            tokenizer=self._tok,
            use_image_id=False,
            max_slice_nums=1,
            temporal_ids=tids if batched else tids[0],
            enable_thinking=thinking,
            system_prompt=prompts[0].system,
            max_new_tokens=self.thinking.max_new_tokens if thinking else self.s.max_new_tokens,
        )
        texts = answer if isinstance(answer, (list, tuple)) else [answer]
        if len(texts) != len(prompts):
            raise RuntimeError(f"chat() returned {len(texts)} answers for {len(prompts)} packets")
        return [str(t) for t in texts]
