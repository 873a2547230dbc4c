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
        f"cameras:\n  - id: lot\n    name: Car park\n    url: {media / 'car-detection.mp4'}\n    pace: realtime\n"
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
        finally:
            await browser.close()
    assert not problems, problems
