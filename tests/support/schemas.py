"""Hypothesis strategies from the JSON Schemas in Vigil's OpenAPI spec (what msgspec and
FastAPI emit: objects, strings with lengths/patterns/formats, bounded numbers, arrays,
enums, anyOf/oneOf and $ref). Values mostly fit the schema, sometimes sit just outside
its bounds, so the server's validation is exercised from both sides."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

EDGE_INTS = [0, -1, 1, 2**31, 2**63 - 1, 2**63 + 5, 10**30, -(10**30)]
EDGE_FLOATS = [0.0, -0.0, 1e-300, 1e300, -1e300, 0.5]


def strategy(schema: dict[str, Any], root: dict[str, Any], depth: int = 0) -> st.SearchStrategy:
    if depth > 6:
        return st.none()
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return st.deferred(lambda: strategy(root["components"]["schemas"][name], root, depth + 1))
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of(*(strategy(s, root, depth + 1) for s in schema[key]))
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return st.one_of(*(strategy({**schema, "type": k}, root, depth) for k in kind))
    if kind == "object" or "properties" in schema:
        props = schema.get("properties", {})
        required = set(schema.get("required", []))
        fixed = {k: strategy(v, root, depth + 1) for k, v in props.items() if k in required}
        optional = {k: strategy(v, root, depth + 1) for k, v in props.items() if k not in required}
        return st.fixed_dictionaries(fixed, optional=optional)
    if kind == "array":
        items = strategy(schema.get("items", {}), root, depth + 1)
        return st.lists(items, min_size=schema.get("minItems", 0), max_size=min(schema.get("maxItems", 4), 4))
    if kind == "string":
        return _string(schema)
    if kind == "integer":
        lo, hi = schema.get("minimum"), schema.get("maximum")
        return st.one_of(st.integers(min_value=lo, max_value=hi), st.sampled_from(EDGE_INTS))
    if kind == "number":
        lo, hi = schema.get("minimum"), schema.get("maximum")
        inside = st.floats(min_value=lo, max_value=hi, allow_nan=False, allow_infinity=False)
        return st.one_of(inside, st.sampled_from(EDGE_FLOATS))
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20))


def _string(schema: dict[str, Any]) -> st.SearchStrategy:
    fmt = schema.get("format")
    if fmt == "date-time":
        return st.one_of(st.datetimes(timezones=st.none() | st.just(__import__("datetime").timezone.utc))
                         .map(lambda d: d.isoformat()), st.sampled_from(["0001-01-01T00:00:00", "9999-12-31T23:59:59Z"]))
    if "pattern" in schema:
        try:
            return st.one_of(st.from_regex(schema["pattern"], fullmatch=True).filter(
                lambda s: len(s) <= schema.get("maxLength", 10_000)), st.text(max_size=20))
        except Exception:  # a pattern Python's re cannot take: plain text
            pass
    lo, hi = schema.get("minLength", 0), schema.get("maxLength", 64)
    return st.one_of(st.text(min_size=lo, max_size=min(hi, 64)), st.text(min_size=hi + 1, max_size=hi + 2)
                     if hi < 5000 else st.just("x"))
