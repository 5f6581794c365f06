"""Drop-in for agent-runner's `SessionManager` and rollouts' `save_trajectory_stream`, backed by a warehouse.

Change the import and nothing else::

    from warehouse.compat.sessions import SessionManager, save_trajectory_stream

    session_manager = SessionManager(workspace)
    await session_manager.save(
        session_id="abc123", messages=[...], config=agent_config, meta={"total_tokens": 1542, "total_cost": 0.0234}
    )
    messages, config, meta = await session_manager.load("abc123")
    sessions = await session_manager.list()

    await save_trajectory_stream(trajectory, "data/train.jsonl")

Where the data goes:

- `SessionManager(workspace)`: `workspace` is a warehouse URL (`s3://bucket/prefix`, any URL with
  `://`), an open `warehouse.Warehouse`, or a local path. A local path that holds a warehouse is
  used as it is; any other local path (the agent's workspace directory) keeps its sessions in the
  warehouse `<workspace>/.agentrunner/sessions`, created on first use, where agent-runner kept its
  session directories. Sessions are `wh.sessions` sessions: the same rows the session-directory
  importer (`wh.import_("sessions", ...)`) writes for agent-runner's own files.
- `save_trajectory_stream(trajectory, output_file)`: the directory (or URL prefix) holding
  `output_file` is the warehouse (created if absent) and the file's name without `.jsonl` is the
  split, exactly as the trajectory-file importer maps `data/train.jsonl`: each call is one
  execution of dataset `trajectories` {split}, agent `rollouts`, with the execution id the importer
  would give that line, committed before the call returns.

Behaviour that differs from the originals, and why:

- `save` of an existing session with the previous messages followed by new ones (how a CLI saves
  after each turn) appends only the new messages and records a new revision with the new config
  and meta; earlier files are never rewritten. A save whose messages do not start with the stored
  ones (the conversation was rewritten, not extended) raises StateError and stores nothing, where
  agent-runner replaced its files: replacing would need a delete and a save, two commits that a
  crash could leave half done. `wh.sessions.delete(id)` and a new save do it deliberately.
- `meta` is stored as agent-runner's meta.json holds it: `schema_version` 1, `created_at` (kept
  from the first save), `updated_at` (now, UTC ISO-8601 with offset rather than naive local time),
  `model` (from the config), then the caller's keys, which win. A key an earlier save gave and a
  later save leaves out is kept (`wh.sessions.append` merges meta), where meta.json was rewritten.
- `load` returns messages as dicts (agent-runner's `Message.to_dict()` form, explicit nulls and
  per-message `meta` kept); agent-runner returned its Message objects, which this package does not
  have. Messages may be given as dicts, objects with `to_dict()`/`model_dump()`, or dataclasses.
  `load` of an unknown id raises SessionNotFound.
- `list` returns the sessions most recently updated first, each {"id", "created_at", "updated_at",
  "model", "tokens", "cost", "message_count"}.
- Bad input (a message or config that is not JSON-serialisable, a non-dict config/meta) raises
  InvalidRecord naming the field, where agent-runner raised json's TypeError; nothing is stored.
- There is no compression setting: the warehouse stores Parquet (compressed) whatever the size.
- One `SessionManager` serialises its own calls (a lock); one session should have one writer at a
  time across processes, as with agent-runner's files.
- `save_trajectory_stream` accepts a `Trajectory` (anything with `to_json()`) or a dict of the same
  keys; anything else raises InvalidRecord. The line it would have appended is validated as the
  importer validates it (InvalidRecord naming the field; nothing stored).
"""

from __future__ import annotations

import asyncio
import builtins
import dataclasses
import hashlib
import json
import os
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import warehouse
from warehouse.core.errors import InvalidRecord, SessionNotFound, StateError
from warehouse.engine import reader
from warehouse.interop.importers import trajectory_files

#: Where a workspace directory keeps its sessions warehouse, relative to the workspace.
SESSIONS_DIR = Path(".agentrunner") / "sessions"
#: The `schema_version` agent-runner writes in meta.json.
SCHEMA_VERSION = 1


def _is_url(location: str) -> bool:
    return "://" in location


def _is_warehouse(path: Path) -> bool:
    return (path / "_manifest").is_dir()


def _open_workspace(workspace: Any) -> warehouse.Warehouse:
    if isinstance(workspace, warehouse.Warehouse):
        return workspace
    if not isinstance(workspace, (str, os.PathLike)):
        raise InvalidRecord(
            f"workspace must be a path, a warehouse URL or a Warehouse, got {type(workspace).__name__} {workspace!r:.80}"
        )
    location = os.fspath(workspace)
    if _is_url(location):
        return warehouse.open(location, create=True)
    path = Path(location).expanduser()
    if not _is_warehouse(path):
        path = path / SESSIONS_DIR
    return warehouse.open(str(path), create=True)


def _plain(value: Any, field: str) -> Any:
    """A message, config or trajectory as JSON-ready data: a dict as it is, else `to_dict()`,
    pydantic's `model_dump(mode="json")`, or a dataclass's fields."""
    if value is None or isinstance(value, Mapping):
        return None if value is None else dict(value)
    if callable(getattr(value, "to_dict", None)):
        return value.to_dict()
    if callable(getattr(value, "model_dump", None)):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise InvalidRecord(f"{field} must be a dict (or an object with to_dict()), got {type(value).__name__}")


def _normal(value: Any) -> Any:
    """`value` as it reads back from JSON (tuples become lists), for comparing stored messages."""
    return json.loads(json.dumps(value, default=str))


def _now() -> str:
    return datetime.now(UTC).isoformat()


class SessionManager:
    """agent-runner's session store, in a warehouse (see the module docstring for `workspace`)."""

    def __init__(self, workspace: Any) -> None:
        self.workspace = workspace
        self.wh = _open_workspace(workspace)
        # One engine, used from worker threads: one call at a time.
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<SessionManager {self.wh.url!r}>"

    async def save(
        self,
        session_id: str,
        messages: list[Any],
        config: Any = None,
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        """Save a session: a new one, or an existing one whose stored messages `messages` starts
        with (the new ones are appended). One commit. Raises InvalidRecord naming a bad field and
        StateError for messages that rewrite the stored ones (nothing is stored either way)."""
        await asyncio.to_thread(self._save, session_id, messages, config, meta)

    async def load(self, session_id: str) -> tuple[list[dict[str, Any]], dict[str, Any] | None, dict[str, Any] | None]:
        """(messages, config, meta) of a session. Raises SessionNotFound for an unknown id."""
        return await asyncio.to_thread(self._load, session_id)

    async def list(self) -> list[dict[str, Any]]:
        """Every session, most recently updated first: dicts of id, created_at, updated_at, model,
        tokens, cost, message_count."""
        return await asyncio.to_thread(self._list)

    # -- the blocking work, in a worker thread -------------------------------------------------------
    def _save(self, session_id: Any, messages: Any, config: Any, meta: Any) -> None:
        if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, (list, tuple)):
            raise InvalidRecord(f"messages must be a list, got {type(messages).__name__} {messages!r:.80}")
        msgs = [_plain(m, f"messages[{i}]") for i, m in enumerate(messages)]
        cfg = _plain(config, "config")
        if meta is not None and not isinstance(meta, Mapping):
            raise InvalidRecord(f"meta must be a dict, got {type(meta).__name__} {meta!r:.80}")
        with self._lock:
            try:
                stored, _, old_meta = self.wh.sessions.load(session_id)
            except SessionNotFound:
                stored, old_meta = None, None
            full = {
                "schema_version": SCHEMA_VERSION,
                "created_at": (old_meta or {}).get("created_at") or _now(),
                "updated_at": _now(),
                **({"model": cfg["model"]} if isinstance(cfg, dict) and "model" in cfg else {}),
                **(meta or {}),
            }
            if stored is None:
                self.wh.sessions.save(msgs, cfg, full, session_id=session_id)
                return
            if _normal(msgs[: len(stored)]) != _normal(stored):
                raise StateError(
                    f"session {session_id!r} holds {len(stored)} messages and these {len(msgs)} do not start "
                    "with them: a save may only add messages after the stored ones; delete the session "
                    f"(wh.sessions.delete({session_id!r})) to save it afresh"
                )
            self.wh.sessions.append(session_id, msgs[len(stored) :], full, config=cfg)

    def _load(
        self, session_id: str
    ) -> tuple[builtins.list[dict[str, Any]], dict[str, Any] | None, dict[str, Any] | None]:
        with self._lock:
            return self.wh.sessions.load(session_id)

    def _list(self) -> builtins.list[dict[str, Any]]:
        with self._lock:
            rows = self.wh.sessions.list().to_dicts()
        out = []
        for r in rows:
            meta = json.loads(r["meta"]) if r["meta"] is not None else {}
            out.append(
                {
                    "id": r["id"],
                    "created_at": meta.get("created_at") or r["created_at"].isoformat(),
                    "updated_at": meta.get("updated_at") or r["updated_at"].isoformat(),
                    "model": meta.get("model"),
                    "tokens": meta.get("total_tokens"),
                    "cost": meta.get("total_cost"),
                    "message_count": r["message_count"],
                }
            )
        return out


def _trajectory_line(trajectory: Any) -> str:
    """The JSONL line rollouts would append for `trajectory` (`to_json()`, or a dict's JSON)."""
    if callable(getattr(trajectory, "to_json", None)):
        line = trajectory.to_json()
        if not isinstance(line, str):
            raise InvalidRecord(f"trajectory.to_json() must return text, got {type(line).__name__}")
        return line
    if isinstance(trajectory, Mapping):
        try:
            return json.dumps(dict(trajectory), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidRecord(f"trajectory is not JSON-serialisable: {exc}") from None
    raise InvalidRecord(f"trajectory must have to_json() or be a dict, got {type(trajectory).__name__}")


def _split_and_location(output_file: Any) -> tuple[str, str]:
    if not isinstance(output_file, (str, os.PathLike)):
        raise InvalidRecord(f"output_file must be a path or URL, got {type(output_file).__name__}")
    name = os.fspath(output_file).rstrip("/")
    if _is_url(name):
        location, _, base = name.rpartition("/")
        if "://" not in location or location.endswith(":/"):
            raise InvalidRecord(f"output_file {name!r} needs a directory part: the warehouse holding the split")
    else:
        p = Path(name).expanduser()
        location, base = str(p.parent), p.name
    split = base[: -len(".jsonl")] if base.endswith(".jsonl") else Path(base).stem
    if not split:
        raise InvalidRecord(f"output_file {name!r} has no file name to take the split from")
    return split, location


def _execution_id(split: str, line: str, occurrence: int) -> str:
    """The id the trajectory-file importer gives the `occurrence`-th line equal to `line` of a split's file."""
    digest = hashlib.sha256(line.strip().encode("utf-8")).hexdigest()
    h = hashlib.sha256("\0".join([trajectory_files.IMPORTER.kind, split, digest, str(occurrence)]).encode("utf-8"))
    return h.hexdigest()[:32]


def _stream(trajectory: Any, output_file: Any) -> str:
    split, location = _split_and_location(output_file)
    line = _trajectory_line(trajectory)
    try:
        doc = json.loads(line)
    except json.JSONDecodeError as exc:
        raise InvalidRecord(f"trajectory.to_json() is not JSON: {exc.msg}") from None
    if not isinstance(doc, dict):
        raise InvalidRecord(f"a trajectory must be a JSON object, got {type(doc).__name__}")
    fields = trajectory_files.trajectory_fields(doc)  # InvalidRecord before anything is opened
    wh = warehouse.open(location, create=True)
    # The n-th identical line gets the n-th id, as in the importer: count those stored already.
    n = 1
    while True:
        eid = _execution_id(split, line, n)
        # The manifest's id ranges rule out almost every file (ids are hashes): most calls open no
        # file and start no DuckDB connection, which is most of the cost of one call otherwise.
        if not reader.files_holding(wh.snapshot.table_files("executions"), "execution_id", eid) or not (
            wh.engine.lookup("executions", "execution_id", eid, "select 1 from t where execution_id = ? limit 1", [eid])
        ):
            break
        n += 1
    with wh.writer(
        dataset={"type": trajectory_files.DATASET_TYPE, "config": {"split": split}},
        agent=trajectory_files.AGENT,
        flush_interval=None,
    ) as w:
        w.add_execution(**fields, execution_id=eid)
    return eid


async def save_trajectory_stream(trajectory: Any, output_file: str) -> None:
    """Store one trajectory as the line rollouts would append to `output_file` (see the module
    docstring: the file's directory is the warehouse, its name the split); committed on return.
    Raises InvalidRecord naming a bad field (nothing stored)."""
    await asyncio.to_thread(_stream, trajectory, output_file)


__all__ = ["SessionManager", "save_trajectory_stream", "SESSIONS_DIR"]
