"""The scheduler stage: reads its cameras' frames, scores motion, emits packets.

Scale-out: scheduler processes share the cameras through leases in Redis (one scheduler per
camera, fair shares, a dead process's cameras move within `lease_ttl_s`). Each camera's
detector and packer state is saved with its cursor every `snapshot_s` (or `snapshot_frames`),
so the next owner continues from exactly that state: it rebuilds the packets since the save
with the same ids, and the packets stream takes each id once (publish_once), so a failover
neither loses nor duplicates a packet.
Fairness: one XREAD takes at most `batch` frames from each camera's stream, so a camera with
a backlog cannot crowd out the others in a round, and the packets of a round are published
interleaved across cameras, onset packets first (each camera's own order kept).
Freshness: a live camera's packet whose newest frame is older than `max_age_s` is dropped
and counted (stats hash `sched:stats`) rather than delivered late; replays are never stale.
Activities: each camera's activity start, packets and end go to the `activities` stream
(ActivityNote), so the alerts stage knows at once when an activity begins and, later, that it
ended and which packets it has to wait for. A round publishes its `start` notes first (the
fastest path to an alert), then each packet's note right before the packet, then `end`s.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections import defaultdict

import numpy as np

from bus.activities import ActivityStore
from bus.connection import Bus
from bus.lease import LeaseSet, fair_share
from bus.messages import ActivityNote, Camera, Frame, FrameStreamItem, Packet, StreamEnd
from bus.registry import Registry
from bus.zones import CameraAreas, ZoneStore
from scheduler import state as snapshots
from scheduler.motion import MotionDetector, MotionResult
from scheduler.packer import Candidate, Packer
from scheduler.settings import SchedulerSettings

log = logging.getLogger("vigil.scheduler")
# One id per process: a stage that the supervisor restarts keeps its leases.
PROCESS_WORKER = f"{(socket.gethostname().split('.')[0][:32] or 'host')}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class _CameraState:
    def __init__(self, camera: Camera, settings: SchedulerSettings) -> None:
        self.settings = settings.for_camera(camera.id)
        self.detector = MotionDetector(self.settings.motion, sports=self.settings.sports)
        self.packer = Packer(camera.id, self.settings, notes=True)
        self.live = camera.pace == "realtime"
        self.errors = 0
        self.areas_stamp: float | None = None  # `updated` of the zones/masks entry applied (None: the YAML's)
        self.unsaved = 0  # frames consumed since the last snapshot
        self.saved_at = time.monotonic()

    def apply_areas(self, areas: CameraAreas | None) -> None:
        """Zones and masks from Redis (drawn in the dashboard) replace the settings' ones."""
        stamp = areas.updated if areas else None
        if stamp == self.areas_stamp:
            return
        self.areas_stamp = stamp
        m = self.settings.motion
        self.detector.set_areas(areas.masks if areas else m.mask, areas.zones if areas else m.zones)

    def snapshot(self, camera: str, cursor: str) -> bytes:
        return snapshots.encode(snapshots.CameraSnapshot(
            camera=camera, cursor=cursor, saved=time.time(), detector=self.detector.state(),
            packer=self.packer.state()))

    def restore(self, snap: snapshots.CameraSnapshot) -> None:
        self.detector.load(snap.detector)
        self.packer.load(snap.packer)


def interleave(packets: list[Packet]) -> list[Packet]:
    """Round-robin across cameras, onset packets first; each camera's own order is kept."""
    queues: dict[str, list[Packet]] = defaultdict(list)
    for p in packets:
        queues[p.camera].append(p)
    out: list[Packet] = []
    heads = list(queues.values())
    while heads:
        heads.sort(key=lambda q: q[0].reason != "onset")  # stable: cameras keep arrival order otherwise
        for q in heads:
            out.append(q.pop(0))
        heads = [q for q in heads if q]
    return out


class SchedulerService:
    def __init__(self, bus: Bus, settings: SchedulerSettings, *, batch: int = 25, worker_id: str | None = None) -> None:
        self.bus = bus
        self.s = settings
        self.registry = Registry(bus)
        self.zones = ZoneStore(bus)
        self.activities = ActivityStore(bus)
        self.activity_packets: dict[str, int] = defaultdict(int)  # packets published per activity going on
        self.batch = batch
        self.worker = worker_id or PROCESS_WORKER
        self.leases = LeaseSet(bus, self.worker, settings.lease_ttl_s, settings.poll_s,
                               lease_key=bus.keys.scheduler_lease, members_key=bus.keys.scheduler_workers)
        self.cams: dict[str, _CameraState] = {}
        self.cursors: dict[str, str] = {}  # cameras this process schedules (holds the lease of)
        self.packets_out = 0
        self.stale_dropped = 0
        self._stats: dict[str, int] = defaultdict(int)
        self._progress: dict[str, str] = {}  # cursor keys to write with the next read
        self._gone_notes: list[ActivityNote] = []  # notes of cameras removed from the registry

    async def run(self, stop: asyncio.Event) -> None:
        next_poll = 0.0
        log.info("scheduler %s up (lease ttl %.0fs)", self.worker, self.s.lease_ttl_s)
        try:
            while not stop.is_set():
                if time.monotonic() >= next_poll:
                    await self._reconcile()
                    await self._flush_stats()
                    next_poll = time.monotonic() + self.s.poll_s
                if not self.cursors:
                    await asyncio.sleep(min(0.2, self.s.poll_s))
                    continue
                streams = {self.bus.keys.frames(c): cur for c, cur in self.cursors.items()}
                # Undecodable entries come back as None so the cursor still moves past them. The
                # last round's cursors ride along with this read (one round trip, not two).
                progress, self._progress = self._progress, {}
                rows = await self.bus.read(streams, FrameStreamItem, count=self.batch, block_ms=250, keep_bad=True,
                                           set_first=progress)
                if rows:
                    # Motion scoring and packet assembly are CPU work: keep them off the event loop.
                    packets, ended = await asyncio.to_thread(self._process, rows)
                    await self._publish(packets)
                    await self._advance(rows, ended)
                await self._publish(self._due())
        finally:
            await self._leave()

    # -- cameras and leases ------------------------------------------------------------
    async def _reconcile(self) -> None:
        cams = await self.registry.cameras()
        workers = await self.leases.heartbeat()
        gone: list[Packet] = []
        for cam_id in list(self.cams):
            if cam_id not in cams:
                # Removed from the registry: its activity ends with it (a camera only handed to
                # another scheduler keeps its activity going there).
                gone += self.cams[cam_id].packer.flush()
                self._gone_notes += self.cams[cam_id].packer.notes or []
                self._drop(cam_id)
                await self.leases.release(cam_id)
            else:
                self.cams[cam_id].live = cams[cam_id].pace == "realtime"
        if gone or self._gone_notes:
            await self._publish(gone)
        for cam_id in await self.leases.renew(list(self.cams)):
            log.warning("camera %s: lease taken by another scheduler; stopping here", cam_id)
            self._drop(cam_id)
        share = fair_share(len(cams), workers)
        if workers > 1 and len(self.cams) > share:
            for cam_id in sorted(self.cams)[share:]:
                await self._hand_back(cam_id)
        for cam_id, cam in sorted(cams.items()):
            if len(self.cams) >= share:
                break
            if cam_id not in self.cams and await self.leases.acquire(cam_id):
                await self._adopt(cam)
        areas = await self.zones.all()
        for cam_id, st in self.cams.items():
            st.apply_areas(areas.get(cam_id))

    async def _adopt(self, cam: Camera) -> None:
        """Take a camera over where its last owner left it: its snapshot and cursor."""
        st = _CameraState(cam, self.s)
        cursor = None
        raw = await self.bus.r.get(self.bus.keys.scheduler_state(cam.id))
        snap = snapshots.decode(raw) if raw else None
        if snap is not None:
            try:
                st.restore(snap)
                cursor = snap.cursor
            except (ValueError, TypeError) as exc:  # settings changed shape: start afresh
                log.warning("camera %s: saved scheduler state unusable (%s); starting afresh", cam.id, exc)
                st = _CameraState(cam, self.s)
        if cursor is None:
            saved = await self.bus.r.get(self.bus.keys.scheduler_cursor(cam.id))
            cursor = saved.decode() if saved else "0-0"
        self.cams[cam.id], self.cursors[cam.id] = st, cursor
        self._stats["takeovers"] += 1
        log.info("camera %s: scheduled by %s from %s", cam.id, self.worker, cursor)

    def _drop(self, cam_id: str) -> None:
        self.cams.pop(cam_id, None)
        self.cursors.pop(cam_id, None)
        self._progress.pop(self.bus.keys.scheduler_cursor(cam_id), None)

    async def _hand_back(self, cam_id: str) -> None:
        """Rebalancing: save the camera's state, then let another scheduler take it."""
        await self._save(cam_id)
        self._drop(cam_id)
        await self.leases.release(cam_id)
        log.info("camera %s: handed back (rebalancing)", cam_id)

    async def _save(self, cam_id: str) -> None:
        st = self.cams.get(cam_id)
        if st is None:
            return
        cursor = self.cursors[cam_id]
        keys = self.bus.keys
        # Only while the lease is ours: a scheduler that lost it while paused must not
        # overwrite what the new owner keeps.
        await self.leases.set_if_owner(cam_id, {keys.scheduler_state(cam_id): st.snapshot(cam_id, cursor),
                                                keys.scheduler_cursor(cam_id): cursor})
        st.unsaved, st.saved_at = 0, time.monotonic()

    async def _leave(self) -> None:
        try:
            for cam_id in list(self.cams):
                await self._save(cam_id)
                await self.leases.release(cam_id)
            await self.leases.leave()
            await self._flush_stats()
        except Exception as exc:  # shutting down: Redis may already be gone
            log.debug("scheduler: final save/lease release failed: %s", exc)

    def _process(self, rows: list[tuple[str, str, FrameStreamItem]]) -> tuple[list[Packet], dict[str, StreamEnd]]:
        out: list[Packet] = []
        ended: dict[str, StreamEnd] = {}
        for _, entry_id, msg in rows:
            if msg is None:
                self._stats["bad_frames"] += 1
                continue
            st = self.cams.get(msg.camera)
            if st is None:
                continue
            st.unsaved += 1
            if isinstance(msg, StreamEnd):
                out += st.packer.flush()
                st.detector.reset()
                ended[msg.camera] = msg
                continue
            try:
                luma = np.frombuffer(msg.luma, np.uint8).reshape(msg.luma_h, msg.luma_w)
                result = st.detector.score(luma, msg.ts)
            except ValueError as exc:
                # One malformed frame costs that frame, never the camera or its neighbours.
                st.errors += 1
                self._stats["bad_frames"] += 1
                if st.errors <= 3:
                    log.warning("camera %s: frame %s unusable: %s", msg.camera, entry_id, exc)
                continue
            if result.recalibrated:
                self._stats["recalibrations"] += 1
            self._stats["frames"] += 1
            out += st.packer.push(_candidate(entry_id, msg, result))
        return out, ended

    def _due(self) -> list[Packet]:
        now = time.time()
        out: list[Packet] = []
        for st in self.cams.values():
            if st.live:  # a replay's pending packet leaves with its next frames or its end
                out += st.packer.due(now)
        return out

    def _fresh(self, p: Packet, now: float) -> bool:
        st = self.cams.get(p.camera)
        max_age = st.settings.max_age_s if st else self.s.max_age_s
        if st is None or not st.live or max_age is None:
            return True
        return now - max(f.wall for f in p.frames) <= max_age

    def _take_notes(self) -> list[ActivityNote]:
        notes, self._gone_notes = self._gone_notes, []
        for st in self.cams.values():
            if st.packer.notes:
                notes += st.packer.notes
                st.packer.notes = []
        return notes

    async def _note(self, note: ActivityNote, minid: str) -> None:
        if note.state == "end":
            note.packets = self.activity_packets.pop(note.activity, 0)
        await self.activities.publish(note, retention_s=self.s.retention_s, minid=minid)
        self._stats[f"activities_{note.state}"] += 1

    async def _publish(self, packets: list[Packet]) -> None:
        notes = self._take_notes()
        if not packets and not notes:
            return
        now = time.time()
        minid = str(int((now - self.s.retention_s) * 1000))
        # Starts first: they are what a fast alert opens from. Ends last: after every packet
        # note of their activity (the stream's order is what the alerts stage relies on).
        for n in notes:
            if n.state == "start":
                await self._note(n, minid)
        for p in interleave(packets):
            if not self._fresh(p, now):
                self.stale_dropped += 1
                self._stats["stale_dropped"] += 1
                self._stats[f"stale_dropped:{p.camera}"] += 1
                continue
            if p.activity:
                # Announced right before the packet (a new owner that rebuilds packets announces
                # them again: the alerts stage takes each packet once).
                self.activity_packets[p.activity] += 1
                await self._note(ActivityNote(
                    camera=p.camera, activity=p.activity, state="packet", onset_wall=0.0, onset_ts=0.0,
                    wall=p.frames[-1].wall, ts=p.frames[-1].ts, packet_id=p.id, packet_start=p.frames[0].wall,
                    packets=self.activity_packets[p.activity], motion=p.motion, created=now), minid)
            # Once per id: a new owner that rebuilds packets from the last snapshot skips the
            # ones its predecessor had already sent.
            entry = await self.bus.publish_once(self.bus.keys.packets, self.bus.keys.packet_ref(p.id), p,
                                                ttl_s=self.s.retention_s, minid=minid)
            if entry is None:
                self._stats["duplicates"] += 1
                continue
            self.packets_out += 1
            self._stats["packets"] += 1
            self._stats[f"packets:{p.camera}"] += 1
            self._stats[f"packets_{p.reason}"] += 1
        for n in notes:
            if n.state != "start":
                await self._note(n, minid)

    async def _flush_stats(self) -> None:
        """Counters go to Redis as increments, so several scheduler processes add up."""
        if not self._stats:
            return
        stats, self._stats = self._stats, defaultdict(int)
        pipe = self.bus.r.pipeline(transaction=False)
        for field, n in stats.items():
            pipe.hincrby(self.bus.keys.scheduler_stats, field, n)
        await pipe.execute()

    async def _advance(self, rows: list, ended: dict[str, StreamEnd]) -> None:
        """Move the cursors past this round's frames (written with the next read), and save
        a camera's snapshot when one is due."""
        by_stream = {self.bus.keys.frames(c): c for c in self.cursors}
        for stream, entry_id, _ in rows:
            cam = by_stream.get(stream)
            if cam is not None:
                self.cursors[cam] = entry_id
                self._progress[self.bus.keys.scheduler_cursor(cam)] = entry_id
        now = time.monotonic()
        for cam, st in self.cams.items():
            if st.unsaved and (cam in ended or st.unsaved >= self.s.snapshot_frames
                               or now - st.saved_at >= self.s.snapshot_s):
                await self._save(cam)
                self._progress.pop(self.bus.keys.scheduler_cursor(cam), None)
        if ended:
            await self._flush_stats()
            pipe = self.bus.r.pipeline(transaction=False)
            for cam, end in ended.items():
                pipe.set(self.bus.keys.scheduler_done(cam), str(end.frames))
            await pipe.execute()


def _candidate(entry_id: str, f: Frame, motion: MotionResult) -> Candidate:
    return Candidate(entry_id=entry_id, seq=f.seq, ts=f.ts, wall=f.wall, width=f.width, height=f.height,
                     jpeg=f.jpeg, motion=motion)
