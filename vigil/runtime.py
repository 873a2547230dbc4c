"""Process wiring: which stages run in this process, all against one bus."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from typing import Any

import msgspec

from bus.connection import Bus
from bus.registry import Registry
from bus.zones import ZoneStore
from vigil.config import VigilConfig

log = logging.getLogger("vigil")
STAGES = ("ingest", "scheduler", "analyzer", "alerts", "recorder", "web")
# Shutdown order: the web first (no new clients while the rest winds down), then the
# pipeline from its source on, so each stage finds the one it feeds still running; the
# embedded Redis stops after all of them (vigil/cli.py, bus/connection.py).
STOP_ORDER = ("web", "ingest", "scheduler", "analyzer", "alerts", "recorder")
STAGE_STOP_S = 10.0  # a stage that has not stopped by then is cancelled
# A stage restarted after a failure counts as healthy (/readyz) only once it has run this
# long again: a stage crash-looping with backoff is not ready, even between its failures.
HEALTHY_AFTER_S = 10.0


async def seed_registry(bus: Bus, cfg: VigilConfig) -> None:
    """The config seeds the registries; later API edits live in Redis."""
    reg = Registry(bus)
    for cam in cfg.cameras:
        await reg.put_camera(cam)
    for rule in cfg.rules:
        await reg.put_rule(rule)
    # Zones and masks from the YAML seed the store the dashboard draws into.
    zones = ZoneStore(bus)
    for cam_id, o in cfg.scheduler.cameras.items():
        if o.zones is not None or o.mask is not None:
            eff = cfg.scheduler.for_camera(cam_id).motion
            await zones.seed(cam_id, eff.zones, eff.mask)


def alerts_settings(cfg: VigilConfig):
    """The alerts stage's settings; links in webhooks and MQTT point at the web API's public
    URL, by default where this config's web server listens."""
    if cfg.alerts.public_url:
        return cfg.alerts
    host = cfg.web.host
    if host in ("0.0.0.0", "::", ""):
        host = socket.getfqdn()  # listening everywhere: receivers know the machine by its name
    elif ":" in host:
        host = f"[{host}]"
    return cfg.alerts.model_copy(update={"public_url": f"http://{host}:{cfg.web.port}"})


@dataclass
class Pipeline:
    bus: Bus
    cfg: VigilConfig
    stages: tuple[str, ...]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    services: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, asyncio.Task] = field(default_factory=dict)
    restarts: dict[str, int] = field(default_factory=dict)
    # One stop event per stage, so shutdown can stop them one after the other (STOP_ORDER).
    stage_stops: dict[str, asyncio.Event] = field(default_factory=dict)
    started: dict[str, float] = field(default_factory=dict)  # monotonic start of the current run
    failed: dict[str, float] = field(default_factory=dict)  # monotonic time of the last failure

    def healthy(self, stage: str) -> bool:
        task = self.tasks.get(stage)
        if task is None or task.done():
            return False
        if stage not in self.failed:
            return True
        start = self.started.get(stage, 0.0)
        return start > self.failed[stage] and time.monotonic() - start >= HEALTHY_AFTER_S

    async def start(self) -> None:
        _set_opencv_threads(self.cfg.ingest.opencv_threads, self.stages)
        for stage in self.stages:
            svc = self._make(stage)
            self.services[stage] = svc
            self.stage_stops[stage] = asyncio.Event()
            self.tasks[stage] = asyncio.create_task(self._guard(stage, svc), name=f"stage:{stage}")
        self._beat = asyncio.create_task(self._heartbeat(), name="heartbeat")

    async def _heartbeat(self, every_s: float = 2.0) -> None:
        """Each stage in this process says it is alive (read by /readyz and the system page)."""
        worker = f"{socket.gethostname()}-{os.getpid()}"
        started = time.time()
        while not self.stop.is_set():
            try:
                pipe = self.bus.r.pipeline(transaction=False)
                for stage, task in self.tasks.items():
                    if not task.done():
                        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": started,
                                "healthy": self.healthy(stage), "restarts": self.restarts.get(stage, 0)}
                        pipe.set(self.bus.keys.stage_heartbeat(stage, worker), msgspec.json.encode(info), ex=int(every_s * 5))
                await pipe.execute()
            except Exception as exc:  # Redis away for a moment: try again next beat
                log.warning("heartbeat failed: %s", exc)
            try:
                await asyncio.wait_for(self.stop.wait(), every_s)
            except asyncio.TimeoutError:
                pass

    def _make(self, stage: str) -> Any:
        # Stages are imported when a process runs them: `vigil ingest` or `vigil packets`
        # start without loading the analyzer, alerts, recorder and web code (start-up is CPU too).
        c = self.cfg
        if stage == "ingest":
            from ingest.service import IngestService

            return IngestService(self.bus, c.ingest)
        if stage == "scheduler":
            from scheduler.service import SchedulerService

            return SchedulerService(self.bus, c.scheduler)
        if stage == "analyzer":
            from analyzer.backends import make_backend
            from analyzer.service import AnalyzerService

            return AnalyzerService(self.bus, c.analyzer, make_backend(c.analyzer))
        if stage == "alerts":
            from alerts.service import AlertsService

            return AlertsService(self.bus, alerts_settings(c))
        if stage == "recorder":
            from recorder.service import RecorderService

            return RecorderService(self.bus, c.recorder)
        if stage == "web":
            return WebStage(self.bus, c)
        raise ValueError(f"unknown stage {stage!r}")

    async def _guard(self, stage: str, svc: Any) -> None:
        """Supervise a stage: when it fails (Redis restarting, a bug), log it and run a fresh
        instance with capped backoff, so one failure never ends the process. Durable state
        (cursors, pending packets, open alerts) lives in Redis, not in the instance."""
        delay = 0.5
        first = True
        while not self.stop.is_set():
            if not first:
                svc = self.services[stage] = self._make(stage)
            first = False
            started = self.started[stage] = time.monotonic()
            try:
                await svc.run(self.stage_stops[stage])
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.failed[stage] = time.monotonic()
                if time.monotonic() - started > 60:
                    delay = 0.5  # it had been healthy: start the backoff over
                self.restarts[stage] = self.restarts.get(stage, 0) + 1
                log.error("stage %s failed (%s: %s); restarting in %.1fs", stage, type(exc).__name__, exc, delay,
                          exc_info=not _is_connection_error(exc))
                try:
                    await asyncio.wait_for(self.stop.wait(), delay)
                except asyncio.TimeoutError:
                    pass
                delay = min(delay * 2, 15.0)

    async def wait(self) -> None:
        await self.stop.wait()
        await self.shutdown()

    async def shutdown(self) -> None:
        """Stop the stages one by one in STOP_ORDER (each gets STAGE_STOP_S), then the
        heartbeat, whose keys are removed so /readyz stops counting this process at once."""
        self.stop.set()
        order = [s for s in STOP_ORDER if s in self.tasks] + [s for s in self.tasks if s not in STOP_ORDER]
        for stage in order:
            task = self.tasks[stage]
            self.stage_stops[stage].set()
            if task.done():
                continue
            _, pending = await asyncio.wait({task}, timeout=STAGE_STOP_S)
            if pending:
                log.warning("stage %s did not stop within %.0fs; cancelled", stage, STAGE_STOP_S)
                task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            log.debug("stage %s stopped", stage)
        beat = getattr(self, "_beat", None)
        if beat:
            await asyncio.gather(beat, return_exceptions=True)
            worker = f"{socket.gethostname()}-{os.getpid()}"
            try:
                await self.bus.r.delete(*(self.bus.keys.stage_heartbeat(s, worker) for s in self.tasks))
            except Exception as exc:  # Redis already gone (an external one restarting): the TTL cleans up
                log.debug("heartbeat keys not removed: %s", exc)


def _set_opencv_threads(configured: int, stages: tuple[str, ...]) -> None:
    """OpenCV's thread pool is process-wide. Ingest's and the scheduler's OpenCV calls are
    small (a few hundred microseconds) and the pool's wake-ups cost more CPU than they save, so
    a process without the analyzer (whose detectors do use the pool) runs it on one thread
    unless `ingest.opencv_threads` says otherwise."""
    n = configured or (1 if "analyzer" not in stages and {"ingest", "scheduler"} & set(stages) else 0)
    if n:
        import cv2

        cv2.setNumThreads(n)


def _is_connection_error(exc: BaseException) -> bool:
    from redis.exceptions import ConnectionError as RedisConnectionError, TimeoutError as RedisTimeoutError

    return isinstance(exc, (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError))


class WebStage:
    def __init__(self, bus: Bus, cfg: VigilConfig) -> None:
        import uvicorn

        from web.app import create_app

        self.app = create_app(bus, cfg.web, sources=cfg.ingest.policy())
        # X-Forwarded-For/-Proto only from configured proxies: believed from anyone, they would
        # let a client pick its own address (and dodge the brute-force limit).
        proxies = cfg.web.trusted_proxies
        self.server = uvicorn.Server(
            uvicorn.Config(self.app, host=cfg.web.host, port=cfg.web.port, log_level="warning", access_log=False,
                           lifespan="on", ws_ping_interval=20, timeout_graceful_shutdown=5,
                           proxy_headers=bool(proxies), forwarded_allow_ips=proxies or None)
        )
        self.server.install_signal_handlers = lambda: None  # type: ignore[method-assign]

    async def run(self, stop: asyncio.Event) -> None:
        serve = asyncio.create_task(self.server.serve())
        await asyncio.wait([serve, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
        await self.app.state.live.close()  # endless live-view responses would hold the shutdown
        self.server.should_exit = True
        await serve
        if self.server.started is False and not stop.is_set():
            raise RuntimeError(f"web server could not start on {self.server.config.host}:{self.server.config.port}")


def install_signal_handlers(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
