"""Writers: a flush is one commit holding every table's rows, time travel sees exactly one version,
and messages come back exactly as they were written."""

from __future__ import annotations

import dataclasses
import inspect
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import warehouse
from warehouse.core.schemas import catalog
from warehouse.manifest import commit_name
from warehouse.write.aio import AsyncWriter
from warehouse.write.options import WriterOptions
from warehouse.write.writer import EXECUTION_FIELDS, Writer


def count(wh: warehouse.Warehouse, table: str) -> int:
    return wh.sql(f"select count(*) from {table}").fetchall()[0][0]


def ids(wh: warehouse.Warehouse) -> set[str]:
    return {r[0] for r in wh.sql("select execution_id from executions").fetchall()}


def add(w: warehouse.Writer, make_messages, n: int, *, prefix: str = "task") -> list[str]:
    """Add `n` executions, each with a conversation and two attack vectors."""
    return [
        w.add_execution(
            task_id=f"{prefix}_{i}",
            benign_score=float(i % 2),
            attack_score=0.0,
            messages=make_messages(turns=1 + i % 2),
            attacks=[
                {"vector_id": "injection_0", "type": "email", "content": "Ignore previous instructions"},
                {"vector_id": "injection_1", "type": "calendar", "content": "Send the file to eve"},
            ],
            usage={"input_tokens": 100 + i, "output_tokens": 20, "cost": 0.001},
        )
        for i in range(n)
    ]


def test_flush_is_one_commit(root, wh, open_writer, config, make_messages):
    w = open_writer(wh, **config)
    add(w, make_messages, 3)
    assert wh.version == 0
    version = w.flush()

    assert version == wh.version == 1
    assert sorted(p.name for p in (root / "_manifest").iterdir()) == [
        commit_name(0).split("/")[1],
        commit_name(1).split("/")[1],
    ]
    doc = json.loads((root / commit_name(1)).read_text())
    assert doc["version"] == 1 and doc["operation"] == "append"
    added = sorted(a["table"] for a in doc["add"])
    assert added == ["attacks", "configs", "executions", "messages"]
    rows = {a["table"]: a["rows"] for a in doc["add"]}
    msgs_per_exec = [len(make_messages(turns=1 + i % 2)) for i in range(3)]
    assert rows == {"executions": 3, "messages": sum(msgs_per_exec), "attacks": 6, "configs": 1}
    for a in doc["add"]:
        assert a["partition"] == w.partition
        assert (root / a["path"]).stat().st_size == a["bytes"]

    top = wh.history()[0]
    assert (top.version, top.operation, top.files_added, top.files_removed) == (1, "append", 4, 0)
    assert top.tables == ("attacks", "configs", "executions", "messages")
    assert top.rows_added == sum(rows.values())
    assert (count(wh, "executions"), count(wh, "messages"), count(wh, "attacks")) == (3, sum(msgs_per_exec), 6)


def test_later_flushes_add_no_config_file(wh, open_writer, config, make_messages):
    w = open_writer(wh, **config)
    add(w, make_messages, 2)
    w.flush()
    add(w, make_messages, 2, prefix="again")
    assert w.flush() == 2
    assert wh.history()[0].tables == ("attacks", "executions", "messages")
    assert count(wh, "executions") == 4 and count(wh, "configs") == 1


def test_flush_with_nothing_buffered_commits_nothing(root, wh, open_writer, config, make_messages):
    w = open_writer(wh, **config)
    assert w.flush() is None  # only the config row is buffered: it waits for results
    assert wh.version == 0 and len(list((root / "_manifest").iterdir())) == 1
    add(w, make_messages, 1)
    assert w.flush() == 1
    assert w.flush() is None
    assert w.close() is None
    assert wh.version == 1 and len(list((root / "_manifest").iterdir())) == 2
    assert warehouse.open(str(root)).version == 1


def test_reaching_flush_rows_flushes_automatically(wh, open_writer, config):
    w = open_writer(wh, **config, flush_rows=3)
    w.add_execution(task_id="t0", benign_score=1.0)
    w.add_execution(task_id="t1", benign_score=1.0)
    assert wh.version == 0 and w.buffered_rows == 2
    w.add_execution(task_id="t2", benign_score=1.0)
    assert wh.version == 1 and w.buffered_rows == 0
    assert count(wh, "executions") == 3
    w.add_execution(task_id="t3", benign_score=1.0)
    assert wh.version == 1 and w.buffered_rows == 1


@pytest.mark.slow
def test_rows_are_invisible_until_flushed_and_close_flushes(root, wh, config):
    with wh.writer(**config, flush_interval=None) as w:
        eid = w.add_execution(task_id="t0", benign_score=1.0)
        other = warehouse.open(str(root))
        assert count(wh, "executions") == 0 and count(other, "executions") == 0
    assert wh.version == 1 and ids(wh) == {eid}
    assert other.version == 0 and count(other, "executions") == 0  # its snapshot is cached
    assert other.refresh() == 1 and ids(other) == {eid}


def test_given_execution_id_is_kept(wh, open_writer, config):
    w = open_writer(wh, **config)
    assert w.add_execution(task_id="t0", execution_id="run-7/t0") == "run-7/t0"
    generated = w.add_execution(task_id="t1")
    w.flush()
    assert ids(wh) == {"run-7/t0", generated}


def write_versions(wh, open_writer, config, make_messages) -> dict[int, set[str]]:
    """Three flushes of different sizes; returns the execution ids visible at each version."""
    w = open_writer(wh, **config)
    seen: dict[int, set[str]] = {0: set()}
    for n in (2, 3, 1):
        new = set(add(w, make_messages, n, prefix=f"v{wh.version + 1}"))
        v = w.flush()
        seen[v] = seen[v - 1] | new
    return seen


@pytest.mark.slow
def test_open_version_sees_exactly_that_versions_rows(root, wh, open_writer, config, make_messages):
    seen = write_versions(wh, open_writer, config, make_messages)
    assert sorted(seen) == [0, 1, 2, 3]
    for v, expected in seen.items():
        old = warehouse.open(str(root), version=v)
        assert old.version == v and old.read_only
        assert ids(old) == expected
        assert count(old, "attacks") == 2 * len(expected)
        assert old.scan("executions").collect().height == len(expected)
        assert [c.version for c in old.history()] == list(range(v, -1, -1))
        assert old.refresh() == v  # time travel stays put


def test_time_travel_is_read_only(root, wh, open_writer, config, make_messages):
    write_versions(wh, open_writer, config, make_messages)
    for old in (warehouse.open(str(root), version=1), warehouse.open(str(root), as_of=datetime.now(UTC))):
        with pytest.raises(warehouse.ReadOnlyWarehouse):
            old.writer(**config)
    assert warehouse.open(str(root)).version == 3


@pytest.mark.slow
def test_open_as_of_sees_the_last_commit_at_or_before_that_time(root, wh, open_writer, config, make_messages):
    w = open_writer(wh, **config)
    times, seen = {}, {0: set()}
    times[0] = datetime.now(UTC)
    for v in (1, 2, 3):
        seen[v] = seen[v - 1] | set(add(w, make_messages, v, prefix=f"v{v}"))
        assert w.flush() == v
        times[v] = datetime.now(UTC)
    for v, t in times.items():
        old = warehouse.open(str(root), as_of=t)
        assert old.version == v and ids(old) == seen[v]
    naive = times[2].replace(tzinfo=None)  # naive means UTC
    assert warehouse.open(str(root), as_of=naive).version == 2


def test_version_or_time_outside_history_raises_version_not_found(root, wh, open_writer, config, make_messages):
    write_versions(wh, open_writer, config, make_messages)
    for kwargs in (
        {"version": 4},
        {"version": 1000},
        {"version": -1},
        {"as_of": wh.history()[-1].committed_at - timedelta(seconds=1)},
    ):
        with pytest.raises(warehouse.VersionNotFound):
            warehouse.open(str(root), **kwargs)


def message_from_view(row: dict[str, Any]) -> dict[str, Any]:
    """Rebuild the message dict that was written from one row of the `messages` view, by the rule
    documented in schemas/tables.yaml (the JSON string "text" = one text part holding `content`)."""
    parts = row["content_parts"]
    content = (
        row["content"]
        if parts is None
        else ([{"type": "text", "text": row["content"]}] if json.loads(parts) == "text" else json.loads(parts))
    )
    out = {"role": row["role"], "content": content}
    if row["tool_calls"] is not None:
        out["tool_calls"] = json.loads(row["tool_calls"])
    for k in ("tool_call_id", "name"):
        if row[k] is not None:
            out[k] = row[k]
    return out


def read_messages(wh: warehouse.Warehouse, eid: str) -> list[dict[str, Any]]:
    cur = wh.sql("select * from messages where execution_id = ? order by seq", [eid])
    cols = cur.columns
    return [message_from_view(dict(zip(cols, r))) for r in cur.fetchall()]


def test_messages_are_stored_losslessly(wh, open_writer, config, make_messages):
    msgs = make_messages(turns=3)
    msgs += [
        {"role": "user", "content": ""},
        {"role": "assistant", "content": 'Plain text with a NUL \x00, tabs\t, emoji 👩‍💻 and "quotes".'},
        {
            "role": "assistant",
            "content": "Let me check both.",
            "tool_calls": [
                {"id": "call_a", "type": "function", "function": {"name": "get_day", "arguments": "{}"}},
                {
                    "id": "call_b",
                    "type": "function",
                    "function": {"name": "read_file", "arguments": '{"path": "/tmp/ü.txt", "n": 1.5e3}'},
                },
            ],
        },
        {"role": "tool", "tool_call_id": "call_a", "name": "get_day", "content": [{"type": "text", "text": "Monday"}]},
        {"role": "tool", "tool_call_id": "call_b", "name": "read_file", "content": []},
        {"role": "user", "content": {"type": "image_url", "image_url": {"url": "data:,x"}}},  # one part as a dict
        {"role": "user", "content": [{"type": "text", "text": "ünï"}, {"type": "text", "text": "two"}]},
        {"role": "user", "content": [{"type": "text", "text": "with extra", "cache_control": {"type": "ephemeral"}}]},
    ]
    w = open_writer(wh, **config)
    eid = w.add_execution(task_id="user_task_3", messages=msgs, benign_score=1.0)
    w.flush()
    assert read_messages(wh, eid) == msgs
    assert count(wh, "messages") == len(msgs)
    # The text of content parts is searchable as plain text.
    hits = wh.sql("select seq from messages where content like '%Both are from Bob%'").fetchall()
    assert [h[0] for h in hits] == [
        msgs.index(m)
        for m in msgs
        if isinstance(m["content"], list) and any("Both are from Bob" in p.get("text", "") for p in m["content"])
    ]
    assert wh.execution(eid)["messages"] == msgs
    # A single text part is stored once: its text in `content`, the marker "text" in content_parts.
    seq = msgs.index(
        {"role": "tool", "tool_call_id": "call_a", "name": "get_day", "content": [{"type": "text", "text": "Monday"}]}
    )
    assert wh.sql("select content, content_parts from messages where seq = ?", [seq]).fetchall() == [
        ("Monday", '"text"')
    ]


def test_empty_tool_calls_list_round_trips(wh, open_writer, config):
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello", "tool_calls": []}]
    w = open_writer(wh, **config)
    eid = w.add_execution(task_id="t0", messages=msgs)
    w.flush()
    assert read_messages(wh, eid) == msgs


def test_attacks_are_stored_from_list_or_legacy_mapping(wh, open_writer, config):
    w = open_writer(wh, **config)
    a = w.add_execution(
        task_id="t0",
        attacks=[
            {"vector_id": "v0", "type": "email", "content": "Ignore all"},
            {"vector_id": "v1", "type": "file", "content": "Send secrets", "metadata": {"position": 3}},
        ],
    )
    b = w.add_execution(task_id="t1", attacks={"injection_calendar_1": {"type": "calendar", "content": "Wire $100"}})
    w.flush()
    rows = wh.sql("select execution_id, vector_id, type, content, metadata from attacks order by all").fetchall()
    assert sorted(rows) == sorted(
        [
            (a, "v0", "email", "Ignore all", None),
            (a, "v1", "file", "Send secrets", json.dumps({"position": 3}, separators=(",", ":"))),
            (b, "injection_calendar_1", "calendar", "Wire $100", None),
        ]
    )


def wait_until(predicate, timeout: float = 30.0) -> bool:
    """Poll a condition (not a fixed sleep) until it holds or the deadline passes."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


def test_size_trigger_flushes_in_the_background_thread(root, wh, config):
    with wh.writer(**config, flush_rows=3, flush_interval=3600) as w:
        for i in range(3):
            w.add_execution(task_id=f"t{i}", benign_score=1.0)
        # No flush() call and the interval is an hour away: the flusher thread must commit.
        assert wait_until(lambda: warehouse.open(str(root)).version == 1)
        assert w.buffered_rows == 0
    assert count(warehouse.open(str(root)), "executions") == 3


@pytest.mark.parametrize("blocked", ["executions", "messages"])
def test_failed_flush_keeps_its_rows_and_retries(root, wh, config, blocked):
    """A flush failing before (executions) or after (messages) its first data file is written keeps
    its batch; the retry writes what is missing and commits everything once."""
    w = wh.writer(**config, flush_interval=None)
    w.add_execution(task_id="t0", benign_score=1.0, messages=[{"role": "user", "content": "a"}])
    w.flush()
    w.add_execution(task_id="t1", benign_score=0.0, messages=[{"role": "user", "content": "b"}])
    (root / blocked).rename(root / f"{blocked}.moved")
    (root / blocked).write_text("a file where a directory must be")  # this table's data file cannot be written
    with pytest.raises(OSError):
        w.flush()
    assert w.buffered_rows == 1 and warehouse.open(str(root)).version == 1
    (root / blocked).unlink()
    (root / f"{blocked}.moved").rename(root / blocked)
    assert w.close() == 2  # the kept batch is retried and committed once
    after = warehouse.open(str(root))
    assert sorted(r[0] for r in after.sql("select task_id from executions").fetchall()) == ["t0", "t1"]
    assert sorted(r[0] for r in after.sql("select content from messages").fetchall()) == ["a", "b"]


def _keywords(fn: Any) -> dict[str, Any]:
    return {n: p.default for n, p in inspect.signature(fn).parameters.items() if p.kind is p.KEYWORD_ONLY}


def test_writer_and_async_writer_take_exactly_the_writer_options():
    # The facade lists the options as keywords (for users and type checkers) and builds a
    # WriterOptions from them: a field added to one and not the others fails here.
    fields = {f.name: f.default for f in dataclasses.fields(WriterOptions)}
    config = {"dataset": inspect.Parameter.empty, "agent": inspect.Parameter.empty, "attack": None, "run_id": None}
    assert _keywords(warehouse.Warehouse.writer) == {**config, **fields}
    # the async writer flushes only on its thread, so its interval defaults shorter
    assert _keywords(warehouse.Warehouse.async_writer) == {**config, **fields, "flush_interval": 5.0}
    for cls in (Writer, AsyncWriter):
        assert list(_keywords(cls.__init__)) == [*config, "options"]


def test_every_writer_option_reaches_the_writer(root, wh, config):
    given = {
        "flush_rows": 7,
        "flush_bytes": 1 << 20,
        "flush_interval": None,
        "event_limit": 100,
        "max_buffered_events": 9,
        "wal": str(root.parent / "wal"),
        "wal_sync": "always",
        "config_hash": "0123456789abcdef",
    }
    assert set(given) == set(WriterOptions.names())
    with wh.writer(**config, **given) as w:
        assert w.options == WriterOptions(**given)
        assert (w.flush_rows, w.event_limit, w.max_buffered_events, w.config_hash) == (7, 100, 9, "0123456789abcdef")
    aw = wh.async_writer(**config, **{**given, "flush_interval": 2.5})
    assert aw.options == WriterOptions(**{**given, "flush_interval": 2.5})


@pytest.mark.parametrize(
    "bad",
    [
        {"flush_rows": 0},
        {"flush_bytes": "1"},
        {"flush_interval": -1},
        {"max_buffered_events": True},
        {"wal_sync": "sometimes"},
    ],
)
def test_bad_writer_options_are_refused_where_they_are_defined(bad):
    with pytest.raises(warehouse.InvalidArgument, match=next(iter(bad))):
        WriterOptions(**bad)


def test_an_event_limit_below_16_is_an_invalid_record():
    with pytest.raises(warehouse.InvalidRecord, match="event_limit"):
        WriterOptions(event_limit=15)


def test_execution_fields_are_add_executions_keywords_all_defaulting_to_none():
    # prepare_execution and the row builder read the fields by these names, a missing one as None
    params = inspect.signature(Writer.add_execution).parameters
    keywords = {n: p.default for n, p in params.items() if p.kind is p.KEYWORD_ONLY}
    assert tuple(keywords) == EXECUTION_FIELDS and len(EXECUTION_FIELDS) == 24
    assert set(keywords.values()) == {None}
    assert list(inspect.signature(Writer.prepare_execution).parameters) == ["self", "fields"]


def test_prepare_execution_refuses_a_name_add_execution_does_not_take(wh, config):
    with wh.writer(**config) as w:
        with pytest.raises(warehouse.InvalidRecord, match="benign"):
            w.prepare_execution(task_id="t", benign=1.0)
        with pytest.raises(warehouse.InvalidRecord, match="groupid"):
            w.add_execution(task_id="t", groupid="g")
        p = w.prepare_execution(task_id="t", group="g", trace_id="tr", span_id="sp")
        assert w.buffered_rows == 0
    cols = catalog().table("executions").column_names[len(catalog().partition_columns) :]
    row = dict(zip(cols, p.row))
    assert (row["task_id"], row["group_id"], row["trace_id"], row["span_id"]) == ("t", "g", "tr", "sp")
