"""Zones and masks drawn through the API reach a running scheduler without a restart; the
YAML seeds them but never overwrites what was drawn."""

from __future__ import annotations

import httpx
import numpy as np
import pytest

from bus.messages import Camera
from bus.registry import Registry
from bus.zones import ZoneStore
from scheduler.service import SchedulerService
from scheduler.settings import SchedulerSettings
from vigil.config import parse_config
from vigil.runtime import seed_registry
from web.auth import hash_token
from web.settings import TokenEntry, WebSettings

ADMIN, VIEWER = "zones-admin-token-123456", "zones-viewer-token-12345"
LANE = [[0.0, 0.5], [1.0, 0.5], [1.0, 1.0], [0.0, 1.0]]


@pytest.fixture
async def client(bus, monkeypatch):
    from web.app import create_app

    monkeypatch.delenv("VIGIL_TOKEN", raising=False)
    app = create_app(bus, WebSettings(tokens=[TokenEntry(name="ops", role="admin", sha256=hash_token(ADMIN)),
                                              TokenEntry(name="wall", role="viewer", sha256=hash_token(VIEWER))]))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://vigil") as c:
            yield c


def h(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


async def test_zones_api_and_the_running_scheduler_follows(bus, client):
    await Registry(bus).put_camera(Camera(id="lot", url="x.mp4"))
    sched = SchedulerService(bus, SchedulerSettings())
    await sched._reconcile()
    det = sched.cams["lot"].detector
    assert det.s.zones == {}
    det.score(np.zeros((90, 160), np.uint8), 0.0)  # the detector knows its plane size now

    assert (await client.get("/api/cameras/lot/zones", headers=h(VIEWER))).json()["zones"] == {}
    body = {"zones": {"lane": LANE}, "masks": [[[0, 0], [1, 0], [1, 0.1]]]}
    assert (await client.put("/api/cameras/lot/zones", json=body, headers=h(VIEWER))).status_code == 403
    assert (await client.put("/api/cameras/nope/zones", json=body, headers=h(ADMIN))).status_code == 404
    bad = await client.put("/api/cameras/lot/zones", json={"zones": {"lane": [[0, 0], [2, 0], [1, 1]]}}, headers=h(ADMIN))
    assert bad.status_code == 422 and "zones" in bad.text and "<= 1.0" in bad.text
    assert (await client.put("/api/cameras/lot/zones", json={"zonez": {}}, headers=h(ADMIN))).status_code == 422
    ok = await client.put("/api/cameras/lot/zones", json=body, headers=h(ADMIN))
    assert ok.status_code == 200 and ok.json()["by"] == "ops" and ok.json()["source"] == "api"

    await sched._reconcile()  # what the running scheduler does every second
    assert sched.cams["lot"].detector is det, "the detector (and its background) is kept"
    assert det.s.zones == {"lane": LANE}
    assert det._zones["lane"][80, 10] == 1 and det._zones["lane"][10, 10] == 0
    assert det._keep is not None and det._keep[0, 150] == 0

    # Motion in the lower half now names the zone.
    frame = np.zeros((90, 160), np.uint8)
    det.score(frame, 0.2)
    moving = frame.copy()
    moving[60:80, 40:80] = 200
    hits = [det.score(moving, 0.4 + i * 0.2).zones for i in range(2)]
    assert "lane" in hits[0] + hits[1]

    assert (await client.delete("/api/cameras/lot/zones", headers=h(ADMIN))).status_code == 204
    await sched._reconcile()
    assert det.s.zones == {}


async def test_yaml_seeds_zones_but_keeps_what_was_drawn(bus):
    cfg = parse_config({"cameras": [{"id": "gate", "url": "x.mp4"}],
                        "scheduler": {"cameras": {"gate": {"zones": {"drive": LANE}}}}})
    await seed_registry(bus, cfg)
    store = ZoneStore(bus)
    seeded = await store.get("gate")
    assert seeded is not None and seeded.source == "config" and "drive" in seeded.zones
    await store.put("gate", {"walk": LANE}, [], by="ops")
    await seed_registry(bus, cfg)  # a restart
    assert set((await store.get("gate")).zones) == {"walk"}
