"""Auth findings of the probe (5, 6, 7, and the Secure cookie), against the real web stage
(uvicorn as `vigil serve` configures it) on a real Redis:

- sessions are bound to the token that made them and revocable (logout, admins);
- wrong tokens are limited per client address (login, Bearer, websocket), and a client
  cannot pick its address with X-Forwarded-For unless a trusted proxy is configured;
- a weak VIGIL_TOKEN is refused;
- state-changing requests from a foreign origin or with non-JSON bodies are refused, and the
  websocket honours the cookie only from Vigil's own origin;
- the cookie is Secure whenever the request came over TLS (here: as a trusted proxy says).
"""

from __future__ import annotations

import asyncio
import json
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
import websockets

from tests.conftest import run_cli
from vigil.config import VigilConfig
from web.auth import hash_token
from web.settings import TokenEntry

ADMIN = "auth-admin-token-" + "abcdefgh1234"
OTHER = "auth-rotated-token-" + "ijklmnop5678"
VIEWER = "auth-viewer-token-" + "qrstuvwx9012"


@asynccontextmanager
async def web_stage(bus, port: int, monkeypatch, *, env_token: str = ADMIN, **web):
    """The web stage exactly as `vigil serve` runs it (vigil.runtime.WebStage)."""
    from vigil.runtime import WebStage

    monkeypatch.setenv("VIGIL_TOKEN", env_token)
    cfg = VigilConfig.model_validate({"web": {"port": port, "tokens": [
        {"name": "wall", "role": "viewer", "sha256": hash_token(VIEWER)}], **web}})
    stage = WebStage(bus, cfg)
    stop = asyncio.Event()
    task = asyncio.create_task(stage.run(stop))
    while not stage.server.started:
        assert not task.done(), task.exception()
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        stop.set()
        await task


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def login(c: httpx.AsyncClient, token: str) -> str:
    res = await c.post("/api/login", json={"token": token})
    assert res.status_code == 200, res.text
    return c.cookies["vigil_session"]


RULE = {"id": "r1", "label": "person"}


async def test_a_session_ends_when_its_token_changes(bus, free_port, monkeypatch):
    async with web_stage(bus, free_port, monkeypatch, env_token=ADMIN) as base:
        async with httpx.AsyncClient(base_url=base) as c:
            cookie = await login(c, ADMIN)
            assert (await c.get("/api/me")).json()["role"] == "admin"
    # The operator rotates VIGIL_TOKEN and restarts: same token name ("env"), new secret.
    async with web_stage(bus, free_port, monkeypatch, env_token=OTHER) as base:
        async with httpx.AsyncClient(base_url=base, cookies={"vigil_session": cookie}) as c:
            assert (await c.get("/api/me")).status_code == 401
            res = await c.post("/api/rules", json=RULE, headers={"Origin": base})
            assert res.status_code == 401, res.text
            assert await bus.r.hget(bus.keys.rules, "r1") is None


async def test_logout_and_admins_revoke_sessions(bus, free_port, monkeypatch):
    async with web_stage(bus, free_port, monkeypatch) as base:
        async with httpx.AsyncClient(base_url=base) as a, httpx.AsyncClient(base_url=base) as b:
            kept = await login(a, ADMIN)
            assert (await a.post("/api/logout", headers={"Origin": base})).status_code == 200
            # The cookie a thief copied before the logout is worthless now.
            async with httpx.AsyncClient(base_url=base, cookies={"vigil_session": kept}) as thief:
                assert (await thief.get("/api/me")).status_code == 401
            other = await login(b, VIEWER)
            listing = (await a.get("/api/sessions", headers=bearer(ADMIN))).json()["items"]
            mine = [s for s in listing if s["name"] == "wall"]
            assert len(mine) == 1 and "vigil_session" not in json.dumps(listing) and other not in json.dumps(listing)
            # A websocket on that session is closed when an admin revokes it.
            ws_url = base.replace("http", "ws") + "/ws"
            async with websockets.connect(ws_url, origin=base, additional_headers={"Cookie": f"vigil_session={other}"}) as ws:
                assert json.loads(await ws.recv())["type"] == "hello"
                res = await a.delete(f"/api/sessions/{mine[0]['id']}", headers=bearer(ADMIN))
                assert res.status_code == 204
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    while True:
                        await asyncio.wait_for(ws.recv(), 10)
                assert closed.value.rcvd.code == 4401
            assert (await b.get("/api/me")).status_code == 401
            assert (await a.delete("/api/sessions", headers=bearer(ADMIN))).json()["revoked"] == 0


async def test_wrong_tokens_are_limited_per_address_and_forwarded_for_is_not_trusted(bus, free_port, monkeypatch):
    async with web_stage(bus, free_port, monkeypatch) as base:
        async with httpx.AsyncClient(base_url=base) as c:
            cookie = await login(c, ADMIN)  # a user already logged in from this address
        async with httpx.AsyncClient(base_url=base) as c:  # the attacker, same address, no cookie
            codes = []
            for i in range(12):
                # It varies X-Forwarded-For: without a trusted proxy that means nothing.
                res = await c.get("/api/events", headers={**bearer(f"guess-{i}"), "X-Forwarded-For": f"203.0.113.{i}"})
                codes.append(res.status_code)
            assert codes[:10] == [401] * 10 and codes[10:] == [429, 429], codes
            limited = await c.get("/api/events", headers=bearer(ADMIN))
            assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0  # even the right one
            assert (await c.post("/api/login", json={"token": ADMIN})).status_code == 429
            # The logged-in user on the same address is not locked out: the cookie still works.
            async with httpx.AsyncClient(base_url=base, cookies={"vigil_session": cookie}) as user:
                assert (await user.get("/api/me")).status_code == 200
            ws_url = base.replace("http", "ws") + "/ws"
            async with websockets.connect(ws_url) as ws:  # the websocket token path is limited too
                await ws.send(json.dumps({"token": "guess-ws"}))
                with pytest.raises(websockets.ConnectionClosed) as closed:
                    await asyncio.wait_for(ws.recv(), 10)
                assert closed.value.rcvd.code == 4429


async def test_a_trusted_proxy_names_the_client_and_the_scheme(bus, free_port, monkeypatch):
    async with web_stage(bus, free_port, monkeypatch, trusted_proxies=["127.0.0.1"]) as base:
        async with httpx.AsyncClient(base_url=base) as c:
            for i in range(10):
                await c.get("/api/events", headers={**bearer("guess"), "X-Forwarded-For": "198.51.100.7"})
            assert (await c.get("/api/events", headers={**bearer("guess"), "X-Forwarded-For": "198.51.100.7"})
                    ).status_code == 429
            # Another client behind the same proxy is not locked out.
            ok = await c.get("/api/events", headers={**bearer(ADMIN), "X-Forwarded-For": "198.51.100.8"})
            assert ok.status_code == 200
            # The proxy terminated TLS: the session cookie is Secure.
            res = await c.post("/api/login", json={"token": ADMIN},
                               headers={"X-Forwarded-For": "198.51.100.9", "X-Forwarded-Proto": "https",
                                        "Host": "vigil.example.com", "Origin": "https://vigil.example.com"})
            assert res.status_code == 200, res.text
            assert "secure" in res.headers["set-cookie"].lower()
    async with web_stage(bus, free_port, monkeypatch) as base:
        async with httpx.AsyncClient(base_url=base) as c:
            # No trusted proxy: a client claiming TLS is not believed (and plain HTTP it was).
            res = await c.post("/api/login", json={"token": ADMIN}, headers={"X-Forwarded-Proto": "https"})
            assert res.status_code == 200 and "secure" not in res.headers["set-cookie"].lower()


async def test_cross_site_writes_are_refused(bus, free_port, monkeypatch):
    async with web_stage(bus, free_port, monkeypatch) as base:
        async with httpx.AsyncClient(base_url=base) as c:
            await login(c, ADMIN)
            body = json.dumps({"id": "evil", "label": "person"})
            cam = json.dumps({"id": "evil", "url": "testsrc://"})
            # The probe's requests: cookie only, a foreign page's Origin, text/plain or a form.
            for path, data in (("/api/rules", body), ("/api/cameras", cam)):
                for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
                    res = await c.post(path, content=data, headers={"Content-Type": ctype, "Origin": "https://evil.example"})
                    assert res.status_code == 403, (path, ctype, res.status_code)
                    res = await c.post(path, content=data, headers={"Content-Type": ctype, "Sec-Fetch-Site": "cross-site"})
                    assert res.status_code == 403, (path, ctype, res.status_code)
                    # Even from our own origin a non-JSON body is refused (forms need no preflight).
                    res = await c.post(path, content=data, headers={"Content-Type": ctype, "Origin": base})
                    assert res.status_code == 415, (path, ctype, res.status_code)
                assert (await c.delete("/api/rules/x", headers={"Origin": "null"})).status_code == 403
            assert await bus.r.hget(bus.keys.rules, "evil") is None
            assert await bus.r.hget(bus.keys.cameras, "evil") is None
            # The dashboard's own requests pass.
            ok = await c.post("/api/rules", content=body, headers={"Content-Type": "application/json", "Origin": base})
            assert ok.status_code == 201, ok.text
        async with httpx.AsyncClient(base_url=base) as script:  # so do scripts: no Origin, a Bearer token
            ok = await script.post("/api/cameras", content=cam, headers={"Content-Type": "application/json", **bearer(ADMIN)})
            assert ok.status_code == 201, ok.text
        # The websocket: the cookie counts only from our own origin.
        async with httpx.AsyncClient(base_url=base) as c:
            cookie = await login(c, VIEWER)
        ws_url = base.replace("http", "ws") + "/ws"
        hdr = {"Cookie": f"vigil_session={cookie}"}
        async with websockets.connect(ws_url, origin="https://evil.example", additional_headers=hdr) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(ws.recv(), 10)  # treated as unauthenticated: no token sent
            assert closed.value.rcvd.code == 4401
        async with websockets.connect(ws_url, origin=base, additional_headers=hdr) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 5))["type"] == "hello"


async def test_allowed_origins_admit_a_proxy_that_rewrites_host(bus, free_port, monkeypatch):
    async with web_stage(bus, free_port, monkeypatch, allowed_origins=["https://vigil.example.com"]) as base:
        async with httpx.AsyncClient(base_url=base) as c:
            await login(c, ADMIN)
            res = await c.post("/api/rules", json=RULE, headers={"Origin": "https://vigil.example.com"})
            assert res.status_code == 201, res.text


@pytest.mark.parametrize("token", ["tiny-pw", "aaaaaaaaaaaaaaaaaaaaaaaa", "1212121212121212"])
def test_a_weak_vigil_token_is_refused(tmp_path: Path, token: str):
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text("web:\n  port: 0\n")
    for cmd in (["serve", "-c", str(cfg)], ["check-config", "-c", str(cfg)]):
        res = run_cli(cmd, timeout=60, env={"VIGIL_TOKEN": token})
        assert res.returncode == 2, (cmd, res.stdout, res.stderr)
        assert "VIGIL_TOKEN" in res.stderr and token not in res.stderr


def test_token_entries_validate():
    TokenEntry(name="x", sha256=hash_token(ADMIN))
