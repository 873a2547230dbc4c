"""Any OpenAI-compatible server (vLLM, SGLang, llama.cpp server, Ollama /v1) over httpx.

Frames go as `image_url` data URLs at the packet's size, which is the model processor's own
(about 448x448 of area, bus/frame_size.py: a server running MiniCPM-V 4.5 leaves it as is);
fast mode is asked for with `chat_template_kwargs: {enable_thinking: false}` (servers that
do not know it ignore it).
These servers see each frame as its own image: no temporal packing, 64 visual tokens per
frame, 384 per six-frame packet -- six times the in-process minicpm path.

Timeouts, bounded retries with exponential backoff and jitter (honouring Retry-After),
a concurrency cap per server and a circuit breaker keep a sick server from taking the
worker down or being hammered. The API key is read from the environment variable named in
the settings and is never logged.
"""

from __future__ import annotations

import asyncio
import base64
import io
import logging
import os
import random

import httpx
from PIL import Image

from analyzer.backends.base import BackendError, BackendUnavailable
from analyzer.backends.circuit import CircuitBreaker
from analyzer.backends.model import ModelBackend, Reply
from analyzer.prompts import Prompt
from analyzer.settings import OpenAISettings, ThinkingSettings
from bus.connection import redact_url
from bus.frame_size import model_frame_size
from bus.messages import Packet

log = logging.getLogger("vigil.analyzer.openai")
RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504}


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after = retry_after


def _fit(jpeg: bytes, width: int, height: int, side: int) -> bytes:
    """A frame at the model size as is; a larger one (e.g. from a scheduler with another
    `ingest.model_size`) shrunk to it."""
    size = model_frame_size(width, height, side)
    if size == (width, height):
        return jpeg
    with Image.open(io.BytesIO(jpeg)) as im:
        im = im.convert("RGB").resize(size, Image.Resampling.BICUBIC)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=85)
        return buf.getvalue()


def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


def _content(data: object) -> str:
    try:
        content = data["choices"][0]["message"]["content"]  # type: ignore[index]
    except (KeyError, IndexError, TypeError):
        raise _Retryable("malformed response: no choices[0].message.content") from None
    if isinstance(content, list):  # content parts
        content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
    if not isinstance(content, str):
        raise _Retryable("malformed response: content is not text")
    return content


class OpenAIBackend(ModelBackend):
    name = "openai"
    tokens_note = "OpenAI-compatible servers (vLLM) do not pack frames: 64 visual tokens per frame, 384 per 6-frame packet"

    def __init__(self, settings: OpenAISettings, thinking: ThinkingSettings | None = None) -> None:
        super().__init__(thinking or ThinkingSettings())
        self.s = settings
        self.model = settings.model
        self.concurrency = settings.concurrency
        self.max_batch = 1  # one conversation per request; the server batches concurrent requests
        self._sem = asyncio.Semaphore(settings.concurrency)
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s)
        self._client: httpx.AsyncClient | None = None
        self.retries = 0

    async def start(self) -> None:
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.s.api_key_env, "")
        if key:
            headers["Authorization"] = f"Bearer {key}"
        timeout = httpx.Timeout(self.s.timeout_s, connect=self.s.connect_timeout_s)
        limits = httpx.Limits(max_connections=self.s.concurrency, max_keepalive_connections=self.s.concurrency)
        self._client = httpx.AsyncClient(base_url=self.s.base_url.rstrip("/") + "/", headers=headers,
                                         timeout=timeout, limits=limits)
        log.info("openai backend: %s model %s (key from $%s: %s)", redact_url(self.s.base_url), self.s.model,
                 self.s.api_key_env, "set" if key else "unset")

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def available(self) -> bool:
        return self.breaker.ready()

    def visual_tokens(self, packet: Packet) -> int:
        return self.s.tokens_per_frame * len(packet.frames)

    def body(self, prompt: Prompt, thinking: bool) -> dict:
        p = prompt.packet
        images = [
            {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(
                _fit(f.jpeg, p.width, p.height, self.s.model_size)).decode("ascii")}}
            for f in p.frames
        ]
        return {
            "model": self.s.model,
            "messages": [
                {"role": "system", "content": prompt.system},
                {"role": "user", "content": [*images, {"type": "text", "text": prompt.question}]},
            ],
            "max_tokens": self.thinking.max_new_tokens if thinking else self.s.max_tokens,
            "temperature": 0.0,
            "chat_template_kwargs": {"enable_thinking": thinking},
        }

    async def generate(self, prompts: list[Prompt], thinking: bool) -> list[Reply]:
        if self._client is None:
            await self.start()
        # What the server's model received cannot be seen from here: the nominal count stands.
        return [Reply(t) for t in await asyncio.gather(*(self._ask(p, thinking) for p in prompts))]

    async def _ask(self, prompt: Prompt, thinking: bool) -> str:
        # Frames larger than allowed are re-encoded: CPU work, so off the loop.
        p = prompt.packet
        body = (await asyncio.to_thread(self.body, prompt, thinking)
                if model_frame_size(p.width, p.height, self.s.model_size) != (p.width, p.height)
                else self.body(prompt, thinking))
        last = ""
        for attempt in range(self.s.max_retries + 1):
            if not self.breaker.allow():
                raise BackendUnavailable(f"circuit open for {redact_url(self.s.base_url)} after: {last or 'failures'}")
            try:
                async with self._sem:
                    text = await self._post(body)
                self.breaker.success()
                return text
            except BackendError:
                self.breaker.success()  # the server answered: it is up, our request was wrong
                raise
            except _Retryable as exc:
                self.breaker.failure()
                last = str(exc)
                if attempt == self.s.max_retries:
                    break
                self.retries += 1
                delay = min(self.s.max_backoff_s, exc.retry_after if exc.retry_after is not None
                            else self.s.backoff_s * 2 ** attempt * (0.5 + random.random()))
                log.warning("openai request failed (%s); retry %d/%d in %.2fs", last, attempt + 1,
                            self.s.max_retries, delay)
                await asyncio.sleep(delay)
        raise BackendError(f"openai server gave up after {self.s.max_retries + 1} tries: {last}")

    async def _post(self, body: dict) -> str:
        assert self._client is not None
        try:
            resp = await self._client.post("chat/completions", json=body)
        except httpx.TimeoutException as exc:
            raise _Retryable(f"timeout ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise _Retryable(f"connection failed ({type(exc).__name__})") from None
        if resp.status_code in RETRYABLE:
            raise _Retryable(f"HTTP {resp.status_code}: {resp.text[:200]}", _retry_after(resp))
        if resp.status_code >= 400:
            # Our request is wrong (bad model name, too many images): retrying will not help.
            raise BackendError(f"HTTP {resp.status_code}: {resp.text[:300]}")
        try:
            data = resp.json()
        except ValueError:
            raise _Retryable(f"malformed response: not JSON ({resp.text[:80]!r})") from None
        return _content(data)
