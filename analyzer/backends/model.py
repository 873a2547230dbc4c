"""What the two model backends share: prompt building, parsing, thinking escalation.

Subclasses implement only `generate`: prompts in, raw answer texts out.
"""

from __future__ import annotations

import abc

from analyzer.backends.base import Analysis, Backend
from analyzer.prompts import Prompt, build_prompt
from analyzer.settings import ThinkingSettings
from analyzer.verdicts import analysis_from_text, merge_thinking, needs_thinking
from bus.messages import Packet, Rule


class ModelBackend(Backend):
    def __init__(self, thinking: ThinkingSettings) -> None:
        self.thinking = thinking

    @abc.abstractmethod
    async def generate(self, prompts: list[Prompt], thinking: bool) -> list[str]:
        """One raw answer per prompt (a batch of packets in one call where the backend can)."""

    @abc.abstractmethod
    def visual_tokens(self, packet: Packet) -> int:
        """Visual tokens one packet costs on this backend."""

    async def analyze(
        self,
        packets: list[Packet],
        rules_by_camera: dict[str, list[Rule]] | None = None,
        contexts: dict[str, str] | None = None,
    ) -> list[Analysis]:
        rules_by_camera = rules_by_camera or {}
        contexts = contexts or {}
        prompts = [build_prompt(p, rules_by_camera.get(p.camera, []), contexts.get(p.camera, "")) for p in packets]
        texts = await self.generate(prompts, thinking=False)
        out = []
        redo: list[tuple[int, list[str]]] = []
        for i, (prompt, text) in enumerate(zip(prompts, texts, strict=True)):
            analysis, _ = analysis_from_text(text, prompt, self.visual_tokens(prompt.packet))
            analysis.prompt = f"[system]\n{prompt.system}\n\n[user: {len(prompt.packet.frames)} frames, then]\n{prompt.question}"
            analysis.answer = text
            out.append(analysis)
            ids = needs_thinking(analysis, prompt, self.thinking.uncertain_below) if self.thinking.enabled else []
            if ids:
                redo.append((i, ids))
        if redo:
            # Only the rules that need it are re-asked, all such packets in one (batched) call.
            slow_prompts = [build_prompt(prompts[i].packet, rules_by_camera.get(prompts[i].packet.camera, []),
                                         contexts.get(prompts[i].packet.camera, ""), only=ids) for i, ids in redo]
            slow_texts = await self.generate(slow_prompts, thinking=True)
            for (i, ids), sp, st in zip(redo, slow_prompts, slow_texts, strict=True):
                slow, _ = analysis_from_text(st, sp, self.visual_tokens(sp.packet))
                first = out[i].prompt
                out[i] = merge_thinking(out[i], texts[i], slow, st, ids)
                out[i].prompt = f"{first}\n\n[thinking re-ask]\n{sp.question}"
                out[i].answer = out[i].raw  # both answers
        return out
