"""Conversation sessions (`wh.sessions`), the agent-runner SessionManager's replacement: save, append
without rewriting, load as written, list, delete in one commit."""

from __future__ import annotations

import copy
import json
from datetime import UTC
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import warehouse
from warehouse.agent.sessions import AGENT, DATASET, SESSION_ROW
from warehouse.core import records
from warehouse.core.errors import InvalidRecord, SessionNotFound, WarehouseError
from warehouse.core.records import MESSAGE_ROW

# agent-runner's messages.jsonl, verbatim (ids, explicit nulls, per-message `meta`).
REFERENCE_MESSAGES: list[dict[str, Any]] = [
    {
        "id": "msg1",
        "role": "user",
        "content": "Write a function",
        "tool_calls": None,
        "tool_call_id": None,
        "meta": {"ts": "2025-01-15T10:00:00"},
    },
    {
        "id": "msg2",
        "role": "assistant",
        "content": "I'll write that function",
        "tool_calls": [{"id": "tc1", "name": "write_file", "arguments": {"path": "f.py", "content": "def f(): ..."}}],
        "tool_call_id": None,
        "meta": {"ts": "2025-01-15T10:00:05"},
    },
    {
        "id": "msg3",
        "role": "tool",
        "content": "File created",
        "tool_calls": None,
        "tool_call_id": "tc1",
        "meta": {"ts": "2025-01-15T10:00:10", "tool_name": "write_file"},
    },
]
REFERENCE_CONFIG = {"model": "gpt-4o", "temperature": 0.7, "max_tokens": 2000, "timeout": 120}
REFERENCE_META = {
    "schema_version": 1,
    "created_at": "2025-01-15T10:00:00",
    "updated_at": "2025-01-15T10:05:00",
    "total_tokens": 1542,
    "total_cost": 0.0234,
    "model": "gpt-4o",
}


def session_files(wh: warehouse.Warehouse, table: str) -> set[str]:
    return {f.path for f in wh.files(table)}


def test_save_then_load_returns_messages_config_and_meta_as_written(
    wh: warehouse.Warehouse, make_messages: Any
) -> None:
    msgs = make_messages(task="Résumé des e-mails non lus 📬, s'il te plaît", turns=3)
    sent = copy.deepcopy(msgs)
    sid = wh.sessions.save(msgs, config=REFERENCE_CONFIG, meta={"total_tokens": 10, "who": "Zoë"})
    assert msgs == sent  # the caller's messages are not modified
    loaded, config, meta = wh.sessions.load(sid)
    assert loaded == sent
    assert config == REFERENCE_CONFIG
    assert meta == {"total_tokens": 10, "who": "Zoë"}
    assert len(sid) == 32 and int(sid, 16) >= 0


def test_reference_style_messages_round_trip_exactly(wh: warehouse.Warehouse) -> None:
    sid = wh.sessions.save(
        copy.deepcopy(REFERENCE_MESSAGES), config=REFERENCE_CONFIG, meta=REFERENCE_META, session_id="abc123"
    )
    assert sid == "abc123"
    loaded, config, meta = wh.sessions.load("abc123")
    assert loaded == REFERENCE_MESSAGES
    assert (config, meta) == (REFERENCE_CONFIG, REFERENCE_META)
    # The columns SQL sees are still the plain ones.
    rows = wh.sql(
        "select seq, role, tool_call_id, tool_calls from messages where execution_id = 'abc123' order by seq"
    ).fetchall()
    assert [r[:3] for r in rows] == [(0, "user", None), (1, "assistant", None), (2, "tool", "tc1")]
    assert rows[0][3] is None and json.loads(rows[1][3])[0]["name"] == "write_file"


def test_save_is_one_commit_in_the_sessions_partition(wh: warehouse.Warehouse, make_messages: Any) -> None:
    sid = wh.sessions.save(make_messages())
    assert wh.version == 1
    commit = wh.history()[0]
    assert commit.operation == "append" and set(commit.tables) == {"configs", "messages", "sessions"}
    part = warehouse.RunConfig.of(DATASET, AGENT).partition
    assert {(f.table, tuple(sorted(f.partition.items()))) for f in wh.snapshot.files.values()} == {
        (t, tuple(sorted(part.items()))) for t in ("configs", "messages", "sessions")
    }
    assert part["dataset"] == "sessions" and part["agent"] == "session" and part["attack"] == "none"
    assert wh.sql("select session_id, revision, message_count from sessions").fetchall() == [
        (sid, 0, len(make_messages()))
    ]


def test_append_adds_messages_without_rewriting_earlier_files(wh: warehouse.Warehouse, make_messages: Any) -> None:
    first = make_messages(turns=1)
    sid = wh.sessions.save(first, meta={"a": 1, "b": {"x": 1}})
    before = session_files(wh, "messages")
    version = wh.version

    more = [
        {"role": "user", "content": "Et maintenant, réponds à Bob 🙂"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [{"id": "call_9", "type": "function", "function": {"name": "send_email", "arguments": "{}"}}],
        },
        {"role": "tool", "tool_call_id": "call_9", "name": "send_email", "content": "sent"},
    ]
    count = wh.sessions.append(sid, copy.deepcopy(more), meta={"b": {"y": 2}, "c": 3})

    assert count == len(first) + len(more)
    assert wh.version == version + 1 and wh.history()[0].operation == "append"
    after = session_files(wh, "messages")
    assert before < after  # every earlier data file is still active, untouched
    (new,) = after - before
    added = pq.read_table(Path(wh.store.full(new))).to_pylist()
    assert [(r["execution_id"], r["seq"]) for r in added] == [(sid, len(first) + i) for i in range(len(more))]

    loaded, _, meta = wh.sessions.load(sid)
    assert loaded == first + more
    assert meta == {"a": 1, "b": {"y": 2}, "c": 3}  # merged key by key, not deeply
    revisions = wh.sql("select revision, message_count from raw_sessions order by revision").fetchall()
    assert revisions == [(0, len(first)), (1, count)]
    latest = wh.sql("select revision, message_count from sessions").fetchall()
    assert latest == [(1, count)]


@pytest.mark.slow
def test_appends_keep_order_across_many_revisions(wh: warehouse.Warehouse) -> None:
    sid = wh.sessions.save([{"role": "user", "content": "0"}])
    for i in range(1, 6):
        assert wh.sessions.append(sid, [{"role": "assistant" if i % 2 else "user", "content": str(i)}]) == i + 1
    loaded, config, meta = wh.sessions.load(sid)
    assert [m["content"] for m in loaded] == [str(i) for i in range(6)]
    assert (config, meta) == (None, None)
    assert wh.sql("select revision from sessions").fetchall() == [(5,)]


def test_list_has_one_row_per_session_newest_first_with_titles(wh: warehouse.Warehouse) -> None:
    long_text = "Please  write\na parser " + "for JSON documents " * 10
    s_title = wh.sessions.save([{"role": "user", "content": "ignored"}], title="Given title")
    s_meta = wh.sessions.save([{"role": "user", "content": "ignored too"}], meta={"title": "From meta", "k": [1]})
    s_text = wh.sessions.save(
        [
            {"role": "system", "content": "You are terse."},
            {"role": "user", "content": [{"type": "text", "text": long_text}]},
        ]
    )
    s_none = wh.sessions.save([])

    df = wh.sessions.list()
    assert df.columns == ["id", "created_at", "updated_at", "message_count", "title", "meta"]
    assert df["id"].to_list() == [s_none, s_text, s_meta, s_title]
    titles = dict(zip(df["id"], df["title"]))
    assert titles[s_title] == "Given title"
    assert titles[s_meta] == "From meta"
    assert titles[s_text] == " ".join(long_text.split())[:80] and len(titles[s_text]) == 80
    assert titles[s_none] is None
    assert dict(zip(df["id"], df["message_count"])) == {s_title: 1, s_meta: 1, s_text: 2, s_none: 0}
    assert json.loads(dict(zip(df["id"], df["meta"]))[s_meta]) == {"title": "From meta", "k": [1]}

    # An append makes a session the most recently updated; it keeps its title.
    wh.sessions.append(s_title, [{"role": "assistant", "content": "ok"}])
    df = wh.sessions.list()
    assert df["id"].to_list() == [s_title, s_none, s_text, s_meta]
    assert df.row(0, named=True)["title"] == "Given title" and df.row(0, named=True)["message_count"] == 2
    assert df.row(0, named=True)["created_at"] < df.row(0, named=True)["updated_at"]


@pytest.mark.slow
def test_delete_removes_one_session_in_one_commit(wh: warehouse.Warehouse, make_messages: Any) -> None:
    keep_a = wh.sessions.save(make_messages(task="a"), meta={"n": "a"})
    gone = wh.sessions.save(make_messages(task="b"), meta={"n": "b"})
    wh.sessions.append(gone, [{"role": "user", "content": "more"}])
    keep_b = wh.sessions.save(make_messages(task="c"), meta={"n": "c"})
    version = wh.version

    wh.sessions.delete(gone)

    assert wh.version == version + 1
    commit = wh.history()[0]
    assert commit.operation == "delete" and set(commit.tables) == {"messages", "sessions"}
    assert commit.rows_added == 0  # each of its files held only its rows: they are dropped whole
    with pytest.raises(SessionNotFound, match=gone):
        wh.sessions.load(gone)
    assert wh.sessions.list()["id"].to_list() == [keep_b, keep_a]
    assert wh.sessions.load(keep_a) == (make_messages(task="a"), None, {"n": "a"})
    assert wh.sessions.load(keep_b) == (make_messages(task="c"), None, {"n": "c"})
    assert wh.sql("select count(*) from raw_messages where execution_id = ?", [gone]).fetchall() == [(0,)]
    # Its id is free again.
    assert wh.sessions.save([{"role": "user", "content": "again"}], session_id=gone) == gone
    assert wh.sessions.load(gone)[0] == [{"role": "user", "content": "again"}]


def test_delete_rewrites_files_shared_with_other_sessions(wh: warehouse.Warehouse, open_writer: Any) -> None:
    # One file holding two sessions' rows (as a compaction would leave them).
    from datetime import datetime

    now = datetime.now(UTC)
    w = open_writer(wh, dataset=DATASET, agent=AGENT)
    for sid in ("s1", "s2"):
        rows, size = records.messages(
            sid, [{"role": "user", "content": f"hello from {sid}"}, {"role": "assistant", "content": "hi"}]
        )
        w._add_rows(MESSAGE_ROW, rows, size)
        w._add_rows(SESSION_ROW, [(sid, 0, now, now, None, 2, None, None)])
    w.flush()
    assert len(wh.files("messages")) == len(wh.files("sessions")) == 1

    wh.sessions.delete("s1")

    commit = wh.history()[0]
    assert commit.operation == "delete" and commit.files_removed == 2 and commit.files_added == 2
    with pytest.raises(SessionNotFound):
        wh.sessions.load("s1")
    assert wh.sessions.load("s2")[0] == [
        {"role": "user", "content": "hello from s2"},
        {"role": "assistant", "content": "hi"},
    ]
    assert wh.sql("select distinct execution_id from raw_messages").fetchall() == [("s2",)]


@pytest.mark.parametrize("sid", ["nope", "", None, "../../etc/passwd"])
def test_unknown_session_ids_raise_session_not_found(wh: warehouse.Warehouse, sid: Any) -> None:
    wh.sessions.save([{"role": "user", "content": "x"}], session_id="known")
    version = wh.version
    with pytest.raises(SessionNotFound):
        wh.sessions.load(sid)
    with pytest.raises(SessionNotFound):
        wh.sessions.append(sid, [{"role": "user", "content": "y"}])
    with pytest.raises(SessionNotFound):
        wh.sessions.delete(sid)
    assert wh.version == version


def test_save_with_an_existing_id_is_refused_and_points_to_append(wh: warehouse.Warehouse) -> None:
    wh.sessions.save([{"role": "user", "content": "x"}], session_id="abc123")
    version = wh.version
    with pytest.raises(WarehouseError, match="append"):
        wh.sessions.save([{"role": "user", "content": "y"}], session_id="abc123")
    assert wh.version == version
    assert wh.sessions.load("abc123")[0] == [{"role": "user", "content": "x"}]


def test_bad_input_stores_nothing(wh: warehouse.Warehouse) -> None:
    sid = wh.sessions.save([{"role": "user", "content": "x"}])
    version = wh.version
    with pytest.raises(InvalidRecord, match=r"messages\[1\]\.role"):
        wh.sessions.save([{"role": "user", "content": "ok"}, {"content": "no role"}])
    with pytest.raises(InvalidRecord, match=r"messages\[2\]\.role"):
        wh.sessions.append(sid, [{"role": "user", "content": "ok"}, {"role": 3}])
    with pytest.raises(InvalidRecord, match="meta"):
        wh.sessions.append(sid, [], meta={"x": float("nan")})
    with pytest.raises(InvalidRecord, match="config"):
        wh.sessions.save([], config={"x": object()})
    assert wh.version == version
    assert wh.sessions.load(sid)[0] == [{"role": "user", "content": "x"}]


def test_another_warehouse_object_sees_sessions_without_reopening(root: Path, wh: warehouse.Warehouse) -> None:
    other = warehouse.open(str(root))
    sid = wh.sessions.save([{"role": "user", "content": "from the first"}])
    assert other.sessions.load(sid)[0] == [{"role": "user", "content": "from the first"}]
    other.sessions.append(sid, [{"role": "assistant", "content": "from the second"}])
    assert [m["content"] for m in wh.sessions.load(sid)[0]] == ["from the first", "from the second"]
    assert wh.sessions.list()["message_count"].to_list() == [2]


def test_sessions_work_the_same_on_s3(s3_url: str, s3_options: dict[str, Any], make_messages: Any) -> None:
    wh = warehouse.open(s3_url, create=True, storage_options=s3_options)
    sid = wh.sessions.save(copy.deepcopy(REFERENCE_MESSAGES), config=REFERENCE_CONFIG, meta=REFERENCE_META)
    other = wh.sessions.save(make_messages())
    assert wh.sessions.append(sid, [{"role": "user", "content": "encore ✓"}]) == 4
    assert wh.sessions.load(sid)[0] == REFERENCE_MESSAGES + [{"role": "user", "content": "encore ✓"}]
    wh.sessions.delete(sid)
    with pytest.raises(SessionNotFound):
        wh.sessions.load(sid)
    assert wh.sessions.list()["id"].to_list() == [other]
