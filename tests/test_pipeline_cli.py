"""`vigil packets` and `vigil analyze` over real footage, through a real embedded Redis."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from scheduler.temporal import temporal_ids
from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.integration
SCHEMAS = ROOT / "docs" / "schema"


@pytest.fixture(scope="module")
def car_packets(media) -> list[dict]:
    res = run_cli(["packets", str(media / "car-detection.mp4"), "--json"])
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines()]


def test_packets_follow_the_contract(car_packets):
    assert len(car_packets) >= 3
    ids = set()
    for p in car_packets:
        assert set(p) >= {"camera", "packet_id", "frame_ts", "temporal_ids", "width", "height", "motion", "reason"}
        assert p["camera"] == "car-detection"
        assert 1 <= len(p["frame_ts"]) <= 6
        # 768x432 at the model processor's own size (bus/frame_size.py): 448x448 of area, sides x14
        assert (p["width"], p["height"]) == (602, 336)
        assert p["temporal_ids"] == temporal_ids(p["frame_ts"], packing=len(p["frame_ts"]))
        assert sum(len(g) for g in p["temporal_ids"]) == len(p["frame_ts"])
        assert all(0 <= t <= 30.3 for t in p["frame_ts"])  # seconds from the file's start
        assert p["frame_ts"] == sorted(p["frame_ts"])
        assert p["reason"] in {"onset", "motion", "heartbeat", "flush"}
        ids.add(p["packet_id"])
    assert len(ids) == len(car_packets)
    starts = [p["frame_ts"][0] for p in car_packets]
    assert starts == sorted(starts)  # one camera's packets never reorder
    assert car_packets[0]["reason"] == "onset"


def test_idle_opening_produces_no_packets(car_packets):
    # The clip opens on an empty car park; the first car moves in around 4 s.
    assert min(p["frame_ts"][0] for p in car_packets) > 3.0


def test_packets_duration_limit(media):
    res = run_cli(["packets", str(media / "car-detection.mp4"), "--json", "--duration", "8"])
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    assert lines and max(max(p["frame_ts"]) for p in lines) <= 8.0


def test_packets_missing_file_is_a_clear_error(tmp_path: Path):
    res = run_cli(["packets", str(tmp_path / "nope.mp4")])
    assert res.returncode == 2 and "no such file" in res.stderr


def test_packets_garbage_file_is_a_clear_error(tmp_path: Path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00\x01garbage" * 5000)
    res = run_cli(["packets", str(junk)])
    assert res.returncode == 2 and "junk.mp4" in res.stderr
    assert "Traceback" not in res.stderr


def test_analyze_emits_public_json(media):
    res = run_cli(["analyze", str(media / "car-detection.mp4"), "--json"])
    assert res.returncode == 0, res.stderr
    lines = [json.loads(line) for line in res.stdout.splitlines()]
    events = [x for x in lines if x["type"] == "event"]
    alerts = [x for x in lines if x["type"] == "alert"]
    event_schema = json.loads((SCHEMAS / "event.schema.json").read_text())
    alert_schema = json.loads((SCHEMAS / "alert.schema.json").read_text())
    assert len(events) >= 3
    for e in events:
        jsonschema.validate(e, event_schema)
        assert e["backend"] == "cpu" and e["camera"] == "car-detection"
        assert e["id"] == f"evt-{e['packet_id']}"
        assert e["start"] <= e["end"]
        ids = [f["temporal_id"] for f in e["frames"]]
        assert ids == temporal_ids([f["ts"] for f in e["frames"]], packing=len(ids))[0]
    assert len({e["id"] for e in events}) == len(events)  # exactly one event per packet
    for a in alerts:
        jsonschema.validate(a, alert_schema)
        assert set(a["event_ids"]) <= {e["id"] for e in events}
    # Every alert that opened is resolved by the end of the file, under the same id.
    opened = {a["id"] for a in alerts if a["state"] == "open"}
    resolved = {a["id"] for a in alerts if a["state"] == "resolved"}
    assert opened == resolved
