"""The ingest stage: runs its share of the enabled cameras in the registry (one owner per
camera through leases in Redis) and follows registry changes without a restart."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass

import msgspec
from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeoutError

from bus.connection import Bus
from bus.messages import Camera, CameraStatus
from bus.registry import Registry
from bus.urls import display_source
from ingest.camera import CameraIngest, Resume
from ingest.leases import Leases, fair_share
from ingest.settings import IngestSettings
from ingest.sources import SourceError

log = logging.getLogger("vigil.ingest")


def new_worker_id() -> str:
    host = socket.gethostname().split(".")[0][:32] or "host"
    return f"{host}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


@dataclass
class _Rate:
    """Counters at the previous status publish, for fps over the last period."""

    t: float
    decoded: int
    written: int


class IngestService:
    def __init__(self, bus: Bus, settings: IngestSettings, *, poll_s: float | None = None,
                 worker_id: str | None = None) -> None:
        self.bus = bus
        self.settings = settings
        self.registry = Registry(bus)
        self.poll_s = poll_s if poll_s is not None else settings.poll_s
        self.worker = worker_id or new_worker_id()
        self.leases = Leases(bus, self.worker, settings.lease_ttl_s, self.poll_s)
        self.running: dict[str, tuple[Camera, CameraIngest, asyncio.Task]] = {}
        # Cameras that could not start (a refused or malformed source): not retried until
        # their registry entry changes, so one bad entry costs nothing and never stops another.
        self.refused: dict[str, tuple[Camera, CameraStatus]] = {}
        self._rates: dict[str, _Rate] = {}
        self._status_ttl = int(max(30, 3 * settings.lease_ttl_s))

    async def run(self, stop: asyncio.Event) -> None:
        log.info("ingest worker %s up (lease ttl %.0fs)", self.worker, self.settings.lease_ttl_s)
        try:
            while not stop.is_set():
                try:
                    await self._reconcile()
                    await self._publish_status()
                except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                    # Redis away: keep cameras running; leases are re-taken once it is back.
                    log.warning("ingest: bus unavailable (%s); retrying", type(exc).__name__)
                try:
                    await asyncio.wait_for(stop.wait(), self.poll_s)
                except asyncio.TimeoutError:
                    pass
        finally:
            for _, worker, _ in self.running.values():
                worker.stop()
            tasks = [t for _, _, t in self.running.values()]
            if tasks:
                # A decoder blocked in a network read ends by its read timeout; don't hold
                # shutdown for it (its daemon thread is abandoned).
                _, pending = await asyncio.wait(tasks, timeout=3.0)
                for t in pending:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            try:
                await self._publish_status()
                for cam_id in self.running:
                    await self.leases.release(cam_id)
                await self.leases.leave()
            except Exception as exc:  # shutting down: Redis may already be gone
                log.debug("ingest: final status/lease release failed: %s", exc)

    async def _reconcile(self) -> None:
        workers = await self.leases.heartbeat()
        wanted = {c.id: c for c in (await self.registry.cameras()).values() if c.enabled}

        # 1. Cameras removed, disabled or edited in the registry.
        for cam_id, (cam, _, _) in list(self.running.items()):
            if cam_id not in wanted:
                await self._stop_camera(cam_id, release=True, why="removed or disabled")
            elif wanted[cam_id] != cam:
                await self._stop_camera(cam_id, release=False, why="changed")
                await self._start_camera(wanted[cam_id])

        # 2. Keep our leases; a camera whose lease another worker holds is no longer ours.
        for cam_id in await self.leases.renew(list(self.running)):
            log.warning("camera %s: lease taken by another worker; stopping here", cam_id)
            await self._stop_camera(cam_id, release=False, why="lease lost")

        # 3. Fair share: hand extra cameras back when other workers have room.
        share = fair_share(len(wanted), workers, self.settings.max_cameras)
        if workers > 1 and len(self.running) > share:
            for cam_id in sorted(self.running)[share:]:
                await self._stop_camera(cam_id, release=True, why="rebalancing")

        # 4. Take unowned cameras up to our share (a refused camera is skipped until it changes).
        for cam_id in list(self.refused):
            if wanted.get(cam_id) != self.refused[cam_id][0]:
                del self.refused[cam_id]
        for cam_id, cam in sorted(wanted.items()):
            if len(self.running) >= share:
                break
            if cam_id not in self.running and cam_id not in self.refused and await self.leases.acquire(cam_id):
                await self._start_camera(cam)

    async def _start_camera(self, cam: Camera) -> None:
        resume = await self._resume_point(cam.id)
        try:
            worker = CameraIngest(self.bus, cam, self.settings, resume=resume)
        except Exception as exc:  # a bad camera entry must not stop the others
            # SourceError texts are written credential-free; anything else shows only its kind.
            why = str(exc) if isinstance(exc, SourceError) else f"cannot start: {type(exc).__name__}"
            log.error("camera %s: %s", cam.id, why)
            now = time.time()
            status = CameraStatus(camera=cam.id, state="error", source=display_source(cam.url), worker=self.worker,
                                  last_error=why, last_error_at=now, updated=now)
            self.refused[cam.id] = (cam, status)
            await self._write_status(status)
            await self.leases.release(cam.id)
            return
        task = asyncio.create_task(worker.run(), name=f"ingest:{cam.id}")
        self.running[cam.id] = (cam, worker, task)
        self._rates[cam.id] = _Rate(time.monotonic(), 0, 0)
        log.info("camera %s: started on %s (%s)", cam.id, self.worker, worker.source.describe())

    async def _stop_camera(self, cam_id: str, *, release: bool, why: str) -> None:
        cam, worker, task = self.running.pop(cam_id)
        worker.stop()
        # A decoder blocked in a network read ends by its read timeout; don't wait that long.
        done, _ = await asyncio.wait({task}, timeout=2.0)
        if not done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._rates.pop(cam_id, None)
        if release:
            await self.leases.release(cam_id)
            await self.bus.r.delete(self.bus.keys.camera_status(cam_id))
        log.info("camera %s: stopped (%s)", cam_id, why)

    async def _resume_point(self, cam_id: str) -> Resume | None:
        raw = await self.bus.r.get(self.bus.keys.camera_status(cam_id))
        if not raw:
            return None
        try:
            st = msgspec.json.decode(raw, type=CameraStatus)
        except msgspec.DecodeError:
            return None
        return Resume(ts=st.last_ts, seq=st.next_seq, wall=st.updated - max(st.last_frame_age_s, 0.0))

    def status_of(self, cam_id: str, now: float | None = None) -> CameraStatus:
        now = now or time.time()
        _, worker, _ = self.running[cam_id]
        st = worker.stats
        rate = self._rates.get(cam_id)
        fps_in = fps_out = 0.0
        mono = time.monotonic()
        if rate and mono > rate.t:
            fps_in = (st.decoded - rate.decoded) / (mono - rate.t)
            fps_out = (st.written - rate.written) / (mono - rate.t)
        return CameraStatus(
            camera=cam_id, state=st.state, source=worker.source.describe(), worker=self.worker,  # type: ignore[arg-type]
            last_error=st.last_error, last_error_at=st.last_error_at, next_attempt=st.next_attempt,
            reconnects=st.reconnects, outages=st.outages,
            fps_in=round(fps_in, 2), fps_out=round(fps_out, 2), decoded=st.decoded, sampled=st.sampled,
            written=st.written, dropped=st.dropped,
            last_frame_age_s=round(now - st.last_frame_wall, 2) if st.last_frame_wall else -1.0,
            last_ts=round(st.last_ts, 6), next_seq=worker.resume.seq + st.sampled,
            keyframes_only=worker.source.keyframes_only, updated=now,
        )

    async def _write_status(self, status: CameraStatus) -> None:
        await self.bus.r.set(self.bus.keys.camera_status(status.camera), msgspec.json.encode(status),
                             ex=self._status_ttl)

    async def _publish_status(self) -> None:
        now = time.time()
        pipe = self.bus.r.pipeline(transaction=False)
        for cam_id, (_, worker, _) in self.running.items():
            try:
                status = self.status_of(cam_id, now)
            except Exception:  # one camera's status must never stop the others' (or the stage)
                log.exception("camera %s: status failed", cam_id)
                continue
            pipe.set(self.bus.keys.camera_status(cam_id), msgspec.json.encode(status), ex=self._status_ttl)
            self._rates[cam_id] = _Rate(time.monotonic(), worker.stats.decoded, worker.stats.written)
        for cam_id, (_, status) in self.refused.items():
            pipe.set(self.bus.keys.camera_status(cam_id), msgspec.json.encode(status), ex=self._status_ttl)
        await pipe.execute()

    def all_finished(self) -> bool:
        return all(t.done() for _, _, t in self.running.values())
