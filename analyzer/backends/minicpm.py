"""MiniCPM-V 4.5 in-process through transformers: the only path that uses the 3D resampler.

One packet = up to six frames at the model's own size + their `temporal_ids` groups -> 64
visual tokens per group (`max_slice_nums=1`, `use_image_id=False`). Waiting packets go into
one `chat()` call (msgs is a list of conversations, temporal_ids one level deeper); each
packet's visual tokens are computed alone and passed in (`minicpm_vision.py`: the official
batched path leaves conversations 2..N without their frames), and what the model received is
measured per packet: an event's `visual_tokens` is that measurement.

torch and transformers are imported only when the model is loaded (the `minicpm` extra).
"""

from __future__ import annotations

import asyncio
import importlib
import io
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

from PIL import Image

from analyzer.backends.minicpm_vision import SlotProbe, vision_states
from analyzer.backends.model import ModelBackend, Reply
from analyzer.prompts import Prompt
from analyzer.settings import MiniCPMSettings, ThinkingSettings
from bus.messages import Packet

log = logging.getLogger("vigil.analyzer.minicpm")
TOKENS_PER_GROUP = 64  # one 3D-resampler query set per temporal group of <= 6 frames at max_slice_nums=1
# MiniCPM-V 4.5's remote code imports Qwen3Config (transformers 4.51+) and modules 5.x removed.
TRANSFORMERS_MIN, TRANSFORMERS_BELOW = "4.51", "4.58"
INSTALL = "pip install -c requirements.lock 'vigil[minicpm]'"


class Loaded(NamedTuple):
    model: Any
    processor: Any  # the model's own processor; its tokenizer is the one chat() decodes with


def check_transformers(version: str) -> None:
    """A clear error naming the versions that run the model's code."""
    from packaging.version import Version

    if not Version(TRANSFORMERS_MIN) <= Version(version) < Version(TRANSFORMERS_BELOW):
        raise RuntimeError(
            f"analyzer.backend 'minicpm' needs transformers>={TRANSFORMERS_MIN},<{TRANSFORMERS_BELOW} "
            f"(MiniCPM-V 4.5's code needs Qwen3Config, added in 4.51; 5.x removed modules it imports); "
            f"found {version}: {INSTALL}")


def load_model(s: MiniCPMSettings) -> Loaded:
    """Weights, processor and tokenizer (blocking; called in the generation thread)."""
    try:
        import torch
        import transformers
        from transformers import AutoModel, AutoProcessor
    except ImportError as exc:  # the extra is optional
        raise RuntimeError(f"analyzer.backend 'minicpm' needs the 'minicpm' extra (torch, transformers): {INSTALL}") \
            from exc
    check_transformers(transformers.__version__)
    try:  # the remote code imports it (and never uses it); a CUDA wheel beside a CPU torch fails here
        importlib.import_module("torchvision")
    except Exception as exc:
        raise RuntimeError(
            f"MiniCPM-V 4.5's code imports torchvision, which does not import here ({type(exc).__name__}: {exc}). "
            f"GPU machines: {INSTALL} (torchvision 0.28 for torch 2.13); CPU-only machines need the CPU build of "
            "torchvision 0.28 from PyTorch's own wheel index (docs/analyzer.md)") from exc
    from packaging.version import Version

    dtype_key = "dtype" if Version(transformers.__version__) >= Version("4.56") else "torch_dtype"
    quantized = any(q in s.model_id.lower() for q in ("int4", "awq"))
    kwargs: dict[str, Any] = {"trust_remote_code": True, "attn_implementation": s.attn_implementation,
                              dtype_key: getattr(torch, s.dtype)}
    if quantized:
        kwargs["device_map"] = s.device  # pre-quantised weights are placed on load, not moved after
    model = AutoModel.from_pretrained(s.model_id, **kwargs)
    if not quantized:
        model = model.to(device=s.device)
    model = model.eval()
    processor = AutoProcessor.from_pretrained(s.model_id, trust_remote_code=True)
    return Loaded(model, processor)


def packet_images(packet: Packet) -> list[Image.Image]:
    frames = []
    for f in packet.frames:
        with Image.open(io.BytesIO(f.jpeg)) as im:
            frames.append(im.convert("RGB"))
    return frames


def unmask(text: str) -> str:
    """The processor masks token id 0 out of attention (`input_ids.ne(0)`), and id 0 is `!`:
    the fullwidth `！` (its own token) keeps the character visible to the model."""
    return text.replace("!", "\uff01")


class MiniCPMBackend(ModelBackend):
    name = "minicpm"
    tokens_note = "3D resampler: 64 visual tokens per packet of up to 6 frames (measured per packet)"

    def __init__(self, settings: MiniCPMSettings, thinking: ThinkingSettings | None = None,
                 loaded: Loaded | None = None) -> None:
        super().__init__(thinking or ThinkingSettings())
        self.s = settings
        self.model = settings.model_id
        self._loaded = loaded
        self.concurrency = 1  # one GPU generation at a time; throughput comes from batching
        self.max_batch = settings.max_batch
        # A dedicated thread: generation holds the GPU for seconds and must not block the loop;
        # one thread keeps CUDA state on one OS thread.
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="minicpm")

    async def start(self) -> None:
        if self._loaded is None:
            loop = asyncio.get_running_loop()
            s = self.s
            log.info("loading %s on %s (%s, %s)", s.model_id, s.device, s.dtype, s.attn_implementation)
            self._loaded = await loop.run_in_executor(self._pool, load_model, self.s)

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    def visual_tokens(self, packet: Packet) -> int:
        return TOKENS_PER_GROUP * max(1, len(packet.temporal_ids))

    async def generate(self, prompts: list[Prompt], thinking: bool) -> list[Reply]:
        if self._loaded is None:
            await self.start()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._chat, prompts, thinking)

    def decoding(self) -> dict[str, Any]:
        """chat() keyword arguments for the decoding. Its sampling=False default is beam search
        (3 beams); num_beams=1 overrides that: greedy, deterministic."""
        if self.s.sampling:
            return {"sampling": True}
        return {"sampling": False, "num_beams": 1, "repetition_penalty": self.s.repetition_penalty}

    def _chat(self, prompts: list[Prompt], thinking: bool) -> list[Reply]:
        # Runs on the generation thread: JPEG decoding and the vision pass are CPU/GPU work too.
        assert self._loaded is not None
        model, processor = self._loaded
        images = [packet_images(p.packet) for p in prompts]
        groups = [p.packet.temporal_ids for p in prompts]
        # Each packet's visual tokens alone (what a one-packet call computes), then one batched generation.
        vision = [vision_states(model, processor, im, g) for im, g in zip(images, groups, strict=True)]
        msgs = [[{"role": "user", "content": [*im, unmask(p.question)]}] for im, p in zip(images, prompts, strict=True)]
        with SlotProbe(model, processor.tokenizer.unk_token_id, len(prompts)) as probe:
            # One system prompt for the batch: it is the same for every camera by design
            # (per-camera context lives in each question).
            answer = model.chat(
                msgs=msgs,
                tokenizer=processor.tokenizer,
                processor=processor,
                vision_hidden_states=vision,
                use_image_id=False,
                max_slice_nums=1,
                temporal_ids=groups,
                enable_thinking=thinking,
                system_prompt=unmask(prompts[0].system),
                max_new_tokens=self.thinking.max_new_tokens if thinking else self.s.max_new_tokens,
                **self.decoding(),
            )
        if not isinstance(answer, list | tuple) or len(answer) != len(prompts):
            raise RuntimeError(f"chat() returned {type(answer).__name__} for {len(prompts)} packets")
        if probe.unk_rows is None:
            raise RuntimeError("the language model never received input embeddings: visual tokens unverified")
        out = []
        for p, text, unk in zip(prompts, answer, probe.unk_rows, strict=True):
            seen = max(0, self.visual_tokens(p.packet) - unk)
            if unk:
                log.error("packet %s: %d of its image slots held no visual tokens", p.packet.id, unk)
            out.append(Reply(str(text), seen))
        return out
