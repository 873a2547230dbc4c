"""The narrow interface every alert channel implements (webhooks, MQTT, ...).

A channel reads what it needs from the bus through its own consumer group, so a slow or
broken channel never holds back the lifecycle or another channel."""

from __future__ import annotations

import abc
import asyncio


class Channel(abc.ABC):
    name: str = "channel"

    async def prepare(self) -> None:
        """Create consumer groups before anything is published (nothing may be missed)."""

    @abc.abstractmethod
    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set."""
