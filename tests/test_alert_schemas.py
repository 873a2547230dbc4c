"""The published JSON Schemas of rules and webhook endpoints match the message types."""

from __future__ import annotations

import json

import jsonschema
import msgspec
import pytest

from bus.messages import Rule, WebhookEndpoint
from tests.conftest import ROOT


@pytest.mark.parametrize("name, kind", [("rule", Rule), ("webhook-endpoint", WebhookEndpoint)])
def test_schema_file_is_current(name, kind):
    published = json.loads((ROOT / "docs" / "schema" / f"{name}.schema.json").read_text())
    current = msgspec.json.schema(kind)
    assert {k: v for k, v in published.items() if k not in ("$schema", "$id", "title")} == current, \
        f"regenerate docs/schema/{name}.schema.json (see docs/alerts.md)"


def test_rules_validate_against_the_schema():
    schema = json.loads((ROOT / "docs" / "schema" / "rule.schema.json").read_text())
    good = {"kind": "dwell", "id": "loiter", "label": "person", "zones": ["gate"], "min_s": 30,
            "schedule": [{"start": "22:00", "end": "06:00", "days": [5, 6]}], "cooldown_s": 600}
    jsonschema.validate(good, schema)
    msgspec.convert(good, Rule)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "schedule": [{"start": "25:00", "end": "06:00"}]}, schema)
