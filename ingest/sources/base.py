"""The source interface: something that yields decoded frames with their stream time."""

from __future__ import annotations

import abc
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterator

import av

if TYPE_CHECKING:
    from bus.connection import Bus


class SourceError(RuntimeError):
    """A source failed in a way worth telling the operator (bad URL, unreadable file, ...)."""


@dataclass(slots=True)
class Decoded:
    frame: av.VideoFrame
    ts: float  # seconds on the source's clock, from its first frame
    keyframe: bool


class Source(abc.ABC):
    """One camera's media. `frames()` runs in a worker thread (decode is CPU-bound) and
    must return promptly once `stop` is set."""

    #: True when the source delivers frames at capture pace by itself (live cameras).
    live: bool = True
    #: False for sources that wait for their publisher by themselves (WHIP): no reconnect delay.
    backoff: bool = True
    #: True once the decoder skips non-keyframes (reported in the camera's status).
    keyframes_only: bool = False
    #: Files: epoch seconds of stream time 0 (frame k was captured at epoch + its ts).
    epoch: float | None = None

    @abc.abstractmethod
    def frames(self, stop: threading.Event) -> Iterator[Decoded]:
        ...

    def probe(self) -> bool | None:
        """A cheap check, while retrying, that the source's host answers (True), does not
        (False), or cannot be checked this way (None). Must not block for long."""
        return None

    def describe(self) -> str:
        """A credential-free description for logs and status."""
        return type(self).__name__

    async def signalling(self, bus: "Bus") -> None:
        """Optional companion coroutine that runs on the event loop for the camera's life
        (WHIP answers offers here). Most sources need none."""
        return None
