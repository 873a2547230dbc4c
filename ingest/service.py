"""The ingest stage: runs every enabled camera in the registry and follows its changes."""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec

from bus.connection import Bus
from bus.messages import Camera
from bus.registry import Registry
from ingest.camera import CameraIngest
from ingest.settings import IngestSettings

log = logging.getLogger("vigil.ingest")


class IngestService:
    def __init__(self, bus: Bus, settings: IngestSettings, *, poll_s: float = 1.0) -> None:
        self.bus = bus
        self.settings = settings
        self.registry = Registry(bus)
        self.poll_s = poll_s
        self.running: dict[str, tuple[Camera, CameraIngest, asyncio.Task]] = {}

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                await self._reconcile()
                await self._publish_status()
                try:
                    await asyncio.wait_for(stop.wait(), self.poll_s)
                except asyncio.TimeoutError:
                    pass
        finally:
            for _, worker, _ in self.running.values():
                worker.stop()
            await asyncio.gather(*(t for _, _, t in self.running.values()), return_exceptions=True)
            await self._publish_status()

    async def _reconcile(self) -> None:
        wanted = {c.id: c for c in (await self.registry.cameras()).values() if c.enabled}
        for cam_id, (cam, worker, task) in list(self.running.items()):
            if cam_id not in wanted or wanted[cam_id] != cam:
                worker.stop()
                if cam_id not in wanted or not task.done():
                    await asyncio.gather(task, return_exceptions=True)
                del self.running[cam_id]
        for cam_id, cam in wanted.items():
            if cam_id not in self.running:
                worker = CameraIngest(self.bus, cam, self.settings)
                task = asyncio.create_task(worker.run(), name=f"ingest:{cam_id}")
                self.running[cam_id] = (cam, worker, task)
                log.info("camera %s: started (%s)", cam_id, worker.source.describe())

    async def _publish_status(self) -> None:
        now = time.time()
        pipe = self.bus.r.pipeline(transaction=False)
        for cam_id, (_, worker, _) in self.running.items():
            st = worker.stats
            age = now - st.last_frame_wall if st.last_frame_wall else -1.0
            status = {
                "state": st.state, "decoded": st.decoded, "sampled": st.sampled, "written": st.written,
                "dropped": st.dropped, "last_error": st.last_error, "last_frame_age_s": round(age, 2),
                "updated": now,
            }
            pipe.set(self.bus.keys.camera_status(cam_id), msgspec.json.encode(status), ex=30)
        await pipe.execute()

    def all_finished(self) -> bool:
        return all(t.done() for _, _, t in self.running.values())
