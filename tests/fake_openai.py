"""A small OpenAI-compatible HTTP server for tests and benchmarks: the boundary fake.

It speaks the real wire protocol (POST /v1/chat/completions) on 127.0.0.1 in a background
thread, records every request, and can be told to be slow, rate-limit (429), fail (500),
hang, or answer with malformed bodies. Its answers are canned JSON in the shape Vigil asks
for (a fake model, not analysis): it says how many images it received and matches every
rule it was asked about.
"""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response

RULE_LINE = re.compile(r"^- id ([A-Za-z0-9_.-]+):", re.M)


def canned_answer(body: dict) -> str:
    user = body["messages"][-1]["content"]
    images = sum(1 for p in user if p.get("type") == "image_url")
    question = next(p["text"] for p in user if p.get("type") == "text")
    rules = [{"rule": r, "match": True, "confidence": 0.9, "evidence": f"fake model saw {images} images"}
             for r in RULE_LINE.findall(question)]
    return json.dumps({"summary": f"fake model: {images} images", "objects": [{"label": "person", "count": 1}],
                       "activities": ["walking"], "rules": rules})


@dataclass
class Seen:
    at: float
    headers: dict[str, str]
    body: dict


@dataclass
class FakeOpenAI:
    delay_s: float = 0.0
    #: per-request behaviour consumed in order: ok, 429, 500, malformed, notjson, hang, text:<content>
    script: deque[str] = field(default_factory=deque)
    answer: Callable[[dict], str] = canned_answer
    requests: list[Seen] = field(default_factory=list)
    active: int = 0
    max_active: int = 0
    port: int = 0
    _server: uvicorn.Server | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            body = await request.json()
            self.requests.append(Seen(time.time(), dict(request.headers), body))
            mode = self.script.popleft() if self.script else "ok"
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            try:
                if mode == "hang":
                    await asyncio.sleep(3600)
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                if mode == "429":
                    return JSONResponse({"error": {"message": "rate limited"}}, 429, headers={"Retry-After": "0"})
                if mode == "500":
                    return JSONResponse({"error": {"message": "boom"}}, 500)
                if mode == "400":
                    return JSONResponse({"error": {"message": "bad request"}}, 400)
                if mode == "notjson":
                    return PlainTextResponse("<html>gateway hiccup</html>", 200)
                if mode == "malformed":
                    return JSONResponse({"id": "x", "object": "chat.completion", "choices": []}, 200)
                content = mode[5:] if mode.startswith("text:") else self.answer(body)
                return JSONResponse({
                    "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
                    "model": body.get("model", ""),
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                })
            finally:
                self.active -= 1

        return app

    def start(self) -> "FakeOpenAI":
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        cfg = uvicorn.Config(self.app(), host="127.0.0.1", port=self.port, log_level="warning", access_log=False,
                             lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(cfg)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._server.run, name="fake-openai", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> "FakeOpenAI":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
