"""The dashboard in real headless Chromium (Debian's), driven by Playwright."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import ROOT, need, which

pytestmark = pytest.mark.integration
TOKEN = "browser-token-" + "y" * 16
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"]


@pytest.fixture
def chromium_path() -> str:
    path = which("chromium") or which("chromium-browser")
    need(path is not None, "chromium (Debian package chromium)")
    try:
        import playwright  # noqa: F401
    except ImportError:
        need(False, "playwright (pip, test extra)")
    return path


@pytest.fixture
def vigil_web(media, free_port, tmp_path: Path):
    cfg = tmp_path / "vigil.yaml"
    cfg.write_text(
        f"cameras:\n  - id: lot\n    name: Car park\n    url: {media / 'car-detection.mp4'}\n    pace: realtime\n    loop: true\n"
        f"rules:\n  - id: moving\n    label: motion\n    severity: info\n    title: Motion in the car park\n"
        f"web:\n  port: {free_port}\n"
    )
    env = {**os.environ, "VIGIL_TOKEN": TOKEN}
    env.pop("REDIS_URL", None)
    proc = subprocess.Popen([sys.executable, "-m", "vigil.cli", "serve", "-c", str(cfg)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{free_port}"
    for _ in range(150):
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.2)
    yield base
    proc.terminate()
    proc.wait(15)


async def test_login_grid_and_live_events(chromium_path, vigil_web):
    from playwright.async_api import async_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    problems: list[str] = []
    async with async_playwright() as p:
        browser = await p.chromium.launch(executable_path=chromium_path, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 1366, "height": 768})
            page.on("pageerror", lambda e: problems.append(f"pageerror: {e}"))
            page.on("console", lambda m: problems.append(f"console: {m.text}")
                    if m.type == "error" and "401" not in m.text else None)
            await page.goto(vigil_web + "/")
            # Wrong token: stays on the login form with a message.
            await page.fill("#token-input", "not-the-token")
            await page.click("#login-button")
            await page.wait_for_selector("#login-error:not(:empty)", timeout=5000)
            await page.fill("#token-input", TOKEN)
            await page.click("#login-button")
            await page.wait_for_selector(".camera-card[data-camera-id=lot]", timeout=10000)
            await page.screenshot(path=str(ARTIFACTS / "dashboard-grid.png"))
            # The paced file camera produces events within seconds; each has its keyframe strip.
            await page.wait_for_selector("#timeline .event .strip .thumb img", timeout=40000)
            strip = await page.locator("#timeline .event").first.locator(".thumb").count()
            assert 1 <= strip <= 6
            assert "Car park" in await page.locator(".camera-card[data-camera-id=lot]").inner_text()
            await page.wait_for_selector("#alerts .alert", timeout=30000)
            await page.screenshot(path=str(ARTIFACTS / "dashboard-live.png"))
            # The token never lingers in the address bar or in storage.
            assert TOKEN not in page.url
            assert TOKEN not in await page.evaluate("JSON.stringify(localStorage) + JSON.stringify(sessionStorage)")
            # A wall display sized window renders without errors too.
            await page.set_viewport_size({"width": 1920, "height": 1080})
            await page.screenshot(path=str(ARTIFACTS / "dashboard-wall.png"))
            await page.set_viewport_size({"width": 1366, "height": 768})

            # Packet inspector: from the first event's strip.
            await page.locator("#timeline .event .strip").first.click()
            await page.wait_for_selector("#packet-view .packet-frame img", timeout=10000)
            assert await page.locator("#packet-view .packet-frame").count() >= 1
            await page.screenshot(path=str(ARTIFACTS / "packet-inspector.png"))

            # Alerts page: acknowledge the first alert.
            await page.click("#nav-alerts")
            await page.wait_for_selector("#alerts-view .alert-row .ack-button", timeout=10000)
            await page.locator("#alerts-view .alert-row .ack-button").first.click()
            await page.wait_for_selector("#alerts-view .alert-row .ack-info:not(:empty)", timeout=10000)
            await page.screenshot(path=str(ARTIFACTS / "alerts.png"))

            # Rules page: create a structured rule, then replay it over the stored packets.
            await page.click("#nav-rules")
            await page.click("#rule-new-button")
            await page.wait_for_selector("#rule-form")
            await page.select_option("#rule-form [name=kind]", "label")
            await page.fill("#rule-form [name=id]", "cars-moving")
            await page.fill("#rule-form [name=label]", "motion")
            await page.click("#rule-form button[type=submit]")
            await page.wait_for_selector("#rules-list [data-rule-id=cars-moving]", timeout=10000)
            await page.select_option("#replay-rule", "cars-moving")
            await page.click("#replay-run")
            await page.wait_for_selector("#replay-results .replay-result", timeout=60000)
            assert await page.locator("#replay-results .replay-result.match").count() >= 1
            await page.screenshot(path=str(ARTIFACTS / "rules-replay.png"))

            for view in ("webhooks", "system"):
                await page.click(f"#nav-{view}")
                await page.wait_for_selector(f"#{view}-view", timeout=10000)
                await page.wait_for_timeout(1500)
                await page.screenshot(path=str(ARTIFACTS / f"{view}.png"))
            assert await page.locator("#system-view").inner_text() != ""

            await operators_day(page, vigil_web)
        finally:
            await browser.close()
    assert not problems, problems


AUTH = {"Authorization": f"Bearer {TOKEN}"}
FRAME_HASH = """() => {
  const img = document.querySelector('#camera-live img');
  if (!img || !img.naturalWidth) return null;
  const c = document.createElement('canvas');
  c.width = 64; c.height = 36;
  const g = c.getContext('2d');
  g.drawImage(img, 0, 0, 64, 36);
  const d = g.getImageData(0, 0, 64, 36).data;
  let h = 0;
  for (let i = 0; i < d.length; i += 4) h = (h * 31 + d[i] + d[i + 1] + d[i + 2]) >>> 0;
  return h;
}"""


async def _json(page, path: str) -> dict:
    res = await page.request.get(page.url.split("#")[0].rstrip("/") + path, headers=AUTH)
    assert res.ok, (path, res.status)
    return await res.json()


async def operators_day(page, base: str) -> None:
    """What a Frigate user does first: live view, draw a zone, a rule on it fires, the timeline
    shows the new event, its clip plays; alerts live with bulk acknowledge and clips; event
    search; a test delivery; /docs; every page at desktop and phone size."""
    from tests.receiver import Receiver

    # -- live view: frames move -------------------------------------------------------------
    await page.goto(base + "/#/camera/lot")
    await page.wait_for_selector("#camera-live.has-frame", timeout=20000)
    await page.wait_for_function("() => document.querySelector('#camera-live').dataset.mode === 'live'")
    hashes = set()
    for _ in range(12):
        h = await page.evaluate(FRAME_HASH)
        if h is not None:
            hashes.add(h)
        if len(hashes) >= 3:
            break
        await page.wait_for_timeout(500)
    assert len(hashes) >= 3, "the live view does not move"
    viewers = await (await page.request.get(base + "/metrics", headers=AUTH)).text()
    assert "vigil_web_live_viewers 1.0" in viewers or "vigil_web_live_viewers 2.0" in viewers

    # -- draw a zone with the mouse, save it, a zone rule fires on it -----------------------
    await page.fill("#zone-name", "lane")
    await page.click("#zone-draw")
    await page.locator("#zone-overlay").scroll_into_view_if_needed()
    box = await page.locator("#zone-overlay").bounding_box()
    for fx, fy in ((0.02, 0.25), (0.98, 0.25), (0.98, 0.98), (0.02, 0.98)):
        await page.mouse.click(box["x"] + fx * box["width"], box["y"] + fy * box["height"])
    await page.click("#zone-close")
    await page.click("#zone-save")
    await page.wait_for_selector("#zones-panel .form-msg.ok", timeout=10000)
    zones = await _json(page, "/api/cameras/lot/zones")
    lane = zones["zones"]["lane"]
    assert len(lane) == 4 and abs(lane[0][0] - 0.02) < 0.02 and abs(lane[2][1] - 0.98) < 0.02
    await page.screenshot(path=str(ARTIFACTS / "camera.png"))
    rule = {"id": "lane-watch", "kind": "zone", "zones": ["lane"], "severity": "warning", "title": "Motion in the lane",
            "quiet_s": 5}
    res = await page.request.post(base + "/api/rules", data=rule, headers=AUTH)
    assert res.status == 201, await res.text()
    deadline = time.monotonic() + 60
    lane_alert = None
    while time.monotonic() < deadline and lane_alert is None:
        items = (await _json(page, "/api/alerts?rule=lane-watch"))["items"]
        lane_alert = items[0] if items else None
        await page.wait_for_timeout(500)
    assert lane_alert is not None, "the zone rule never fired on the drawn zone"
    ev = (await _json(page, f"/api/events/{lane_alert['event_ids'][-1]}"))["event"]
    assert "lane" in ev["motion"]["zones"]

    # -- the timeline shows an event produced just now; click through to the inspector -------
    before = {e["id"] for e in (await _json(page, "/api/events?camera=lot&limit=200"))["items"]}
    new_id = None
    deadline = time.monotonic() + 45
    while time.monotonic() < deadline and new_id is None:
        fresh = [e["id"] for e in (await _json(page, "/api/events?camera=lot&limit=20"))["items"] if e["id"] not in before]
        new_id = fresh[0] if fresh else None
        await page.wait_for_timeout(500)
    assert new_id, "no new event within 45 s"
    await page.wait_for_selector(f'#camera-timeline .tl-event[data-event-id="{new_id}"]', timeout=15000)
    await page.locator("#camera-timeline .tl-range[data-hours='0.25']").click()
    await page.wait_for_selector(f'#camera-timeline .tl-event[data-event-id="{new_id}"]', timeout=10000)
    await page.screenshot(path=str(ARTIFACTS / "camera-timeline.png"))
    await page.locator(f'#camera-timeline .tl-event[data-event-id="{new_id}"]').click()
    await page.wait_for_selector("#packet-view .packet-frame img", timeout=10000)

    # -- the clip plays --------------------------------------------------------------------
    await page.wait_for_function("() => { const v = document.querySelector('#packet-clip video');"
                                 " return v && v.readyState >= 2 && v.duration > 0; }", timeout=20000)
    await page.evaluate("() => document.querySelector('#packet-clip video').play()")
    await page.wait_for_function("() => document.querySelector('#packet-clip video').currentTime > 0.3", timeout=10000)
    await page.screenshot(path=str(ARTIFACTS / "packet-clip.png"))

    # -- alerts: live, bulk acknowledge, the alert's clip ------------------------------------
    await page.click("#nav-alerts")
    await page.wait_for_selector("#alerts-view .alert-row", timeout=10000)
    # A new alert change arrives without a reload: a new row, or (one alert per activity: the
    # car park's alert stays open while cars come and go) an open row updated in place.
    await page.wait_for_function("() => document.querySelector('#alerts-view .alert-row.fresh')", timeout=40000)
    await page.check("#alerts-select-all")
    await page.click("#alerts-ack-selected")
    await page.wait_for_function("() => !document.querySelector('#alerts-view .alert-row .select-box')", timeout=10000)
    await page.locator("#alerts-view .alert-row .clip-button").first.click()
    await page.wait_for_function("() => { const v = document.querySelector('#alerts-view .clip video');"
                                 " return v && v.readyState >= 2; }", timeout=20000)
    await page.screenshot(path=str(ARTIFACTS / "alerts-live.png"))

    # -- event search ------------------------------------------------------------------------
    await page.click("#nav-events")
    await page.wait_for_selector("#events-list .event", timeout=10000)
    await page.fill("#events-filter [name=label]", "motion")
    await page.select_option("#events-filter [name=camera]", "lot")
    await page.click("#events-search")
    await page.wait_for_function("() => { const l = document.querySelectorAll('#events-list .event');"
                                 " return l.length > 0 && [...l].every((e) => [...e.querySelectorAll('.chip')]"
                                 ".some((c) => c.textContent.startsWith('motion'))); }", timeout=10000)
    await page.fill("#events-filter [name=label]", "unicorn")
    await page.click("#events-search")
    await page.wait_for_selector("#events-list .empty", timeout=10000)
    await page.screenshot(path=str(ARTIFACTS / "events.png"))

    # -- a test delivery from the webhooks page reaches a real receiver ------------------------
    rec = Receiver("t" * 32).start()
    try:
        ep = {"id": "desk", "url": rec.url, "secret": "t" * 32, "allow_private": True}
        assert (await page.request.post(base + "/api/webhooks", data=ep, headers=AUTH)).status == 201
        await page.click("#nav-webhooks")
        await page.locator("[data-webhook-id=desk] .test-delivery-button").click()
        for _ in range(50):
            if any(h.event == "ping" and h.signed_ok for h in rec.accepted()):
                break
            await page.wait_for_timeout(200)
        assert any(h.event == "ping" and h.signed_ok for h in rec.accepted()), "test delivery not received"
        await page.wait_for_selector("[data-webhook-id=desk] .webhook-deliveries table", timeout=10000)
    finally:
        rec.stop()

    # -- /docs renders under the CSP ---------------------------------------------------------
    # (console errors, CSP violations included, are collected by the caller's listener)
    await page.goto(base + "/docs")
    await page.wait_for_selector(".swagger-ui .opblock", timeout=20000)
    await page.screenshot(path=str(ARTIFACTS / "docs.png"))

    # -- every page at desktop and phone size --------------------------------------------------
    pages = {"live": "#/", "camera": "#/camera/lot", "packet": f"#/packet/{ev['packet_id']}", "events": "#/events",
             "alerts": "#/alerts", "rules": "#/rules", "webhooks": "#/webhooks", "system": "#/system", "docs": "docs"}
    for size, (w, hgt) in (("desktop", (1366, 768)), ("mobile", (390, 844))):
        await page.set_viewport_size({"width": w, "height": hgt})
        for name, href in pages.items():
            await page.goto(base + "/" + href)
            await page.wait_for_timeout(2500 if name == "docs" else 1200)
            await page.screenshot(path=str(ARTIFACTS / f"{name}-{size}.png"), full_page=True)
            if size == "mobile":
                overflow = await page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
                assert overflow <= 1, f"{name} scrolls sideways at 390 px ({overflow} px)"
