"""Validation and normalisation of the records a writer accepts, into column values.

Everything here runs in the caller's thread inside `add_*`, so bad input fails there, naming the
field and value, before anything is buffered. Values come out as plain Python objects in schema
column order, ready for a column-wise conversion to Arrow at flush time.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from .errors import InvalidRecord

USAGE_INT_FIELDS = ("input_tokens", "output_tokens", "total_tokens", "cache_read_tokens",
                    "cache_write_tokens", "reasoning_tokens", "requests", "tool_calls")
USAGE_FIELDS = USAGE_INT_FIELDS + ("cost",)
MESSAGE_FIELDS = frozenset({"role", "content", "tool_calls", "tool_call_id", "name", "step",
                            "timestamp", "tokens", "metadata"})
ATTACK_FIELDS = frozenset({"vector_id", "type", "content", "metadata"})
MAX_ID_LENGTH = 512


def text(field: str, value: Any, *, required: bool = False) -> str | None:
    """A string that is valid UTF-8 (no lone surrogates); None allowed unless required."""
    if value is None:
        if required:
            raise InvalidRecord(f"{field} is required")
        return None
    if not isinstance(value, str):
        raise InvalidRecord(f"{field} must be a string, got {type(value).__name__} {value!r:.80}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidRecord(
                f"{field} is not valid UTF-8 ({exc.reason} at position {exc.start}): {value[:60]!r}"
            ) from None
    return value


def ident(field: str, value: Any, *, required: bool = True) -> str | None:
    """An id: a non-empty string of at most MAX_ID_LENGTH characters."""
    v = text(field, value, required=required)
    if v is not None and (v == "" or len(v) > MAX_ID_LENGTH):
        raise InvalidRecord(f"{field} must be 1..{MAX_ID_LENGTH} characters, got {v[:80]!r} ({len(v)} chars)")
    return v


def score(field: str, value: Any) -> float | None:
    """A finite real number (bools and ints allowed) or None."""
    if value is None:
        return None
    if not isinstance(value, (int, float)):
        raise InvalidRecord(f"{field} must be a number, got {type(value).__name__} {value!r:.80}")
    f = float(value)
    if not math.isfinite(f):
        raise InvalidRecord(f"{field} must be finite, got {value!r}")
    return f


def integer(field: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise InvalidRecord(f"{field} must be an integer, got {type(value).__name__} {value!r:.80}")
    return value


def json_text(field: str, value: Any) -> str | None:
    """JSON text of `value` (None stays None); refuses what JSON cannot hold losslessly."""
    if value is None:
        return None
    try:
        out = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise InvalidRecord(f"{field} is not JSON-serialisable: {exc}") from None
    return text(field, out)


def timestamp(field: str, value: Any) -> datetime | None:
    """A timezone-aware UTC datetime from a datetime (naive = UTC), an ISO-8601 string or epoch seconds."""
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidRecord(f"{field} is not an ISO-8601 timestamp: {value!r:.80}") from None
    elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return datetime.fromtimestamp(value, timezone.utc)
    else:
        raise InvalidRecord(f"{field} must be a datetime or ISO-8601 string, got {type(value).__name__} {value!r:.80}")
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def usage(value: Mapping[str, Any] | None) -> tuple:
    """Usage dict -> values of USAGE_FIELDS (ints, then cost); unknown keys are an error."""
    if value is None:
        return (None,) * len(USAGE_FIELDS)
    if not isinstance(value, Mapping):
        raise InvalidRecord(f"usage must be a dict, got {type(value).__name__}")
    unknown = value.keys() - set(USAGE_FIELDS)
    if unknown:
        raise InvalidRecord(f"usage has unknown field(s) {sorted(unknown)}; known: {list(USAGE_FIELDS)}")
    ints = [integer(f"usage.{k}", value.get(k)) for k in USAGE_INT_FIELDS]
    if ints[2] is None and (ints[0] is not None or ints[1] is not None):
        ints[2] = (ints[0] or 0) + (ints[1] or 0)  # total_tokens defaults to input + output
    return (*ints, score("usage.cost", value.get("cost")))


def score_map(value: Mapping[str, Any] | None) -> list[tuple[str, float]] | None:
    """Extra metrics {name: number} as map entries."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidRecord(f"scores must be a dict of name -> number, got {type(value).__name__}")
    return [(text("scores key", k, required=True), score(f"scores[{k!r}]", v)) for k, v in value.items()]


def float_list(field: str, value: Any) -> list[float] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise InvalidRecord(f"{field} must be a list of numbers, got {type(value).__name__}")
    return [score(f"{field}[{i}]", v) for i, v in enumerate(value)]


def _as_dict(kind: str, i: int, m: Any) -> Mapping[str, Any]:
    if isinstance(m, Mapping):
        return m
    dump = getattr(m, "model_dump", None)  # pydantic models (pydantic-ai, openai clients)
    if dump is not None:
        return dump(mode="json")
    raise InvalidRecord(f"{kind}[{i}] must be a dict, got {type(m).__name__}")


def _content(field: str, content: Any) -> tuple[str | None, str | None]:
    """(text, parts JSON): plain text stays text; a list of parts is kept whole as JSON, with its
    text parts joined into `content` so that SQL can search it."""
    if content is None or isinstance(content, str):
        return text(field, content), None
    if isinstance(content, Mapping):
        content = [content]
    if isinstance(content, list):
        texts = []
        for p in content:
            if isinstance(p, str):
                texts.append(p)
            elif isinstance(p, Mapping) and isinstance(p.get("text"), str):
                texts.append(p["text"])
        return "\n".join(texts), json_text(field, content)
    raise InvalidRecord(f"{field} must be a string, a list of content parts or None, got {type(content).__name__}")


def messages(execution_id: str, value: Any) -> list[tuple]:
    """Message dicts -> rows of the `messages` table (without partition columns).

    Keys outside MESSAGE_FIELDS are kept, losslessly, in the row's metadata under "extra".
    """
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise InvalidRecord(f"messages must be a list of dicts, got {type(value).__name__}")
    rows = []
    for seq, m in enumerate(value):
        m = _as_dict("messages", seq, m)
        f = f"messages[{seq}]"
        role = m.get("role")
        if not isinstance(role, str) or not role:
            raise InvalidRecord(f"{f}.role must be a non-empty string, got {role!r:.80}")
        content, parts = _content(f"{f}.content", m.get("content"))
        meta = m.get("metadata")
        extra = m.keys() - MESSAGE_FIELDS
        if extra:
            meta = {**(meta or {}), "extra": {k: m[k] for k in extra}}
        tool_calls = m.get("tool_calls")
        rows.append((
            execution_id, seq, text(f"{f}.role", role), content, parts,
            json_text(f"{f}.tool_calls", tool_calls),
            text(f"{f}.tool_call_id", m.get("tool_call_id")), text(f"{f}.name", m.get("name")),
            integer(f"{f}.step", m.get("step")), timestamp(f"{f}.timestamp", m.get("timestamp")),
            integer(f"{f}.tokens", m.get("tokens")), json_text(f"{f}.metadata", meta),
        ))
    return rows


def attacks(execution_id: str, value: Any) -> list[tuple]:
    """Attack vectors -> rows of the `attacks` table.

    Accepts a list of {vector_id, type, content, metadata} or the legacy mapping
    {vector_id: {type, content, ...}}; other keys go to metadata.
    """
    if value is None:
        return []
    if isinstance(value, Mapping):
        items = [{"vector_id": k, **(v if isinstance(v, Mapping) else {"content": v})} for k, v in value.items()]
    elif isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise InvalidRecord(f"attacks must be a list or a dict of vectors, got {type(value).__name__}")
    else:
        items = list(value)
    rows = []
    for i, a in enumerate(items):
        a = _as_dict("attacks", i, a)
        f = f"attacks[{i}]"
        meta = a.get("metadata")
        extra = a.keys() - ATTACK_FIELDS
        if extra:
            meta = {**(meta or {}), **{k: a[k] for k in extra}}
        content = a.get("content")
        if content is not None and not isinstance(content, str):
            content = json_text(f"{f}.content", content)
        vector_id = a.get("vector_id", str(i))
        rows.append((execution_id, ident(f"{f}.vector_id", str(vector_id) if isinstance(vector_id, int) else vector_id),
                     text(f"{f}.type", a.get("type")), text(f"{f}.content", content), json_text(f"{f}.metadata", meta)))
    return rows


def message_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A `messages` row back to the message dict that was written (the inverse of `messages`)."""
    out: dict[str, Any] = {"role": row["role"]}
    out["content"] = json.loads(row["content_parts"]) if row.get("content_parts") is not None else row.get("content")
    if row.get("tool_calls") is not None:
        out["tool_calls"] = json.loads(row["tool_calls"])
    for k in ("tool_call_id", "name", "step", "timestamp", "tokens"):
        if row.get(k) is not None:
            out[k] = row[k]
    meta = json.loads(row["metadata"]) if row.get("metadata") is not None else None
    if isinstance(meta, dict) and "extra" in meta:
        extra = meta.pop("extra")
        out.update(extra)
        if not meta:
            meta = None
    if meta is not None:
        out["metadata"] = meta
    return out
