"""Import agent-runner session directories (`~/.agentrunner/sessions/<id>/`) into `wh.sessions`.

A session directory holds `messages.jsonl` (one message per line; `messages.jsonl.gz` once it
passed 1 KB, which wins over a stale uncompressed file, as agent-runner's own `load` does),
`config.json` and `meta.json` (either may be missing: the session then has no config/meta). The
session id is the directory name. Each directory is one source, whose fingerprint covers the id
and the three files' contents (decompressed), so an unchanged session is never read twice.

An imported session reads back through `wh.sessions.load(id)` exactly as `wh.sessions.save`
would have stored the same messages (ids, explicit nulls and per-message `meta` included), and
`wh.sessions.list()` shows it with the created_at/updated_at of its meta.json. When a directory
changed since it was imported (agent-runner rewrites messages.jsonl on every save), the messages
beyond those already stored are appended and a new revision of the session records the current
config and meta, so `load` returns the whole current conversation. If the stored messages are not
a prefix of the file's (the conversation was rewritten rather than extended), the directory is
reported as failed and nothing is changed: delete the session (`wh.sessions.delete`) to import it
afresh. Leftover `*.tmp` files of interrupted atomic writes are ignored.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from warehouse.agent import sessions
from warehouse.agent.sessions import SESSION_ROW
from warehouse.core import records
from warehouse.core.errors import ImportFailed, InvalidRecord
from warehouse.core.records import MESSAGE_ROW
from warehouse.interop.importers.base import Source, SourceRecorder

MESSAGES = "messages.jsonl"
MESSAGES_GZ = "messages.jsonl.gz"
FILES = ("messages", "config", "meta")


def _loads(text: str | bytes, where: str) -> Any:
    """JSON value of `text` (orjson first; Python's parser for what orjson refuses, such as the NaN
    that Python's json.dumps writes, so that validation can name the field); ImportFailed naming
    `where` and the position for text that is not JSON."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise ImportFailed(f"{where}: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
        except UnicodeDecodeError as exc:
            raise ImportFailed(f"{where}: not UTF-8 text (byte {exc.start}: {exc.reason})") from None


def tag(name: str, data: bytes) -> bytes:
    """`data` prefixed with the name it is imported under (a session id, a rollout, a split), so that
    the fingerprint covers it: the same content under two names is two sources, not one."""
    return name.encode("utf-8", "surrogateescape") + b"\n" + data


def untag(data: bytes) -> tuple[str, bytes]:
    """The inverse of `tag`."""
    nl = data.index(b"\n")
    return data[:nl].decode("utf-8", "surrogateescape"), data[nl + 1 :]


def _frame(parts: dict[str, bytes | None]) -> bytes:
    """The three files' contents in one byte string: `name length\\n content` per present file."""
    out = bytearray()
    for name in FILES:
        data = parts[name]
        if data is not None:
            out += f"{name} {len(data)}\n".encode() + data
    return bytes(out)


def _unframe(data: bytes) -> dict[str, bytes | None]:
    parts: dict[str, bytes | None] = dict.fromkeys(FILES)
    pos = 0
    while pos < len(data):
        nl = data.index(b"\n", pos)
        name, size = data[pos:nl].decode().split(" ")
        start = nl + 1
        parts[name] = data[start : start + int(size)]
        pos = start + int(size)
    return parts


def parse_messages(data: bytes, name: str = MESSAGES) -> list[dict[str, Any]]:
    """The messages of a messages.jsonl (blank lines skipped); ImportFailed naming the line of any
    line that is not a JSON object."""
    out = []
    for n, line in enumerate(data.split(b"\n"), 1):
        if not line.strip():
            continue
        m = _loads(line, f"{name} line {n}")
        if not isinstance(m, dict):
            raise ImportFailed(f"{name} line {n}: a message must be a JSON object, got {type(m).__name__} {m!r:.80}")
        out.append(m)
    return out


def _object(data: bytes | None, name: str) -> dict[str, Any] | None:
    if data is None:
        return None
    value = _loads(data, name)
    if not isinstance(value, dict):
        raise ImportFailed(f"{name} must hold a JSON object, got {type(value).__name__} {value!r:.80}")
    return value


def _when(meta: dict[str, Any] | None, key: str) -> datetime | None:
    """meta[key] as a UTC timestamp, if it is one (meta is stored whole either way)."""
    if meta is None or meta.get(key) is None:
        return None
    try:
        return records.timestamp(f"meta.{key}", meta[key])
    except InvalidRecord:
        return None


class SessionDirImporter:
    """Sources: every directory holding messages.jsonl or messages.jsonl.gz (the path itself, or
    any below it); key = the directory relative to the import root (its name for the root)."""

    kind = "sessions"

    def sources(self, path: str) -> Iterator[Source]:
        """Every session directory under `path` (or `path` itself), in path order."""
        root = Path(path)
        if not root.exists():
            raise ImportFailed(f"{path}: no such file or directory")
        if root.is_file():
            if root.name not in (MESSAGES, MESSAGES_GZ):
                raise ImportFailed(f"{path}: not a session directory (give the directory holding {MESSAGES})")
            root = root.parent
        if _is_session(root):
            dirs = [root]
        else:
            dirs = sorted({p.parent for name in (MESSAGES, MESSAGES_GZ) for p in root.rglob(name) if p.is_file()})
        seen: dict[str, Path] = {}
        for d in dirs:
            key = d.name if d == root else d.relative_to(root).as_posix()
            # Two directories of one session id cannot both be imported in one go (their
            # revisions would interleave): the second is reported, naming the first.
            payload = {"other": str(seen[d.name])} if d.name in seen else None
            seen.setdefault(d.name, d)
            yield Source(key, str(d), None, payload)

    def load(self, source: Source) -> bytes:
        """messages (decompressed), config.json and meta.json of the directory, framed."""
        d = Path(source.path)  # type: ignore[arg-type]
        gz, plain = d / MESSAGES_GZ, d / MESSAGES
        if gz.is_file():
            name, messages = MESSAGES_GZ, gz.read_bytes()
        elif plain.is_file():
            name, messages = MESSAGES, plain.read_bytes()
        else:
            raise ImportFailed(f"no {MESSAGES} or {MESSAGES_GZ} in the session directory")
        if messages[:2] == b"\x1f\x8b":  # gzip, whatever the file's name says
            try:
                messages = gzip.decompress(messages)
            except (OSError, EOFError, zlib.error) as exc:
                raise ImportFailed(f"{name} is not a complete gzip file ({exc})") from None
        parts: dict[str, bytes | None] = {"messages": messages}
        for name in ("config", "meta"):
            p = d / f"{name}.json"
            parts[name] = p.read_bytes() if p.is_file() else None
        return tag(d.name, _frame(parts))

    def read(self, source: Source, data: bytes, out: SourceRecorder) -> None:
        """One session: a new one (revision 0), or the messages added since its stored revision."""
        name, framed = untag(data)
        if source.payload and source.payload.get("other"):
            raise ImportFailed(
                f"session id {name!r} is also the directory {source.payload['other']}; "
                "import the two directories separately"
            )
        parts = _unframe(framed)
        sid = records.ident("session_id", name)
        msgs = parse_messages(parts["messages"] or b"", MESSAGES)
        config = _object(parts["config"], "config.json")
        meta = _object(parts["meta"], "meta.json")
        kept = sessions._keep_nulls(msgs)
        wh = out.warehouse  # the warehouse being imported into (read-only use: what is stored already)
        prev = _stored(wh, sid)
        start, revision = 0, 0
        created = _when(meta, "created_at") or datetime.now(UTC)
        title = None
        if prev is not None:
            start, revision, created, title = (
                int(prev["message_count"]),
                int(prev["revision"]) + 1,
                prev["created_at"],
                prev["title"],
            )
            _check_prefix(wh, sid, kept, start)
        rows, size = records.messages(sid, kept[start:], start)
        if meta is not None and meta.get("title") is not None:
            title = records.text("meta.title", meta["title"])
        if title is None:
            title = sessions._first_user_text(records.messages(sid, kept, 0)[0] if start else rows)
        updated = _when(meta, "updated_at") or datetime.now(UTC)
        row = (
            sid,
            revision,
            created,
            updated,
            title,
            len(kept),
            records.json_text("config", config),
            records.json_text("meta", meta),
        )
        w = out.writer(sessions.DATASET, sessions.AGENT)
        out.rows(w, MESSAGE_ROW, rows, size)
        out.rows(w, SESSION_ROW, [row])


def _is_session(d: Path) -> bool:
    return (d / MESSAGES).is_file() or (d / MESSAGES_GZ).is_file()


def _stored(wh: Any, sid: str) -> dict[str, Any] | None:
    """The latest stored revision of session `sid`, or None."""
    wh.refresh()
    found = wh.engine.records(
        "select revision, created_at, title, message_count from sessions where dataset = ? "
        "and agent = ? and session_id = ?",
        [sessions.DATASET["type"], sessions.AGENT["type"], sid],
    )
    return found[0] if found else None


def _check_prefix(wh: Any, sid: str, kept: list[Any], stored: int) -> None:
    """ImportFailed unless the `stored` messages of session `sid` are the file's first messages."""
    if len(kept) < stored:
        raise ImportFailed(
            f"session {sid!r} has {stored} messages in the warehouse but only {len(kept)} in "
            f"{MESSAGES}: the file is older than what was imported, or was rewritten; "
            f"delete the session (wh.sessions.delete({sid!r})) to import it afresh"
        )
    have, _, _ = sessions.Sessions(wh.engine).load(sid)
    fresh = [records.message_from_row(_as_row(r)) for r in records.messages(sid, kept[:stored], 0)[0]]
    for i, (a, b) in enumerate(zip(have, fresh)):
        if a != b:
            raise ImportFailed(
                f"session {sid!r}: message {i} of {MESSAGES} differs from the one imported before "
                "(the conversation was rewritten, not extended); delete the session "
                f"(wh.sessions.delete({sid!r})) to import it afresh"
            )


# The message row's columns as builders emit them, without the write id (not part of a message's content).
_MESSAGE_COLUMNS = tuple(c for c in MESSAGE_ROW.columns if c != "write_id")


def _as_row(row: tuple) -> dict[str, Any]:
    return dict(zip(_MESSAGE_COLUMNS, row))


IMPORTER = SessionDirImporter()
