"""A real RTSP camera for tests: GStreamer's RTSP server re-encoding an H.264 elementary
stream in a loop (paced, timestamped output). Runs under the SYSTEM python3 (it imports gi).

    python3 rtsp_server.py --port 8554 --path /cam --file cam.h264 [--fps 12.5] [--user u --password p]
"""

from __future__ import annotations

import argparse
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


def launch_line(path: str, fps: str, gop: int) -> str:
    return (
        f'( multifilesrc location="{path}" loop=true caps="video/x-h264,stream-format=byte-stream,framerate={fps}" '
        "! h264parse ! avdec_h264 ! videoconvert "
        f"! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={gop} bframes=0 threads=1 "
        "! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/cam")
    ap.add_argument("--file", required=True)
    ap.add_argument("--fps", default="25/2")
    ap.add_argument("--gop", type=int, default=12)
    args = ap.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(launch_line(args.file, args.fps, args.gop))
    factory.set_shared(True)  # one encoder for every client, like a real camera
    server.get_mount_points().add_factory(args.path, factory)
    if server.attach(None) == 0:
        print("cannot bind", file=sys.stderr)
        return 1
    loop = GLib.MainLoop()
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    print(f"READY rtsp://127.0.0.1:{args.port}{args.path}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
