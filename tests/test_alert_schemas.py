"""The published JSON Schemas of rules and webhook endpoints match the message types.

What a consumer relies on is compared (types, required keys, enums, patterns, the
discriminator); descriptions are compared with whitespace collapsed, because msgspec releases
differ in how they keep docstring indentation. Regenerate after changing a type:
`python -m tests.test_alert_schemas`."""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import msgspec
import pytest

from bus.messages import Rule, WebhookEndpoint
from tests.conftest import ROOT

GENERATED = {"rule": (Rule, "Vigil rule (v1)"), "webhook-endpoint": (WebhookEndpoint, "Vigil webhook endpoint (v1)")}
ENVELOPE = ("$schema", "$id", "title")


def meaning(schema: Any) -> Any:
    """The schema with free text normalised (whitespace collapsed)."""
    if isinstance(schema, dict):
        return {k: " ".join(v.split()) if k == "description" and isinstance(v, str) else meaning(v)
                for k, v in schema.items()}
    if isinstance(schema, list):
        return [meaning(v) for v in schema]
    return schema


def published(name: str) -> dict:
    return json.loads((ROOT / "docs" / "schema" / f"{name}.schema.json").read_text())


@pytest.mark.parametrize("name", sorted(GENERATED))
def test_schema_file_is_current(name):
    kind, _ = GENERATED[name]
    body = {k: v for k, v in published(name).items() if k not in ENVELOPE}
    assert meaning(body) == meaning(msgspec.json.schema(kind)), \
        f"regenerate docs/schema/{name}.schema.json: python -m tests.test_alert_schemas"


def test_meaning_ignores_only_whitespace_in_descriptions():
    a = {"description": "One.\n    Two.", "properties": {"x": {"type": "integer", "description": "a  b"}}}
    assert meaning(a) == meaning({"description": "One.\nTwo.", "properties": {"x": {"type": "integer", "description": "a b"}}})
    assert meaning(a) != meaning({**a, "properties": {"x": {"type": "number", "description": "a b"}}})
    assert meaning(a) != meaning({**a, "description": "One. Three."})


def test_schemas_refuse_unknown_keys():
    schema = published("rule")
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"kind": "label", "id": "r", "label": "person", "colldown_s": 5}, schema)


def test_rules_validate_against_the_schema():
    schema = published("rule")
    good = {"kind": "dwell", "id": "loiter", "label": "person", "zones": ["gate"], "min_s": 30,
            "schedule": [{"start": "22:00", "end": "06:00", "days": [5, 6]}], "cooldown_s": 600}
    jsonschema.validate(good, schema)
    msgspec.convert(good, Rule)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({**good, "schedule": [{"start": "25:00", "end": "06:00"}]}, schema)


if __name__ == "__main__":
    for name, (kind, title) in GENERATED.items():
        doc = {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": f"vigil/{name}.v1.json",
               "title": title, **msgspec.json.schema(kind)}
        (ROOT / "docs" / "schema" / f"{name}.schema.json").write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote docs/schema/{name}.schema.json")
