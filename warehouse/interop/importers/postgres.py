"""Import the results service's PostgreSQL database (`warehouse import postgres postgresql://...`).

The service (shared/reference/results-persistence-service-postgres.md, a Prisma schema) keeps four
tables; each row is one source, keyed "<table>/<id>", whose content is a canonical JSON encoding of
the row (so its fingerprint changes exactly when the row does):

- `AgentResult` -> `executions`: `metadata.executionId` (else the row id) is the execution id, the
  quest checkpoint `checkpointId` (else the row id) the task id, `agentId` the owner, `result` the
  result, `createdAt`/`completedAt` started/finished_at, `metadata.error` the error and
  `metadata.messages` (role dicts, or LangChain's serialised messages) the conversation. Status
  `running` becomes a revision in `executions_live`; completed and failed rows (failed_recoverable,
  failed_permanent, timeout, cancelled count as failed) final rows.
- `ExecutionLog` -> `events` of kind `log` (level, message, source, timestamp).
- `AgentTrace` -> `events` of the trace's type (tool_start/tool_end/tool_error), with `duration`
  as duration_ms, the trace metadata as attributes, and its `runId`/`parentRunId` as span ids.
- `CheckpointState` -> `snapshots` of kind `checkpoint` (read back with `wh.executions.checkpoints` /
  `latest_checkpoint`): the execution is `state.metadata.executionId`, else the `threadId` without
  the service's `thread_` prefix; `state.step` is the step.

Whatever has no column of its own (the row id, questId, an unmapped status, columns added by later
migrations) is kept under the key "results_service" of the row's metadata (events: attributes).
Rows are read in one repeatable-read, read-only transaction through server-side cursors, so the
four tables are one consistent snapshot and memory holds encoded rows, not result sets.

A row that changed since it was imported is imported again: a running result that finished gets its
final row; a checkpoint upserted with a new state becomes another checkpoint of its execution (its
snapshot id gets "@<content hash>"); a changed log or trace adds its new version as an event. A
result that was already imported as completed or failed and changed since is refused (reported):
importing it again would count the execution twice.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import orjson

from warehouse.core import records
from warehouse.core.errors import ImportFailed, InvalidRecord
from warehouse.interop.importers.base import Source, SourceRecorder
from warehouse.write.live import EVENT_ROW, SNAPSHOT_ROW
from warehouse.write.writer import EXECUTION_LIVE_ROW

#: The service's tables, in import order, with the columns the service defines and the column
#: rows are ordered by (then by id).
TABLES: dict[str, tuple[tuple[str, ...], str]] = {
    "AgentResult": (
        ("id", "agentId", "checkpointId", "questId", "result", "metadata", "status", "createdAt", "completedAt"),
        "createdAt",
    ),
    "CheckpointState": (("id", "agentId", "checkpointId", "state", "threadId", "createdAt"), "createdAt"),
    "ExecutionLog": (("id", "agentId", "executionId", "level", "message", "source", "timestamp"), "timestamp"),
    "AgentTrace": (
        ("id", "agentId", "executionId", "type", "content", "metadata", "timestamp", "duration"),
        "timestamp",
    ),
}
#: The run configuration every imported row belongs to (the service records no dataset or agent config).
DATASET = {"type": "results-service", "config": {}}
AGENT = {"type": "results-service", "config": {}}
#: The key of metadata/attributes holding the row's columns that have no warehouse column.
SERVICE_KEY = "results_service"
#: Rows fetched per round trip of a server-side cursor.
PAGE_ROWS = 2_000

_RUNNING = frozenset({"running"})
_COMPLETED = frozenset({"completed"})
_FAILED = frozenset({"failed", "failed_recoverable", "failed_permanent", "timeout", "cancelled"})
_LC_ROLES = {
    "HumanMessage": "user",
    "HumanMessageChunk": "user",
    "AIMessage": "assistant",
    "AIMessageChunk": "assistant",
    "SystemMessage": "system",
    "ToolMessage": "tool",
    "FunctionMessage": "function",
}
_TOOL_CONTENT = re.compile(r"Tool: (\S.*)\Z", re.S)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# -- connecting ----------------------------------------------------------------------------------
def parse_url(url: str) -> tuple[str, str | None, str]:
    """(libpq connection string, schema or None, "host:port/db" for messages) of a connection URL.

    Prisma's `?schema=name` parameter (which libpq does not know) selects the schema; a libpq
    key=value string works too. Raises ImportFailed (without the password) for anything else."""
    from psycopg.conninfo import conninfo_to_dict

    schema = None
    conninfo = url
    try:
        if url.startswith(("postgresql://", "postgres://")):
            parts = urlsplit(url)
            query = parse_qsl(parts.query, keep_blank_values=True)
            schema = next((v for k, v in query if k == "schema"), None)
            conninfo = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "schema"])))
        params = conninfo_to_dict(conninfo)
    except Exception as exc:
        raise ImportFailed(f"not a PostgreSQL connection URL: {redact(url)} ({_clean(str(exc), url)})") from None
    host = params.get("host") or params.get("hostaddr") or "localhost"
    where = f"{host}:{params.get('port') or 5432}/{params.get('dbname') or params.get('user') or ''}"
    return conninfo, schema, where


def redact(url: str) -> str:
    """`url` with its password (if any) replaced by ***."""
    if url.startswith(("postgresql://", "postgres://")):
        try:
            parts = urlsplit(url)
            if parts.password is None:
                return url
            host = parts.netloc.rsplit("@", 1)[-1]
            return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
        except ValueError:  # not parseable: hide everything between the scheme and the last "@"
            return re.sub(r"^([a-z]+://).*@", r"\1***@", url)
    return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", url)


def _clean(message: str, url: str) -> str:
    """A driver error message on one line, without the password."""
    from psycopg.conninfo import conninfo_to_dict

    text = " ".join(message.split())
    try:
        password = conninfo_to_dict(url.split("?", 1)[0]).get("password")
    except Exception:
        password = None
    return text.replace(str(password), "***") if password else text


def _connect(url: str) -> tuple[Any, str, str]:
    """(a read-only repeatable-read connection, the schema to read, "host:port/db")."""
    import psycopg

    conninfo, schema, where = parse_url(url)
    try:
        conn = psycopg.connect(conninfo, connect_timeout=10, application_name="warehouse-import")
    except psycopg.Error as exc:
        raise ImportFailed(f"cannot connect to PostgreSQL at {where}: {_clean(str(exc), url)}") from None
    conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    conn.read_only = True
    if schema is None:
        row = conn.execute("select current_schema()").fetchone()
        if row is None:  # a query of one value returns a row; never seen otherwise
            raise ImportFailed(f"PostgreSQL at {where} did not name its current schema")
        schema = row[0]
    return conn, schema, where


def _tables(conn: Any, schema: str, where: str) -> dict[str, list[str]]:
    """The service's tables present in `schema` -> their columns; ImportFailed if none is, or one
    lacks a column the service defines."""
    rows = conn.execute(
        "select table_name, column_name from information_schema.columns "
        "where table_schema = %s and table_name = any(%s) order by ordinal_position",
        [schema, list(TABLES)],
    ).fetchall()
    found: dict[str, list[str]] = {}
    for table, column in rows:
        found.setdefault(table, []).append(column)
    if not found:
        raise ImportFailed(
            f"{where}: schema {schema!r} holds none of the results service's tables ({', '.join(TABLES)})"
        )
    for table, columns in found.items():
        missing = [c for c in TABLES[table][0] if c not in columns]
        if missing:
            raise ImportFailed(f"{where}: table {schema}.{table} lacks column(s) {missing} of the results service")
    return found


# -- encoding rows -------------------------------------------------------------------------------
def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    return str(value)


def encode_row(table: str, row: Mapping[str, Any]) -> bytes:
    """The canonical JSON of one row (sorted keys, timestamps as ISO-8601 in UTC: Prisma's
    `timestamp(3)` columns hold UTC without a zone): equal rows give equal bytes."""
    doc = {"table": table, "row": row}
    try:
        return orjson.dumps(doc, default=_default, option=orjson.OPT_SORT_KEYS | orjson.OPT_NAIVE_UTC)
    except TypeError:  # e.g. an integer beyond 64 bits in a JSON column
        return json.dumps(doc, default=_default, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode(
            "utf-8"
        )


# -- the importer --------------------------------------------------------------------------------
class PostgresImporter:
    """Rows of the results service's tables, read from a live PostgreSQL server."""

    kind = "postgres"

    def display_path(self, path: str) -> str:
        """The connection URL as reports and the `imports` ledger should show it: without the password."""
        return redact(path)

    def sources(self, path: str) -> Iterator[Source]:
        """One source per row of AgentResult, CheckpointState, ExecutionLog, AgentTrace (those
        present), oldest first. `path` is the connection URL. Raises ImportFailed naming host:port
        (never the password) if the server cannot be reached or holds none of those tables."""
        from psycopg import sql

        conn, schema, where = _connect(path)
        try:
            with conn.transaction():
                present = _tables(conn, schema, where)
                for table in (t for t in TABLES if t in present):
                    order = TABLES[table][1]
                    query = sql.SQL("select * from {}.{} order by {}, {}").format(
                        sql.Identifier(schema), sql.Identifier(table), sql.Identifier(order), sql.Identifier("id")
                    )
                    with conn.cursor(name=f"warehouse_import_{table.lower()}") as cur:
                        cur.itersize = PAGE_ROWS
                        cur.execute(query)
                        names = [d.name for d in cur.description]
                        for values in cur:
                            row = dict(zip(names, values))
                            payload = encode_row(table, row)
                            key = f"{table}/{row['id']}"
                            yield Source(key, f"{where} {key}", len(payload), payload)
        except ImportFailed:
            raise
        except Exception as exc:
            raise ImportFailed(f"reading PostgreSQL at {where}: {_clean(str(exc), path)}") from None
        finally:
            conn.close()

    def load(self, source: Source) -> bytes:
        """The row's canonical JSON (read with the row by `sources`)."""
        return source.payload

    def read(self, source: Source, data: bytes, out: SourceRecorder) -> None:
        """Map one row to its records; raises InvalidRecord/ImportFailed naming what cannot be mapped."""
        doc = orjson.loads(data)
        row = doc["row"]
        mapper = _MAPPERS[doc["table"]]
        mapper(row, _extras(doc["table"], row), data, out)


IMPORTER = PostgresImporter()


# -- mapping rows --------------------------------------------------------------------------------
def _extras(table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    known = TABLES[table][0]
    return {k: v for k, v in row.items() if k not in known}


def _with_service(what: str, meta: Any, service: dict[str, Any]) -> dict[str, Any]:
    """`meta` (a JSON object, or any other value kept under "metadata") plus the row's own columns."""
    if meta is None:
        out: dict[str, Any] = {}
    elif isinstance(meta, dict):
        if SERVICE_KEY in meta:
            raise InvalidRecord(f"{what} already has a key {SERVICE_KEY!r}, where the import keeps the row's columns")
        out = dict(meta)
    else:
        out = {"metadata": meta}
    out[SERVICE_KEY] = service
    return out


def _writer(out: SourceRecorder) -> Any:
    return out.writer(DATASET, AGENT)


def _required_time(field: str, value: Any) -> datetime:
    ts = records.timestamp(field, value)
    if ts is None:
        raise InvalidRecord(f"{field} is required")
    return ts


def _micros(ts: datetime) -> int:
    return (ts - _EPOCH) // timedelta(microseconds=1)


def _agent_result(row: dict[str, Any], extras: dict[str, Any], data: bytes, out: SourceRecorder) -> None:
    rid = records.ident("id", row["id"])
    meta = row.get("metadata")
    rest = dict(meta) if isinstance(meta, dict) else ({} if meta is None else {"metadata": meta})
    eid = rest.pop("executionId", None)
    eid = rid if eid is None else records.ident("metadata.executionId", eid)
    messages = _messages(rest.pop("messages")) if "messages" in rest else None
    error = rest.pop("error") if isinstance(rest.get("error"), str) else None
    raw_status = row.get("status")
    if raw_status in _COMPLETED:
        status = "completed"
    elif raw_status in _FAILED:
        status = "failed"
    elif raw_status in _RUNNING:
        status = "running"
    else:
        known = sorted(_RUNNING | _COMPLETED | _FAILED)
        raise InvalidRecord(f"status must be one of {known}, got {raw_status!r}")
    service = {
        "id": rid,
        "checkpointId": row.get("checkpointId"),
        "questId": row.get("questId"),
        "status": raw_status,
        **extras,
    }
    metadata = _with_service("metadata", rest, service)
    task_id = row.get("checkpointId") or rid
    w = _writer(out)
    fields = dict(
        started_at=row.get("createdAt"), owner=row.get("agentId"), result=row.get("result"), metadata=metadata
    )
    previous = _previous_revisions(out, eid) if out.changed else []
    done = [s for s, _ in previous if s != "running"]
    if done:
        raise ImportFailed(
            f"execution {eid} was imported as {done[0]} before and its row changed since "
            f"(now {raw_status}): a finished execution is imported once"
        )
    if status == "running":
        if messages is not None:  # live revisions carry no messages: keep them with the revision
            fields["metadata"] = {**metadata, "messages": messages}
        revision = 1 + max((r for _, r in previous), default=0)
        live = w._execution_row(eid, task_id, revision, "running", fields)
        out.rows(w, EXECUTION_LIVE_ROW, [live], len(row.get("result") or ""))
        return
    out.execution(
        w,
        execution_id=eid,
        task_id=task_id,
        status=status,
        error=error,
        finished_at=row.get("completedAt"),
        messages=messages,
        **fields,
    )


def _previous_revisions(out: SourceRecorder, execution_id: str) -> list[tuple[str, int]]:
    """(status, revision) of every row the warehouse holds of `execution_id`, final and live."""
    wh = out.warehouse
    snapshot = wh.snapshot
    if not snapshot.table_files("executions") and not snapshot.table_files("executions_live"):
        return []
    return wh.sql("select status, revision from executions_all where execution_id = ?", [execution_id]).fetchall()


def _messages(value: Any) -> list[Any]:
    """The conversation of `metadata.messages`: role dicts pass through (records validates them);
    LangChain's serialised messages ({"lc": 1, "type": "constructor", "id": [..., "AIMessage"],
    "kwargs": {...}}) become role dicts, their other fields kept in the message's metadata."""
    if not isinstance(value, list):
        raise InvalidRecord(f"metadata.messages must be a list of messages, got {type(value).__name__}")
    return [
        _langchain(i, m) if isinstance(m, dict) and m.get("lc") == 1 and m.get("type") == "constructor" else m
        for i, m in enumerate(value)
    ]


def _langchain(i: int, m: dict[str, Any]) -> dict[str, Any]:
    ident = m.get("id")
    cls = ident[-1] if isinstance(ident, list) and ident else None
    kwargs = dict(m.get("kwargs") or {})
    role = kwargs.pop("role", None) if cls == "ChatMessage" else _LC_ROLES.get(cls)  # type: ignore[arg-type]
    if not isinstance(role, str):
        raise InvalidRecord(f"metadata.messages[{i}] is a LangChain message of unknown class {cls!r}")
    msg: dict[str, Any] = {"role": role, "content": kwargs.pop("content", None)}
    for key in ("tool_calls", "tool_call_id", "name"):
        value = kwargs.pop(key, None)
        if value not in (None, []):
            msg[key] = value
    lc = {k: v for k, v in m.items() if k not in ("lc", "type", "kwargs")}
    if kwargs:
        lc["kwargs"] = kwargs
    msg["metadata"] = {"langchain": lc}
    return msg


def _execution_log(row: dict[str, Any], extras: dict[str, Any], data: bytes, out: SourceRecorder) -> None:
    ts = _required_time("timestamp", row.get("timestamp"))
    message = records.text("message", row.get("message"))
    attrs = records.json_text(
        "attributes",
        _with_service(
            "attributes", None, {"id": records.ident("id", row["id"]), "agentId": row.get("agentId"), **extras}
        ),
    )
    event = (
        records.ident("executionId", row.get("executionId")),
        _micros(ts),
        ts,
        "log",
        records.text("level", row.get("level")),
        None,
        message,
        None,
        None,
        None,
        None,
        records.text("source", row.get("source")),
        attrs,
        None,
        None,
    )
    w = _writer(out)
    out.rows(w, EVENT_ROW, [event], len(message or "") + len(attrs or ""))


def _agent_trace(row: dict[str, Any], extras: dict[str, Any], data: bytes, out: SourceRecorder) -> None:
    ts = _required_time("timestamp", row.get("timestamp"))
    kind = records.ident("type", row.get("type"))
    content = records.text("content", row.get("content"))
    meta = row.get("metadata")
    m = meta if isinstance(meta, dict) else {}
    name = m.get("tool") if isinstance(m.get("tool"), str) else None
    if name is None and content is not None and (match := _TOOL_CONTENT.match(content)):
        name = match.group(1)
    span = m.get("runId") if isinstance(m.get("runId"), str) else None
    parent = m.get("parentRunId") if isinstance(m.get("parentRunId"), str) else None
    attrs = records.json_text(
        "attributes",
        _with_service(
            "metadata", meta, {"id": records.ident("id", row["id"]), "agentId": row.get("agentId"), **extras}
        ),
    )
    event = (
        records.ident("executionId", row.get("executionId")),
        _micros(ts),
        ts,
        kind,
        "error" if kind.endswith("_error") else "info",
        name,
        content,
        records.opt_score("duration", row.get("duration")),
        None,
        span,
        parent,
        "AgentTrace",
        attrs,
        None,
        None,
    )
    w = _writer(out)
    out.rows(w, EVENT_ROW, [event], len(content or "") + len(attrs or ""))


def _checkpoint_state(row: dict[str, Any], extras: dict[str, Any], data: bytes, out: SourceRecorder) -> None:
    state = row.get("state")
    state_json = records.json_text("state", state)
    if state_json is None:
        raise InvalidRecord("state is null: a checkpoint needs a state")
    cid = records.ident("checkpointId", row.get("checkpointId"))
    thread = records.text("threadId", row.get("threadId"))
    sm = state.get("metadata") if isinstance(state, dict) else None
    eid = sm.get("executionId") if isinstance(sm, dict) else None
    if eid is None and thread is not None:  # the service names threads "thread_<executionId>"
        eid = thread[len("thread_") :] if thread.startswith("thread_") else thread
    step = state.get("step") if isinstance(state, dict) else None
    step = step if isinstance(step, int) and not isinstance(step, bool) else None
    # a checkpoint upserted with a new state is another checkpoint of the execution: its own id
    snapshot_id = f"{cid}@{hashlib.sha256(data).hexdigest()[:12]}" if out.changed else cid
    metadata = records.json_text(
        "metadata",
        _with_service("metadata", None, {"id": records.ident("id", row["id"]), "checkpointId": cid, **extras}),
    )
    w = _writer(out)
    snap = (
        records.ident("snapshot_id", snapshot_id),
        records.ident("state.metadata.executionId", eid, required=False),
        w.run_id,
        "checkpoint",
        records.integer("state.step", step),
        thread,
        records.text("agentId", row.get("agentId")),
        state_json,
        _required_time("createdAt", row.get("createdAt")),
        metadata,
    )
    out.rows(w, SNAPSHOT_ROW, [snap], len(state_json))


_MAPPERS = {
    "AgentResult": _agent_result,
    "CheckpointState": _checkpoint_state,
    "ExecutionLog": _execution_log,
    "AgentTrace": _agent_trace,
}
