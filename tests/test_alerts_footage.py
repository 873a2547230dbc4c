"""Two-phase alerts on real footage: `vigil analyze` over vtest.avi (people walking) with
the cpu backend standing in for the model's verdict."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest

from tests.conftest import ROOT, run_cli

pytestmark = pytest.mark.integration


def test_fast_rules_open_on_onset_then_the_verdict_confirms_or_rejects(media, tmp_path: Path):
    cfg = tmp_path / "fast.yaml"
    cfg.write_text(
        "rules:\n"
        "  - {id: walker, label: person, fast: true, confirm_s: 8, quiet_s: 5, severity: warning}\n"
        # Nobody cycles in these 20 s (the detector does see the parked van and car, and once a
        # small blob as a dog, so those rules would be confirmed): the motion onset is a false alarm.
        "  - {id: cyclist, label: bicycle, fast: true, confirm_s: 8, quiet_s: 5}\n"
        # Only the footage's own capture times decide (no wall-clock tick): same result under load.
        "alerts: {tick_s: 3600}\n"
    )
    res = run_cli(["analyze", str(media / "vtest.avi"), "--json", "--duration", "20", "-c", str(cfg)])
    assert res.returncode == 0, res.stderr
    lines = [json.loads(x) for x in res.stdout.splitlines()]
    events = {e["id"]: e for e in lines if e["type"] == "event"}
    alerts = [a for a in lines if a["type"] == "alert"]
    schema = json.loads((ROOT / "docs" / "schema" / "alert.schema.json").read_text())
    for a in alerts:
        jsonschema.validate(a, schema)
    onset_packets = {e["packet_id"] for e in events.values() if e["reason"] == "onset"}
    for rule, final_phase in (("walker", "confirmed"), ("cyclist", "unconfirmed")):
        mine = [a for a in alerts if a["rule"] == rule]
        assert mine, f"no alert for {rule}"
        first = mine[0]
        # Phase one: opened from the onset packet's motion, before any verdict.
        assert first["state"] == "open" and first["phase"] == "onset" and first["event_ids"] == []
        assert first["packet_ids"][0] in onset_packets
        # (Had the verdict come first, the alert would have opened as an ordinary one.)
        same = [a for a in mine if a["id"] == first["id"]]
        assert [a["seq"] for a in same] == list(range(len(same)))
        assert same[-1]["state"] == "resolved" and same[-1]["phase"] == final_phase
    confirmed = next(a for a in alerts if a["rule"] == "walker" and a["phase"] == "confirmed")
    assert confirmed["message"].startswith("Confirmed:")
    assert "person" in events[confirmed["event_ids"][-1]]["labels"]  # the cpu backend's verdict
    rejected = [a for a in alerts if a["rule"] == "cyclist"][-1]
    assert rejected["message"].startswith("Not confirmed")
