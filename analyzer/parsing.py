"""A robust parser for model answers: text in, a validated `Answer` or a `ParseError`.

Models wrap JSON in `<think>...</think>`, code fences and chatter, and sometimes emit
almost-JSON (trailing commas, Python literals, smart quotes, a cut-off end). We strip the
wrapping, take the first JSON object, repair what is safe to repair, and validate the shape.
Anything else is rejected with a reason; the caller keeps the raw text (status "unparsed").
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field


class ParseError(ValueError):
    pass


@dataclass(slots=True)
class Verdict:
    rule: str
    match: bool
    confidence: float
    evidence: str


@dataclass(slots=True)
class Answer:
    summary: str
    objects: dict[str, int] = field(default_factory=dict)
    activities: list[str] = field(default_factory=list)
    rules: dict[str, Verdict] = field(default_factory=dict)
    repaired: bool = False


_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.S)
_LABEL = re.compile(r"[^a-z0-9 _-]")
MAX_STARTS = 20


def strip_thinking(text: str) -> str:
    text = _THINK.sub("", text)
    low = text.lower()
    if "</think>" in low:  # some chat templates put the opening tag in the prompt
        text = text[low.rindex("</think>") + len("</think>"):]
    elif "<think>" in low:  # thinking never finished: there is no answer after it
        text = text[: low.index("<think>")]
    return text.strip()


def _first_object(text: str, start: int) -> tuple[str, bool]:
    """The balanced {...} opening at `start` (string-aware); (candidate, complete)."""
    stack: list[str] = []
    in_str = False
    esc = False
    quote = ""
    for i in range(start, len(text)):
        ch = text[i]
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == quote:
                in_str = False
            continue
        if ch in "\"'" and (ch == '"' or _single_quoted_context(text, i)):
            in_str, quote = True, ch
        elif ch in "{[":
            stack.append("}" if ch == "{" else "]")
        elif ch in "}]":
            if not stack or stack[-1] != ch:
                raise ParseError("unbalanced brackets in the answer's JSON")
            stack.pop()
            if not stack:
                return text[start: i + 1], True
    # Cut off (max_new_tokens): close what is open, dropping a dangling key or comma.
    tail = text[start:]
    if in_str:
        tail += quote
    return tail + "".join(reversed(stack)), False


def _single_quoted_context(text: str, i: int) -> bool:
    # A ' starts a string only where JSON expects one (after { [ , :), not in "don't".
    j = i - 1
    while j >= 0 and text[j] in " \t\r\n":
        j -= 1
    return j >= 0 and text[j] in "{[,:"


def _repair(candidate: str) -> str:
    s = candidate.replace("\u201c", '"').replace("\u201d", '"').replace("\u2018", "'").replace("\u2019", "'")
    s = re.sub(r"(?<=[\s:\[,])True\b", "true", s)
    s = re.sub(r"(?<=[\s:\[,])False\b", "false", s)
    s = re.sub(r"(?<=[\s:\[,])None\b", "null", s)
    s = re.sub(r"'([^'\\\n]*)'(?=\s*[:,\]}])", lambda m: json.dumps(m.group(1)), s)  # 'x' -> "x"
    s = re.sub(r"([{,]\s*)([A-Za-z_][A-Za-z0-9_]*)(\s*:)", r'\1"\2"\3', s)  # bare keys
    s = re.sub(r",\s*([}\]])", r"\1", s)  # trailing commas
    s = re.sub(r'"\s*:\s*([}\]])', r'": null\1', s)  # a key cut off before its value
    return s


def _loads(text: str, start: int) -> tuple[object, bool]:
    candidate, complete = _first_object(text, start)
    try:
        return json.loads(candidate), not complete
    except json.JSONDecodeError:
        pass
    try:
        return json.loads(_repair(candidate)), True
    except json.JSONDecodeError as exc:
        raise ParseError(f"malformed JSON that could not be repaired: {exc.msg} at char {exc.pos}") from None


def _as_bool(v: object) -> bool | None:
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return bool(v)
    if isinstance(v, str):
        s = v.strip().lower()
        if s in {"true", "yes", "y", "match", "1"}:
            return True
        if s in {"false", "no", "n", "no match", "0"}:
            return False
    return None


def _as_conf(v: object) -> float:
    try:
        c = float(str(v).rstrip("%")) if not isinstance(v, (int, float)) else float(v)
    except ValueError:
        return 0.5
    if isinstance(v, str) and v.strip().endswith("%") or c > 1.0:
        c /= 100.0
    return min(1.0, max(0.0, c))


def _objects(v: object) -> dict[str, int]:
    out: dict[str, int] = {}
    items = v.items() if isinstance(v, dict) else (v if isinstance(v, list) else [])
    for item in items:
        if isinstance(item, tuple):  # {"person": 2}
            label, count = item
        elif isinstance(item, dict):
            label = item.get("label") or item.get("name") or item.get("object") or ""
            count = item.get("count", 1)
        else:
            label, count = item, 1
        label = _LABEL.sub("", str(label).strip().lower())[:64].strip()
        try:
            n = max(0, int(count)) if count is not None else 1
        except (TypeError, ValueError):
            n = 1
        if label:
            out[label] = max(out.get(label, 0), n)
    return out


def parse_answer(text: str) -> Answer:
    """Strict about shape, lenient about wrapping. Raises ParseError with a reason."""
    if not text or not text.strip():
        raise ParseError("empty answer")
    body = strip_thinking(text)
    if not body:
        raise ParseError("the answer holds only thinking, no JSON")
    fenced = _FENCE.findall(body)
    candidates = [f for f in fenced if "{" in f] + [body]
    data: object = None
    repaired = False
    last: ParseError | None = None
    for cand in candidates:
        # Chatter may hold braces of its own ("{the} answer: {...}"): try each opening brace,
        # first the ones that give an object with a summary.
        starts = [i for i, ch in enumerate(cand) if ch == "{"][:MAX_STARTS]
        for start in starts:
            try:
                obj, fixed = _loads(cand, start)
            except ParseError as exc:
                last = last or exc
                continue
            if isinstance(obj, dict) and isinstance(obj.get("summary"), str):
                data, repaired = obj, fixed
                break
            if data is None:
                data, repaired = obj, fixed
        if isinstance(data, dict) and isinstance(data.get("summary"), str):
            break
    if data is None:
        raise last or ParseError("no JSON object in the answer")
    if not isinstance(data, dict):
        raise ParseError("the answer's JSON is not an object")
    summary = data.get("summary")
    if not isinstance(summary, str) or not summary.strip():
        raise ParseError('the answer has no "summary" string')
    rules: dict[str, Verdict] = {}
    raw_rules = data.get("rules") or []
    if isinstance(raw_rules, dict):  # {"rule-id": {...}}
        raw_rules = [{"rule": k, **v} if isinstance(v, dict) else {"rule": k, "match": v} for k, v in raw_rules.items()]
    if not isinstance(raw_rules, list):
        raise ParseError('"rules" is neither a list nor an object')
    for r in raw_rules:
        if not isinstance(r, dict) or not isinstance(r.get("rule", r.get("id")), (str, int)):
            continue
        match = _as_bool(r.get("match"))
        if match is None:
            continue  # no usable verdict: treated as missing by the caller
        rid = str(r.get("rule", r.get("id"))).strip()
        rules[rid] = Verdict(rule=rid, match=match, confidence=_as_conf(r.get("confidence", 0.5)),
                             evidence=str(r.get("evidence") or "")[:1000])
    acts = data.get("activities") or []
    activities = [str(a)[:200] for a in acts] if isinstance(acts, list) else [str(acts)[:200]]
    return Answer(summary=summary.strip()[:2000], objects=_objects(data.get("objects")), activities=activities,
                  rules=rules, repaired=repaired)
