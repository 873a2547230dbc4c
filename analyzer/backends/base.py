"""The backend interface: packets in, analyses out."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field

from bus.messages import Packet, RuleMatch


@dataclass(slots=True)
class Analysis:
    summary: str
    labels: list[str]
    counts: dict[str, int] = field(default_factory=dict)
    rules: list[RuleMatch] = field(default_factory=list)
    visual_tokens: int = 0
    status: str = "ok"  # ok | unparsed | error
    raw: str = ""


class Backend(abc.ABC):
    name: str = "backend"
    model: str = ""
    #: At most this many packets in flight at once against this backend.
    concurrency: int = 1

    async def start(self) -> None:
        """Load models or open connections."""

    async def close(self) -> None:
        pass

    @abc.abstractmethod
    async def analyze(self, packets: list[Packet], question_context: dict[str, str] | None = None) -> list[Analysis]:
        """One analysis per packet, in order. Must not block the event loop."""
