"""The options of a writer, defined once: `Warehouse.writer`, `Warehouse.async_writer`, `Writer` and
`AsyncWriter` all take them as a `WriterOptions`, which checks them when it is made."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from warehouse.core import arguments
from warehouse.core.errors import InvalidRecord
from warehouse.write.live import EVENT_LIMIT


@dataclass(frozen=True)
class WriterOptions:
    """How a writer buffers, flushes and logs (see `Warehouse.writer` for each option).

    flush_rows: records buffered that trigger a flush (an int >= 1).
    flush_bytes: bytes buffered that trigger a flush (an int >= 1).
    flush_interval: seconds between time-triggered flushes on the flusher thread; None or 0: no thread.
    event_limit: characters an event (log, span) keeps (an int >= 16).
    max_buffered_events: events waiting for a flush past which further events are dropped and counted.
    wal: directory of a local write-ahead log, or None.
    wal_sync: when the WAL is fsynced: "always", "flush" or "never".
    config_hash: a hash computed by another scheme (imported legacy results) to keep instead of ours.

    Raises InvalidArgument/InvalidArgumentType for a bad value (InvalidRecord for `event_limit`);
    a bad `wal_sync` with a `wal` is refused by the WAL itself, as WalError.
    """

    flush_rows: int = 10_000
    flush_bytes: int = 64 << 20
    flush_interval: float | None = 30.0
    event_limit: int = EVENT_LIMIT
    max_buffered_events: int = 200_000
    wal: str | os.PathLike[str] | None = None
    wal_sync: str = "flush"
    config_hash: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalised values are set once, here
        set_(self, "flush_rows", arguments.integer("flush_rows", self.flush_rows, minimum=1))
        set_(self, "flush_bytes", arguments.integer("flush_bytes", self.flush_bytes, minimum=1))
        if self.flush_interval is not None:  # 0: like None
            set_(self, "flush_interval", arguments.number("flush_interval", self.flush_interval, minimum=0))
        set_(self, "max_buffered_events", arguments.integer("max_buffered_events", self.max_buffered_events, minimum=1))
        if self.wal is None:  # (with a WAL, the WAL refuses a bad policy itself, as WalError)
            arguments.choice("wal_sync", self.wal_sync, ("always", "flush", "never"))
        if not isinstance(self.event_limit, int) or self.event_limit < 16:
            raise InvalidRecord(f"event_limit must be an int >= 16 (characters), got {self.event_limit!r}")

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The option names, in declaration order."""
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def pick(cls, arguments: Mapping[str, Any]) -> WriterOptions:
        """The options among `arguments` (e.g. the `locals()` of a function taking them as keywords);
        names missing from it keep their defaults, other names are ignored."""
        return cls(**{name: arguments[name] for name in cls.names() if name in arguments})
