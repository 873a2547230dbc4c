"""The backend interface: packets (plus the rules and context of their cameras) in, analyses out."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from bus.messages import Detection, Packet, Rule, RuleMatch


@dataclass(slots=True)
class Analysis:
    summary: str
    labels: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    rules: list[RuleMatch] = field(default_factory=list)
    objects: list[Detection] = field(default_factory=list)  # detector boxes (cpu backend)
    visual_tokens: int = 0
    status: str = "ok"  # ok | unparsed | error
    raw: str = ""
    escalated: int = 0  # rules re-asked with thinking
    prompt: str = ""  # what the model was asked (system + question), for the packet inspector
    answer: str = ""  # the model's raw answer, kept beside the event even when it parsed
    seen: bool | None = None  # the model was measured to receive every frame (None: not measurable)


class BackendError(RuntimeError):
    """The backend could not analyse the packets (after its own retries)."""


class BackendUnavailable(BackendError):
    """Refused without trying (open circuit): the worker keeps the packets and tries later."""


class Backend(abc.ABC):
    name: str = "backend"
    model: str = ""
    #: Calls in flight at once against this backend (the worker's concurrency limit).
    concurrency: int = 1
    #: Packets one call may carry (several cameras batched into one model call).
    max_batch: int = 1
    #: Shown next to the visual-tokens metric.
    tokens_note: str = ""

    async def start(self) -> None:
        """Load models or open connections."""

    async def close(self) -> None:
        pass

    def available(self) -> bool:
        """False while the backend refuses work (e.g. an open circuit breaker)."""
        return True

    @abc.abstractmethod
    async def analyze(
        self,
        packets: list[Packet],
        rules_by_camera: dict[str, list[Rule]] | None = None,
        contexts: dict[str, str] | None = None,
    ) -> list[Analysis]:
        """One analysis per packet, in order. Must not block the event loop.

        rules_by_camera: the enabled rules that apply to each camera (structured and prompt rules).
        contexts: per-camera context text (Camera.context), e.g. "a loading dock; trucks are normal".
        """
