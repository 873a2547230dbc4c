"""Every conversation of a batched MiniCPM-V 4.5 `chat()` gets its own frames, and we check it did.

The official remote code (`get_vllm_embedding`) splits the 3D resampler's output by *frames*
per conversation, but the resampler returns one row per *temporal group*: in a batch, the
first conversation takes every row and the others keep the raw `<unk>` embedding in their
image slots, so they are answered without their frames. Vigil computes each conversation's
visual tokens alone, through the official `get_vllm_embedding` (exactly what a one-packet
call computes), and hands them to `chat()` as `vision_hidden_states`; the LLM then runs
batched, which is where a GPU's throughput is.

`SlotProbe` measures what the model really received: a forward pre-hook on the language
model sees the input embeddings at the first generation step and counts, per conversation,
the rows still equal to the `<unk>` embedding (an image slot no visual token filled).

torch is imported lazily: this module is only used once the real model is loaded.
"""

from __future__ import annotations

from typing import Any

from PIL import Image


def vision_states(model: Any, processor: Any, images: list[Image.Image], groups: list[list[int]]) -> Any:
    """(groups, query_num, hidden) visual tokens of one packet, computed the way a solo
    `chat()` computes them: the official image processor, SigLIP and the 3D resampler."""
    import torch

    feats = processor.image_processor(images, do_pad=True, max_slice_nums=1, temporal_ids=groups, return_tensors="pt")
    device = model.device
    data = {
        "pixel_values": [[x.to(device) for x in feats["pixel_values"][0]]],
        "tgt_sizes": [feats["tgt_sizes"][0].to(device)],
        "temporal_ids": feats["temporal_ids"],
        # No text: only the vision half of get_vllm_embedding does work here.
        "input_ids": torch.zeros((1, 1), dtype=torch.long, device=device),
        "image_bound": [[]],
    }
    with torch.inference_mode():
        _, states = model.get_vllm_embedding(data)
    out = states[0]
    want = (len(groups), model.config.query_num)
    if not isinstance(out, torch.Tensor) or tuple(out.shape[:2]) != want:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise RuntimeError(f"the model's vision path returned {shape} for a packet of {len(images)} frames in "
                           f"{len(groups)} temporal group(s); expected {want[0]}x{want[1]} visual tokens")
    return out


class SlotProbe:
    """Counts, per conversation, the `<unk>` rows in the language model's first input
    (prefill). Use around one `chat()` call, on the thread that runs it."""

    def __init__(self, model: Any, unk_id: int, conversations: int) -> None:
        self.model = model
        self.unk_id = unk_id
        self.conversations = conversations
        self.unk_rows: list[int] | None = None
        self._handle: Any = None

    def __enter__(self) -> SlotProbe:
        self._handle = self.model.llm.register_forward_pre_hook(self._hook, with_kwargs=True)
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.remove()

    def _hook(self, _module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        embeds = kwargs.get("inputs_embeds")
        if embeds is None or self.unk_rows is not None:
            return  # later decoding steps feed token ids
        llm = self.model.llm
        unk = llm.model.embed_tokens.weight[self.unk_id]
        if hasattr(llm.config, "scale_emb"):  # the code scales text embeddings so on some models
            unk = unk * llm.config.scale_emb
        rows = (embeds == unk.to(embeds.dtype)).all(-1).sum(-1)  # per sequence
        per = max(1, rows.shape[0] // self.conversations)  # beams/samples repeat each conversation
        self.unk_rows = [int(x) for x in rows.view(self.conversations, per).max(-1).values.tolist()]


__all__ = ["SlotProbe", "vision_states"]
