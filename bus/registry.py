"""Shared registries in Redis: cameras and rules, editable at run time by any process."""

from __future__ import annotations

import logging

import msgspec

from bus import messages
from bus.connection import Bus
from bus.messages import Camera, Rule

log = logging.getLogger("vigil.bus")


class Registry:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus

    async def put_camera(self, camera: Camera) -> None:
        await self.bus.r.hset(self.bus.keys.cameras, camera.id, messages.encode(camera))

    async def remove_camera(self, camera_id: str) -> bool:
        return bool(await self.bus.r.hdel(self.bus.keys.cameras, camera_id))

    async def cameras(self) -> dict[str, Camera]:
        return await self._all(self.bus.keys.cameras, Camera)

    async def camera(self, camera_id: str) -> Camera | None:
        raw = await self.bus.r.hget(self.bus.keys.cameras, camera_id)
        return messages.decode(raw, Camera) if raw else None

    async def put_rule(self, rule: Rule) -> None:
        await self.bus.r.hset(self.bus.keys.rules, rule.id, messages.encode(rule))

    async def remove_rule(self, rule_id: str) -> bool:
        return bool(await self.bus.r.hdel(self.bus.keys.rules, rule_id))

    async def rules(self) -> dict[str, Rule]:
        return await self._all(self.bus.keys.rules, Rule)

    async def _all(self, key: str, kind: type) -> dict:
        out = {}
        for k, raw in (await self.bus.r.hgetall(key)).items():
            try:
                out[k.decode()] = messages.decode(raw, kind)
            except msgspec.DecodeError as exc:
                log.warning("registry entry %s in %s unreadable: %s", k, key, exc)
        return out
