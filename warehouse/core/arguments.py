"""Checks of the arguments of public functions (`open`, `writer`, `expire`, `compact`, `vacuum`,
`history`, `report`, `sync_to`, ...), so that a bad one fails at the call, naming the argument and
the value, rather than deep inside as a bare TypeError, a format-code ValueError or, worse, not at
all (a `flush_rows="2"` that silently never flushes).

Each raises `InvalidArgumentType` (a TypeError and a ValueError) for a value of the wrong type and
`InvalidArgument` (a ValueError) for a value out of range; both subclass `WarehouseError`.
Integers accept Python and NumPy ints, never bools; numbers accept any real number (see
`records.real`) but NaN.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

from warehouse.core.errors import InvalidArgument, InvalidArgumentType


def _shown(value: Any) -> str:
    return f"{type(value).__name__} {value!r:.80}"


def integer(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """`value` as an int within [minimum, maximum]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidArgumentType(f"{name} must be an integer, got {_shown(value)}")
    n = int(value)
    if (minimum is not None and n < minimum) or (maximum is not None and n > maximum):
        bounds = (
            f">= {minimum}" if maximum is None else f"<= {maximum}" if minimum is None else f"in {minimum}..{maximum}"
        )
        raise InvalidArgument(f"{name} must be an integer {bounds}, got {n}")
    return n


def optional_integer(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int | None:
    """`integer`, or None."""
    return None if value is None else integer(name, value, minimum=minimum, maximum=maximum)


def number(
    name: str, value: Any, *, minimum: float | None = None, maximum: float | None = None, above: float | None = None
) -> float:
    """`value` as a finite float within [minimum, maximum] (and > `above`, if given)."""
    from warehouse.core.records import real

    if isinstance(value, bool):
        raise InvalidArgumentType(f"{name} must be a number, got {_shown(value)}")
    try:
        f = real(value)
    except OverflowError:
        f = math.inf
    if f is None:
        raise InvalidArgumentType(f"{name} must be a number, got {_shown(value)}")
    if (
        not math.isfinite(f)
        or (minimum is not None and f < minimum)
        or (maximum is not None and f > maximum)
        or (above is not None and f <= above)
    ):
        parts = (
            ([f">= {minimum}"] if minimum is not None else [])
            + ([f"> {above}"] if above is not None else [])
            + ([f"<= {maximum}"] if maximum is not None else [])
        )
        raise InvalidArgument(
            f"{name} must be a finite number{' ' + ' and '.join(parts) if parts else ''}, got {value!r}"
        )
    return f


def boolean(name: str, value: Any) -> bool:
    """`value`, which must be True or False (a string like "no" is truthy: never guess)."""
    if not isinstance(value, bool) and type(value).__name__ != "bool_":
        raise InvalidArgumentType(f"{name} must be True or False, got {_shown(value)}")
    return bool(value)


def duration(name: str, value: Any, *, minimum: timedelta = timedelta(0)) -> timedelta:
    """`value`, a timedelta of at least `minimum`."""
    if not isinstance(value, timedelta):
        raise InvalidArgumentType(f"{name} must be a timedelta (e.g. timedelta(days=7)), got {_shown(value)}")
    if value < minimum:
        raise InvalidArgument(f"{name} must be a timedelta of at least {minimum}, got {value!r}")
    return value


def moment(name: str, value: Any) -> datetime:
    """`value`, a datetime (naive = UTC), or an ISO-8601 string; returned aware."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise InvalidArgument(f"{name} must be a datetime or an ISO-8601 time, got {value!r:.80}") from None
    if not isinstance(value, datetime) or value != value:  # NaT is a datetime unequal to itself
        raise InvalidArgumentType(f"{name} must be a datetime or an ISO-8601 string, got {_shown(value)}")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def choice(name: str, value: Any, options: Iterable[str]) -> str:
    """`value`, one of `options`."""
    options = tuple(options)
    if not isinstance(value, str):
        raise InvalidArgumentType(f"{name} must be one of {', '.join(options)}, got {_shown(value)}")
    if value not in options:
        raise InvalidArgument(f"{name} must be one of {', '.join(options)}, got {value!r:.80}")
    return value


def names(name: str, value: Any) -> list[str]:
    """One string or an iterable of strings, as a list (a bare string is one name, never its letters)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (bytes, bytearray)) or not isinstance(value, Iterable) or isinstance(value, dict):
        raise InvalidArgumentType(f"{name} must be a name or a list of names, got {_shown(value)}")
    out = list(value)
    for v in out:
        if not isinstance(v, str):
            raise InvalidArgumentType(f"{name} must hold names (strings), got {_shown(v)} in {out!r:.80}")
    return out


def before(now: datetime, span: timedelta) -> datetime:
    """`now - span` in UTC; the earliest time a datetime holds if that is earlier still (a span of
    more than 2,000 years means: nothing is that old)."""
    try:
        return (now - span).astimezone(UTC)
    except OverflowError:
        return datetime.min.replace(tzinfo=UTC)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?i?b?)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(text: str) -> int:
    """`128MB`, `512k`, `1GiB`, `4096` -> bytes (k, M, G, T are powers of 1024, with or without
    `B`/`iB`). Raises WarehouseError naming the text otherwise."""
    m = _SIZE.match(text) if isinstance(text, str) else None
    unit = (m.group(2) or "").lower().replace("i", "") if m else ""
    if m is None or unit.rstrip("b") not in _SIZE_UNITS:
        raise InvalidArgument(f"bad size {text!r}: give a number and an optional unit B, kB, MB, GB, e.g. 128MB")
    size = int(float(m.group(1)) * _SIZE_UNITS[unit.rstrip("b")])
    if size <= 0:
        raise InvalidArgument(f"bad size {text!r}: it must be more than 0 bytes")
    return size
