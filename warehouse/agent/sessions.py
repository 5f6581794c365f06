"""Conversation sessions (what the agent-runner `SessionManager` kept as messages.jsonl + config.json
+ meta.json per directory): saved, appended to, loaded, listed and deleted through the warehouse.

All sessions live in one partition (dataset `sessions`, agent `session`, benign). A session is
rows of two tables: `sessions`, one row per revision (save = revision 0, each append one more,
the `sessions` view shows the latest), and `messages`, one row per message with `execution_id`
= the session id and `seq` counting from 0 across appends. Every save and append is one commit
that adds new files only; earlier files are never rewritten, except by `delete`.

One session has one writer at a time: two processes appending to the same session at once could
both number their messages from the same `seq` (the warehouse does not lock a session).
"""

from __future__ import annotations

import builtins
import json
import secrets
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc

from warehouse.core import records
from warehouse.core.config import RunConfig
from warehouse.core.errors import CommitConflict, InvalidRecord, SessionNotFound, StateError
from warehouse.core.records import MESSAGE_ROW
from warehouse.core.rows import RowShape
from warehouse.core.schemas import catalog
from warehouse.engine.rewrite import RewritePlan, commit_rewrite, plan_rewrite
from warehouse.write.writer import Writer

if TYPE_CHECKING:
    import polars as pl

    from warehouse.engine.engine import Engine

#: The run configuration whose partition holds every session.
DATASET = {"type": "sessions", "config": {}}
AGENT = {"type": "session", "config": {}}
#: The tuples of a session revision (`save`, `rename`, the session-dirs importer), by name.
SESSION_ROW = RowShape(
    "sessions", ("session_id", "revision", "created_at", "updated_at", "title", "message_count", "config", "meta")
)
#: Longest title taken from the first user message, in characters.
TITLE_CHARS = 80

# Message keys that `records.message_from_row` restores only when not None: a message that
# carries one of them explicitly as None keeps it through metadata["extra"] (see _keep_nulls).
_DROPPED_IF_NONE = ("tool_calls", "tool_call_id", "name", "step", "timestamp", "tokens")
_DELETE_ATTEMPTS = 5


def _partition() -> dict[str, str]:
    return RunConfig.of(DATASET, AGENT, None).partition


def _new_id() -> str:
    """32 hex digits, time-ordered like UUIDv7: 48 bits of milliseconds, 80 random bits."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.randbits(80):020x}"


def _keep_nulls(messages: Any) -> Any:
    """Messages with keys explicitly set to None (`"tool_calls": null` in agent-runner's
    messages.jsonl) rewritten so that they come back as written: those keys, and any unknown
    keys, go to metadata["extra"], which `records.message_from_row` merges back."""
    if isinstance(messages, tuple):
        messages = list(messages)
    if not isinstance(messages, list):
        return messages
    out = []
    for m in messages:
        if isinstance(m, Mapping) and any(k in m and m[k] is None for k in _DROPPED_IF_NONE):
            known = {
                k: v for k, v in m.items() if k in records.MESSAGE_FIELDS and not (k in _DROPPED_IF_NONE and v is None)
            }
            extra = {
                k: v for k, v in m.items() if k not in records.MESSAGE_FIELDS or (k in _DROPPED_IF_NONE and v is None)
            }
            meta = m.get("metadata")
            if meta is not None and not isinstance(meta, Mapping):
                out.append(m)  # let records name the bad metadata
                continue
            known["metadata"] = {**(meta or {}), "extra": extra}
            out.append(known)
        else:
            out.append(m)
    return out


def _first_user_text(rows: list[tuple]) -> str | None:
    """The text of the first user message among `messages` rows, on one line, cut to TITLE_CHARS."""
    for r in rows:
        if r[2] == "user" and r[3]:
            text = " ".join(r[3].split())
            if text:
                return text[:TITLE_CHARS]
    return None


def _meta(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise InvalidRecord(f"meta must be a dict, got {type(value).__name__} {value!r:.80}")
    return dict(value)


class Sessions:
    """The conversation sessions of a warehouse (`wh.sessions`).

    One session has one writer at a time: concurrent appends to the same session from two
    processes could both take the same message `seq`. Different sessions may be written from
    any number of processes at once.
    """

    def __init__(self, wh: Engine) -> None:
        self.wh = wh
        self.partition = _partition()

    # -- reading -------------------------------------------------------------------------------
    def _where(self) -> tuple[str, list[str]]:
        cols = catalog().partition_columns
        return " and ".join(f"{c} = ?" for c in cols), [self.partition[c] for c in cols]

    def _latest(self, session_id: str) -> dict[str, Any] | None:
        where, params = self._where()
        found = self.wh.engine.records(
            f"select * from sessions where {where} and session_id = ?", [*params, session_id]
        )
        return found[0] if found else None

    def _require(self, session_id: Any) -> dict[str, Any]:
        if not isinstance(session_id, str) or not session_id:
            raise SessionNotFound(f"no session with id {session_id!r}: a session id is a non-empty string")
        self.wh.refresh()
        row = self._latest(session_id)
        if row is None:
            raise SessionNotFound(
                f"no session with id {session_id!r} at version {self.wh.version}; "
                "see wh.sessions.list() for the sessions there are"
            )
        return row

    def load(self, session_id: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any] | None]:
        """(messages in order, as written; config; meta) of a session, after reading the commits of
        other processes. Raises SessionNotFound for an unknown id."""
        row = self._require(session_id)
        where, params = self._where()
        msgs = self.wh.engine.records(
            f"select * from messages where {where} and execution_id = ? order by seq", [*params, session_id]
        )
        config = json.loads(row["config"]) if row["config"] is not None else None
        meta = json.loads(row["meta"]) if row["meta"] is not None else None
        return [records.message_from_row(m) for m in msgs], config, meta

    def list(self) -> pl.DataFrame:
        """Every session, most recently updated first: columns id, created_at, updated_at (UTC
        timestamps), message_count, title, meta (the merged meta as JSON text, or null)."""
        self.wh.refresh()
        where, params = self._where()
        return self.wh.sql(
            "select session_id as id, created_at, updated_at, message_count, title, meta from sessions "
            f"where {where} order by updated_at desc, session_id desc",
            params,
        ).pl()

    # -- writing -------------------------------------------------------------------------------
    def _commit(self, session_row: tuple, msg_rows: builtins.list[tuple], text_bytes: int) -> None:
        """The session revision and its new messages in one commit (no size-triggered flush)."""
        w = Writer(
            self.wh.engine, dataset=DATASET, agent=AGENT, flush_interval=None, flush_rows=1 << 62, flush_bytes=1 << 62
        )
        try:
            if msg_rows:
                w._add_rows(MESSAGE_ROW, msg_rows, text_bytes)
            w._add_rows(SESSION_ROW, [session_row])
        finally:
            w.close()

    def save(
        self,
        messages: Any,
        config: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
        session_id: str | None = None,
        title: str | None = None,
    ) -> str:
        """Create a session holding `messages` (dicts in OpenAI chat form; other keys are kept), the
        agent `config` and `meta` (JSON-serialisable dicts); returns its id, a new time-ordered
        32-hex-digit id unless `session_id` is given. One commit.

        The title is `title`, else meta["title"], else the first user message's text on one line,
        cut to 80 characters. Raises InvalidRecord naming a bad field (nothing is stored), and
        WarehouseError if `session_id` already exists (add to it with `append`).
        """
        sid = records.ident("session_id", session_id, required=False)
        meta = _meta(meta)
        if config is not None and not isinstance(config, Mapping):
            raise InvalidRecord(f"config must be a dict, got {type(config).__name__} {config!r:.80}")
        title = records.text("title", title)
        if sid is not None:
            self.wh.refresh()
            if self._latest(sid) is not None:
                raise StateError(
                    f"session {sid!r} already exists; add messages to it with wh.sessions.append(session_id, messages)"
                )
        else:
            sid = _new_id()
        rows, size = records.messages(sid, _keep_nulls(messages), 0)
        if title is None and meta is not None and meta.get("title") is not None:
            title = records.text("meta.title", meta["title"])
        if title is None:
            title = _first_user_text(rows)
        now = datetime.now(UTC)
        row = (sid, 0, now, now, title, len(rows), records.json_text("config", config), records.json_text("meta", meta))
        self._commit(row, rows, size)
        return sid

    def append(
        self,
        session_id: str,
        messages: Any,
        meta: Mapping[str, Any] | None = None,
        *,
        config: Mapping[str, Any] | None = None,
    ) -> int:
        """Add `messages` after a session's last one, without rewriting earlier files, and a new
        revision of the session (updated_at now; `meta` merged key by key over the previous meta;
        a "title" in `meta` becomes the title; `config`, when given, replaces the config). One
        commit. Returns the new message count.

        One writer per session at a time (see the module docstring). Raises SessionNotFound for
        an unknown id, InvalidRecord naming a bad field (nothing is stored).
        """
        prev = self._require(session_id)
        meta = _meta(meta)
        if config is not None and not isinstance(config, Mapping):
            raise InvalidRecord(f"config must be a dict, got {type(config).__name__} {config!r:.80}")
        config_text = prev["config"] if config is None else records.json_text("config", config)
        start = int(prev["message_count"])
        rows, size = records.messages(session_id, _keep_nulls(messages), start)
        old_meta = json.loads(prev["meta"]) if prev["meta"] is not None else None
        merged = {**(old_meta or {}), **meta} if meta is not None else old_meta
        title = prev["title"]
        if meta is not None and meta.get("title") is not None:
            title = records.text("meta.title", meta["title"])
        elif title is None:
            title = _first_user_text(rows)
        count = start + len(rows)
        row = (
            session_id,
            int(prev["revision"]) + 1,
            prev["created_at"],
            datetime.now(UTC),
            title,
            count,
            config_text,
            records.json_text("meta", merged),
        )
        self._commit(row, rows, size)
        return count

    def delete(self, session_id: str) -> None:
        """Remove a session: its rows leave `sessions` and `messages` in one commit (operation
        `delete`; files holding only its rows are dropped, others rewritten without them, and
        vacuum deletes the old files after its retention window). Other sessions are untouched.

        Raises SessionNotFound for an unknown id; CommitConflict if concurrent compactions or
        deletes kept removing the same files.
        """
        self._require(session_id)
        sid = pa.scalar(session_id, pa.string())
        for attempt in range(_DELETE_ATTEMPTS):
            plan = RewritePlan()
            plan.merge(
                plan_rewrite(
                    self.wh, self.wh.files("sessions", self.partition), lambda t: pc.equal(t.column("session_id"), sid)
                )
            )
            plan.merge(
                plan_rewrite(
                    self.wh,
                    self.wh.files("messages", self.partition),
                    lambda t: pc.equal(t.column("execution_id"), sid),
                )
            )
            try:
                commit_rewrite(self.wh, plan, operation="delete", info={"session_id": session_id})
                return
            except CommitConflict:
                if attempt == _DELETE_ATTEMPTS - 1:
                    raise
                self.wh.refresh()  # a file it removes was removed meanwhile: plan again


__all__ = ["Sessions", "DATASET", "AGENT"]
