"""Fuzz every operation of the OpenAPI spec against a real `vigil web` on a real Redis: path
and query parameters and JSON bodies generated from their schemas (hypothesis),
mixed with arbitrary JSON, text and bytes (tests/support/schemas.py). No answer may be a 500 (nor a traceback in the
server's log): hostile input gets a 4xx that says what is wrong.

VIGIL_FUZZ_EXAMPLES (default 100, ~20 s) sets the examples per operation; a failure prints the
hypothesis seed to reproduce it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from bus.server import EmbeddedRedis
from tests.faults import VigilProcess, wait_healthy
from tests.support.schemas import strategy as from_schema

pytestmark = pytest.mark.integration
TOKEN = "fuzz-admin-token-" + "abcdefgh1234"
EXAMPLES = int(os.environ.get("VIGIL_FUZZ_EXAMPLES", "100"))
# WHIP relays to an ingest worker that this test does not run ("none runs it" is a 503), and
# /readyz is 503 without stages: both are answers, not failures.
MAY_BE_UNAVAILABLE = ("/api/whip/", "/readyz")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)


@pytest.fixture(scope="module")
def server(tmp_path_factory, media):
    tmp: Path = tmp_path_factory.mktemp("fuzz")
    redis = EmbeddedRedis()
    url = redis.start()
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = tmp / "vigil.yaml"
    # Many generated logins carry wrong tokens: keep the failure limit out of the fuzzer's way.
    cfg.write_text(f"web:\n  port: {port}\n  auth_failures: 10000\n"
                   f"cameras:\n  - {{id: lot, url: '{media / 'car-detection.mp4'}'}}\n"
                   "rules:\n  - {id: person, label: person}\n")
    proc = VigilProcess(["web", "-c", str(cfg)], url, tmp / "vigil.log", env={"VIGIL_TOKEN": TOKEN})
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        client = httpx.Client(base_url=base, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        spec = client.get("/openapi.json").json()
        yield client, spec, proc
        client.close()
    finally:
        proc.stop()
        redis.stop()
    log = proc.log_path.read_text()
    assert "Traceback" not in log, log[-4000:]


def operations(spec: dict) -> list[tuple[str, str, dict]]:
    out = []
    for path, item in sorted(spec["paths"].items()):
        for method, op in sorted(item.items()):
            if method in ("get", "post", "put", "patch", "delete"):
                out.append((method.upper(), path, op))
    return out


def request_strategy(method: str, path: str, op: dict, spec: dict):
    params = op.get("parameters", [])
    path_params = {p["name"]: p for p in params if p["in"] == "path"}
    query_params = [p for p in params if p["in"] == "query"]

    def value(p: dict):
        return st.one_of(from_schema(p.get("schema", {}), spec), st.text(max_size=30), st.integers().map(str))

    path_st = st.fixed_dictionaries({name: value(p) for name, p in path_params.items()})
    query_st = st.fixed_dictionaries({}, optional={p["name"]: value(p) for p in query_params})
    content = op.get("requestBody", {}).get("content", {})
    body_schema = content.get("application/json", {}).get("schema")
    bodies = [json_values.map(lambda v: ("application/json", json.dumps(v).encode())),
              st.binary(max_size=200).map(lambda b: ("application/json", b)),
              st.just(("application/json", b""))]
    if body_schema is not None:
        good = from_schema(body_schema, spec).map(lambda v: ("application/json", json.dumps(v).encode()))
        bodies = [good, good, *bodies]
    if path.startswith("/api/whip/"):
        bodies.append(st.text(max_size=300).map(lambda t: ("application/sdp", ("v=0\r\n" + t).encode())))
    body_st = st.one_of(*bodies) if method in ("POST", "PUT", "PATCH") else st.just(None)
    return st.tuples(path_st, query_st, body_st)


def _stringify(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return str(v)


def test_no_operation_answers_500(server):
    client, spec, proc = server
    ops = operations(spec)
    assert len(ops) >= 30, [f"{m} {p}" for m, p, _ in ops]
    tried: dict[str, set[int]] = {}
    seen = 0
    for method, path, op in ops:
        fuzz_operation(client, method, path, request_strategy(method, path, op, spec), tried)
        proc.alive()
        log = proc.log_path.read_text()
        assert "Traceback" not in log[seen:], f"{method} {path} raised in the server:\n{log[seen:][-3000:]}"
        seen = len(log)
    for op_name, codes in sorted(tried.items()):
        print(op_name, sorted(codes))


def fuzz_operation(client: httpx.Client, method: str, path: str, strategy, tried: dict) -> None:
    @settings(max_examples=EXAMPLES, deadline=None, database=None, print_blob=True,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def hit(req):
        path_values, query, body = req
        url = path
        for name, v in path_values.items():
            url = url.replace("{" + name + "}", quote(_stringify(v), safe="") or "x")
        headers = {}
        content = None
        if body is not None:
            headers["Content-Type"], content = body
        with client.stream(method, url, params={k: _stringify(v) for k, v in query.items()},
                           content=content, headers=headers) as res:
            # A live view (MJPEG) streams until the client leaves: its status line is the answer.
            if not res.headers.get("content-type", "").startswith("multipart/x-mixed-replace"):
                res.read()
        tried.setdefault(f"{method} {path}", set()).add(res.status_code)
        bad = res.status_code >= 500 and not (res.status_code in (503, 504) and path.startswith(MAY_BE_UNAVAILABLE))
        text = res.text[:300] if res.is_stream_consumed else "(a stream)"
        assert not bad, f"{method} {url} {query} {content[:300] if content else b''!r} -> {res.status_code} {text}"

    hit()
