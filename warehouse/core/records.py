"""Validation and normalisation of the records a writer accepts, into column values.

Everything here runs in the caller's thread inside `add_*`, so bad input fails there, naming the
field and value, before anything is buffered. Values come out as plain Python objects in schema
column order, ready for a column-wise conversion to Arrow at flush time.
"""

from __future__ import annotations

import decimal
import json
import math
import numbers
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Literal, overload

import orjson

from warehouse.core.errors import InvalidRecord
from warehouse.core.rows import RowShape

_orjson_dumps = orjson.dumps

USAGE_INT_FIELDS = (
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "requests",
    "tool_calls",
)
USAGE_FIELDS = USAGE_INT_FIELDS + ("cost",)
MESSAGE_FIELDS = frozenset(
    {"role", "content", "tool_calls", "tool_call_id", "name", "step", "timestamp", "tokens", "metadata"}
)
ATTACK_FIELDS = frozenset({"vector_id", "type", "content", "metadata"})
MAX_ID_LENGTH = 512


@overload
def text(field: str, value: Any, *, required: Literal[True]) -> str: ...
@overload
def text(field: str, value: Any, *, required: bool = False) -> str | None: ...


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


def opt_text(field: str, value: Any) -> str | None:
    """`text` with an exact-type fast path for None and ASCII strings (the hot path's common case)."""
    if value is None or (value.__class__ is str and value.isascii()):
        return value
    return text(field, value)


def opt_score(field: str, value: Any) -> float | None:
    """`score` with a fast path for None and finite floats (`v - v` is NaN for NaN and infinities)."""
    if value is None or (value.__class__ is float and value - value == 0.0):
        return value
    return score(field, value)


@overload
def ident(field: str, value: Any, *, required: Literal[True] = True) -> str: ...
@overload
def ident(field: str, value: Any, *, required: bool) -> str | None: ...


def ident(field: str, value: Any, *, required: bool = True) -> str | None:
    """An id: a non-empty string of at most MAX_ID_LENGTH characters."""
    v = text(field, value, required=required)
    if v is not None and (v == "" or len(v) > MAX_ID_LENGTH):
        raise InvalidRecord(f"{field} must be 1..{MAX_ID_LENGTH} characters, got {v[:80]!r} ({len(v)} chars)")
    return v


def real(value: Any) -> float | None:
    """`value` as a float if it is a real number of any kind, else None: Python bools, ints and
    floats, `fractions.Fraction`, `decimal.Decimal`, and NumPy scalars (or 0-d arrays) of every
    real kind (bool, signed and unsigned ints, float16..float128). Raises OverflowError for an int
    or Decimal beyond the float range."""
    if isinstance(value, numbers.Real):
        return float(value)
    if isinstance(value, decimal.Decimal):
        return math.nan if value.is_nan() else float(value)  # float() refuses a signalling NaN
    # NumPy bools (not registered as numbers.Real) and 0-d arrays, without importing NumPy.
    if getattr(value, "ndim", None) == 0 and getattr(getattr(value, "dtype", None), "kind", None) in (
        "b",
        "i",
        "u",
        "f",
    ):
        return float(value.item())
    return None


def is_number(value: Any) -> bool:
    """True for a real number of any kind that `real` converts, bools (Python or NumPy) excepted."""
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if isinstance(value, bool) or kind == "b":
        return False
    return isinstance(value, (numbers.Real, decimal.Decimal)) or (
        kind in ("i", "u", "f") and getattr(value, "ndim", None) == 0
    )


def score(field: str, value: Any) -> float | None:
    """A finite real number or None: bools, ints, floats and NumPy scalars of every real kind
    (see `real`); stored as a 64-bit float."""
    if value is None:
        return None
    try:
        f = real(value)
    except OverflowError:
        raise InvalidRecord(f"{field} = {value!r:.80} is too large for a 64-bit float") from None
    if f is None:
        raise InvalidRecord(f"{field} must be a number, got {type(value).__name__} {value!r:.80}")
    if not math.isfinite(f):
        raise InvalidRecord(f"{field} must be finite, got {value!r}")
    return f


INT32 = (-(1 << 31), 1 << 31)
INT64 = (-(1 << 63), 1 << 63)


def integer(field: str, value: Any, bounds: tuple[int, int] = INT64) -> int | None:
    """An integer within `bounds` (lower inclusive, upper exclusive), or None: Python and NumPy
    ints of every width, and integral floats; never a bool."""
    if value is None:
        return None
    if value.__class__ is not int:
        kind = getattr(getattr(value, "dtype", None), "kind", None)
        if isinstance(value, bool) or kind == "b":
            raise InvalidRecord(f"{field} must be an integer, got {type(value).__name__} {value!r:.80}")
        if isinstance(value, numbers.Integral) or (kind in ("i", "u") and getattr(value, "ndim", None) == 0):
            value = int(value)
        else:
            try:
                f = real(value)
            except OverflowError:
                f = None
            if f is None or not f.is_integer():
                raise InvalidRecord(f"{field} must be an integer, got {type(value).__name__} {value!r:.80}")
            value = int(f)
    n: int = value  # every branch above left an int
    if not bounds[0] <= n < bounds[1]:
        raise InvalidRecord(f"{field} = {n} is out of range [{bounds[0]}, {bounds[1]})")
    return n


def _utf8(s: str) -> bool:
    try:
        s.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


_ORJSON_OPTS = orjson.OPT_NON_STR_KEYS


def fast_json(field: str, value: Any) -> str | None:
    """JSON text of tool calls and content parts, by orjson (a tenth of the cost of `json`).

    Lone surrogates and values JSON cannot hold raise InvalidRecord naming the field. Unlike
    `json_text`, a float NaN inside becomes null: tool calls and content parts hold text.
    """
    if value is None:
        return None
    try:
        return _orjson_dumps(value, option=_ORJSON_OPTS).decode()
    except TypeError as exc:
        raise InvalidRecord(f"{field} is not JSON-serialisable: {exc}") from None


def json_text(field: str, value: Any) -> str | None:
    """JSON text of `value` (None stays None); refuses what JSON cannot hold losslessly.

    orjson encodes (and refuses lone surrogates and non-JSON types); since it writes NaN and
    infinity as null, output containing null is checked once more by the strict `json` encoder.
    """
    if value is None:
        return None
    try:
        out = _orjson_dumps(value, option=_ORJSON_OPTS)
        if b"null" in out:
            json.dumps(value, allow_nan=False, default=str)
    except (TypeError, ValueError) as exc:
        raise InvalidRecord(f"{field} is not JSON-serialisable: {exc}") from None
    return out.decode()


#: Epoch seconds a timestamp may be given as: those of years 1..9999 (what a datetime holds).
_EPOCH_MIN = (datetime(1, 1, 1, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()
_EPOCH_MAX = (datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)).total_seconds()


def _epoch(field: str, value: Any) -> datetime:
    """Epoch seconds -> an aware UTC datetime; a value out of range says so, and says when it would
    be in range as milliseconds, microseconds or nanoseconds."""
    try:
        f = real(value)
    except OverflowError:
        f = math.inf
    assert f is not None
    if math.isfinite(f) and _EPOCH_MIN <= f <= _EPOCH_MAX:
        return datetime.fromtimestamp(f, UTC)
    hint = ""
    if math.isfinite(f):
        for unit, per_second in (("milliseconds", 1e3), ("microseconds", 1e6), ("nanoseconds", 1e9)):
            if _EPOCH_MIN <= f / per_second <= _EPOCH_MAX:
                as_epoch = datetime.fromtimestamp(f / per_second, UTC).isoformat()
                hint = f"; as epoch {unit} it would be {as_epoch}: divide by {per_second:.0f}"
                break
    raise InvalidRecord(
        f"{field} = {value!r:.80} is not a time: epoch seconds must be within years 1..9999 "
        f"({_EPOCH_MIN:.0f}..{_EPOCH_MAX:.0f}){hint}"
    )


def _in_utc(field: str, dt: datetime, given: Any) -> datetime:
    """`dt` (aware) as UTC; refuses a time that a datetime cannot hold in UTC (year 1 east of UTC,
    year 9999 west of it) and a pandas NaT, which would fail the flush of a whole batch later."""
    try:
        return dt.astimezone(UTC)
    except (OverflowError, ValueError):
        raise InvalidRecord(f"{field} = {given!r:.80} is not a time within years 1..9999 UTC") from None


def iso_utc(t: datetime) -> str:
    """`t` as ISO-8601 text in UTC with a `Z` suffix (`2025-11-22T14:30:52.123456+00:00` is written
    `2025-11-22T14:30:52.123456Z`), the form stored in JSON and YAML documents. A naive `t` is taken
    as local time (as `datetime.astimezone` does)."""
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


def timestamp(field: str, value: Any) -> datetime | None:
    """A timezone-aware datetime from a datetime (naive = UTC; pandas Timestamps too), a NumPy
    datetime64, an ISO-8601 string or epoch seconds (a real number of any kind, see `real`), within
    years 1..9999 in UTC. Anything else raises InvalidRecord naming the field and value.

    Aware datetimes are kept in their zone (Arrow stores the instant in UTC).
    """
    if value is None:
        return None
    if value.__class__ is datetime:
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        elif value.year in (1, 9999):  # the only years whose UTC instant can fall outside 1..9999
            _in_utc(field, value, value)
        dt: datetime = value
        return dt
    if isinstance(value, datetime):
        dt = value
    elif isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidRecord(f"{field} is not an ISO-8601 timestamp: {value!r:.80}") from None
    elif is_number(value):
        return _epoch(field, value)
    elif getattr(getattr(value, "dtype", None), "kind", None) == "M" and getattr(value, "ndim", None) == 0:
        item = value.astype("datetime64[us]").item()  # NumPy datetime64: a naive datetime, None for NaT
        if not isinstance(item, datetime):
            raise InvalidRecord(f"{field} = {value!r:.80} is not a time within years 1..9999")
        return item.replace(tzinfo=UTC)
    else:
        raise InvalidRecord(
            f"{field} must be a datetime, an ISO-8601 string or epoch seconds, got {type(value).__name__} {value!r:.80}"
        )
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return _in_utc(field, dt, value)


_NO_USAGE = (None,) * len(USAGE_FIELDS)
_USAGE_KEYS = frozenset(USAGE_FIELDS)


def usage(value: Mapping[str, Any] | None) -> tuple[Any, ...]:
    """Usage dict -> values of USAGE_FIELDS (ints, then cost); unknown keys are an error."""
    if value is None:
        return _NO_USAGE
    if not isinstance(value, Mapping):
        raise InvalidRecord(f"usage must be a dict, got {type(value).__name__}")
    if not (value.keys() <= _USAGE_KEYS):
        unknown = sorted(value.keys() - _USAGE_KEYS)
        raise InvalidRecord(f"usage has unknown field(s) {unknown}; known: {list(USAGE_FIELDS)}")
    get = value.get
    ints = [get(k) for k in USAGE_INT_FIELDS]
    for i, v in enumerate(ints):
        if v is not None and (type(v) is not int or not -(1 << 63) <= v < (1 << 63)):
            ints[i] = integer(f"usage.{USAGE_INT_FIELDS[i]}", v)
    if ints[2] is None and (ints[0] is not None or ints[1] is not None):
        ints[2] = (ints[0] or 0) + (ints[1] or 0)  # total_tokens defaults to input + output
    cost = get("cost")
    return (*ints, cost if cost is None or (type(cost) is float and math.isfinite(cost)) else score("usage.cost", cost))


def score_map(value: Mapping[str, Any] | None) -> list[tuple[str, float]] | None:
    """Extra metrics {name: number} as map entries."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidRecord(f"scores must be a dict of name -> number, got {type(value).__name__}")
    items = list(value.items())
    for i, (k, v) in enumerate(items):
        if k.__class__ is not str or not k.isascii():
            text("scores key", k, required=True)
        if v.__class__ is not float or v - v != 0.0:
            items[i] = (k, score(f"scores[{k!r}]", v))
    return items


def float_list(field: str, value: Any) -> list[float | None] | None:
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
        d: Mapping[str, Any] = dump(mode="json")
        return d
    raise InvalidRecord(f"{kind}[{i}] must be a dict, got {type(m).__name__}")


#: `content_parts` of a message whose content was exactly [{"type": "text", "text": <content>}]:
#: the text is stored once, in `content` (a JSON string can never be a genuine list of parts).
ONE_TEXT_PART = '"text"'


def _content(field: str, content: Any) -> tuple[str | None, str | None]:
    """(text, parts JSON): plain text stays text; other content (a list of parts, or one part as a
    dict) is kept whole as JSON, with its text parts joined into `content` so that SQL can search
    it; a single text part is stored as its text plus the ONE_TEXT_PART marker."""
    if content is None or isinstance(content, str):
        return text(field, content), None
    if isinstance(content, (list, Mapping)):
        parts = [content] if isinstance(content, Mapping) else content
        if (
            isinstance(content, list)
            and len(parts) == 1
            and type(parts[0]) is dict
            and parts[0].keys() == {"type", "text"}
            and parts[0]["type"] == "text"
            and type(parts[0]["text"]) is str
        ):
            return text(field, parts[0]["text"]), ONE_TEXT_PART
        texts = []
        for p in parts:
            if isinstance(p, str):
                texts.append(p)
            elif isinstance(p, Mapping) and isinstance(p.get("text"), str):
                texts.append(p["text"])
        return "\n".join(texts), fast_json(field, content)
    raise InvalidRecord(f"{field} must be a string, a list of content parts or None, got {type(content).__name__}")


#: The tuples of `message_row` and `messages`, by name.
MESSAGE_ROW = RowShape(
    "messages",
    (
        "execution_id",
        "seq",
        "role",
        "content",
        "content_parts",
        "tool_calls",
        "tool_call_id",
        "name",
        "step",
        "timestamp",
        "tokens",
        "metadata",
        "write_id",
    ),
)
#: The tuples of `attacks`, by name.
ATTACK_ROW = RowShape("attacks", ("execution_id", "vector_id", "type", "content", "metadata", "write_id"))


def message_row(execution_id: str, seq: int, m: Any, write_id: int | None = None) -> tuple[Any, ...]:
    """One message -> one `messages` row, validating everything (the thorough path).

    Keys outside MESSAGE_FIELDS are kept, losslessly, in the row's metadata under "extra".
    """
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
    return (
        execution_id,
        seq,
        text(f"{f}.role", role),
        content,
        parts,
        fast_json(f"{f}.tool_calls", m.get("tool_calls")),
        text(f"{f}.tool_call_id", m.get("tool_call_id")),
        text(f"{f}.name", m.get("name")),
        integer(f"{f}.step", m.get("step"), INT32),
        timestamp(f"{f}.timestamp", m.get("timestamp")),
        integer(f"{f}.tokens", m.get("tokens")),
        json_text(f"{f}.metadata", meta),
        write_id,
    )


def messages(
    execution_id: str, value: Any, start: int = 0, write_id: int | None = None
) -> tuple[list[tuple[Any, ...]], int]:
    """Message dicts -> (rows of the `messages` table without partition columns, text bytes);
    their `seq` numbers start at `start`; `write_id` is the add of the execution they belong to
    (None for a session's messages).

    This is the writer's hot path: a message of the common shape (a plain dict with known keys,
    text or a list of text parts, OpenAI-style tool calls, a datetime or no timestamp, no
    metadata) is checked with a few exact type tests; anything else takes `message_row`, which
    normalises it or raises InvalidRecord naming the field.
    """
    if value is None:
        return [], 0
    if type(value) is not list:
        if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
            raise InvalidRecord(f"messages must be a list of dicts, got {type(value).__name__}")
        value = list(value)
    rows: list[tuple[Any, ...]] = []
    append = rows.append
    keys = MESSAGE_FIELDS
    size = 0
    for seq, m in enumerate(value, start):
        if type(m) is not dict or not (m.keys() <= keys) or "metadata" in m:
            row = message_row(execution_id, seq, m, write_id)
            append(row)
            size += len(row[3] or "") + len(row[4] or "") + len(row[5] or "")
            continue
        role = m.get("role")
        content = m.get("content")
        tool_call_id = m.get("tool_call_id")
        name = m.get("name")
        step = m.get("step")
        ts = m.get("timestamp")
        tokens = m.get("tokens")
        tool_calls = m.get("tool_calls")
        parts = None
        try:
            if (
                type(role) is not str
                or not role
                or not role.isascii()
                or not (tool_call_id is None or (type(tool_call_id) is str and tool_call_id.isascii()))
                or not (name is None or (type(name) is str and name.isascii()))
                or not (step is None or (type(step) is int and -(1 << 31) <= step < (1 << 31)))
                or not (tokens is None or (type(tokens) is int and -(1 << 63) <= tokens < (1 << 63)))
                or not (ts is None or (type(ts) is datetime and 1 < ts.year < 9999))
            ):
                raise TypeError
            if type(content) is str:
                if not content.isascii():
                    content.encode("utf-8")
            elif (
                type(content) is list
                and len(content) == 1
                and type(first := content[0]) is dict
                and len(first) == 2
                and first.get("type") == "text"
                and type(first.get("text")) is str
            ):
                content = first["text"]  # one text part: its text is stored once (ONE_TEXT_PART)
                parts = ONE_TEXT_PART
                if not content.isascii():
                    content.encode("utf-8")
            elif type(content) is list:
                parts = _orjson_dumps(content, option=_ORJSON_OPTS).decode()
                # the filter admits only str and dict parts; an exact-type test does not narrow the else branch
                content = "\n".join(
                    p if type(p) is str else p["text"]  # type: ignore[index]
                    for p in content
                    if type(p) is str or (type(p) is dict and type(p.get("text")) is str)
                )
                size += len(parts)
            elif content is not None:
                raise TypeError
            if tool_calls is not None:
                tool_calls = _orjson_dumps(tool_calls, option=_ORJSON_OPTS).decode()
                size += len(tool_calls)
        except (TypeError, UnicodeEncodeError):
            row = message_row(execution_id, seq, m, write_id)  # normalises, or raises naming the field
            append(row)
            size += len(row[3] or "") + len(row[4] or "") + len(row[5] or "")
            continue
        if content is not None:
            size += len(content)
        append(
            (execution_id, seq, role, content, parts, tool_calls, tool_call_id, name, step, ts, tokens, None, write_id)
        )
    return rows, size


def attacks(execution_id: str, value: Any, write_id: int | None = None) -> list[tuple[Any, ...]]:
    """Attack vectors -> rows of the `attacks` table (`write_id`: the add of their execution).

    Accepts a list of {vector_id, type, content, metadata} or the legacy mapping
    {vector_id: {type, content, ...}}; other keys go to metadata.
    """
    if value is None:
        return []
    if isinstance(value, Mapping):
        items: list[Any] = [
            {"vector_id": k, **(v if isinstance(v, Mapping) else {"content": v})} for k, v in value.items()
        ]
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
        rows.append(
            (
                execution_id,
                ident(f"{f}.vector_id", str(vector_id) if isinstance(vector_id, int) else vector_id),
                text(f"{f}.type", a.get("type")),
                text(f"{f}.content", content),
                json_text(f"{f}.metadata", meta),
                write_id,
            )
        )
    return rows


def message_from_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A `messages` row back to the message dict that was written (the inverse of `messages`)."""
    out: dict[str, Any] = {"role": row["role"]}
    parts = row.get("content_parts")
    if parts is None:
        out["content"] = row.get("content")
    elif parts == ONE_TEXT_PART:
        out["content"] = [{"type": "text", "text": row.get("content")}]
    else:
        out["content"] = json.loads(parts)
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
