"""What the two model backends share: prompt building, parsing, thinking escalation.

Subclasses implement only `generate`: prompts in, raw answer texts out.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass

from analyzer.backends.base import Analysis, Backend
from analyzer.prompts import Prompt, build_prompt
from analyzer.settings import ThinkingSettings
from analyzer.verdicts import analysis_from_text, blind_analysis, merge_thinking, needs_thinking
from bus.messages import Packet, Rule


@dataclass(slots=True)
class Reply:
    """One raw answer. `visual_tokens`: what the model was measured to receive for the packet
    (in-process backends can look); None where it cannot be seen (a remote server)."""

    text: str
    visual_tokens: int | None = None


class ModelBackend(Backend):
    def __init__(self, thinking: ThinkingSettings) -> None:
        self.thinking = thinking

    @abc.abstractmethod
    async def generate(self, prompts: list[Prompt], thinking: bool) -> list[Reply]:
        """One answer per prompt (a batch of packets in one call where the backend can)."""

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
        replies = await self.generate(prompts, thinking=False)
        texts = [r.text for r in replies]
        out = []
        redo: list[tuple[int, list[str]]] = []
        for i, (prompt, reply) in enumerate(zip(prompts, replies, strict=True)):
            analysis = self._analysis(reply, prompt)
            analysis.prompt = f"[system]\n{prompt.system}\n\n[user: {len(prompt.packet.frames)} frames, then]\n{prompt.question}"
            analysis.answer = reply.text
            out.append(analysis)
            ids = needs_thinking(analysis, prompt, self.thinking.uncertain_below) if self.thinking.enabled else []
            if ids:
                redo.append((i, ids))
        if redo:
            # Only the rules that need it are re-asked, all such packets in one (batched) call.
            slow_prompts = [build_prompt(prompts[i].packet, rules_by_camera.get(prompts[i].packet.camera, []),
                                         contexts.get(prompts[i].packet.camera, ""), only=ids) for i, ids in redo]
            slow_replies = await self.generate(slow_prompts, thinking=True)
            for (i, ids), sp, sr in zip(redo, slow_prompts, slow_replies, strict=True):
                slow, st = self._analysis(sr, sp), sr.text
                first = out[i].prompt
                out[i] = merge_thinking(out[i], texts[i], slow, st, ids)
                out[i].prompt = f"{first}\n\n[thinking re-ask]\n{sp.question}"
                out[i].answer = out[i].raw  # both answers
        return out

    def _analysis(self, reply: Reply, prompt: Prompt) -> Analysis:
        expected = self.visual_tokens(prompt.packet)
        if reply.visual_tokens is None:
            return analysis_from_text(reply.text, prompt, expected)[0]
        if reply.visual_tokens < expected:
            # Answered without (all of) its frames: no verdict may come from it.
            return blind_analysis(reply.text, prompt, reply.visual_tokens, expected)
        analysis = analysis_from_text(reply.text, prompt, reply.visual_tokens)[0]
        analysis.seen = True
        return analysis
