"""Partition values are escaped into one safe path segment, round-trip exactly, and a writer with
hostile type names writes only under the warehouse root and reads its values back unchanged."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import warehouse
from warehouse.core.storage import (
    MAX_PARTITION_VALUE_BYTES,
    Store,
    escape_partition_value,
    parse_partition_path,
    partition_dir,
    unescape_partition_value,
)

NASTY = [
    "a/b",
    "/",
    "//",
    "../../etc",
    "a\\b",
    "\\",
    "..",
    ".",
    "...",
    "=",
    "k=v",
    "%",
    "%2F",
    "%41",
    "100%",
    "nul\x00byte",
    "\x00",
    "tab\tnew\nline",
    "café",
    "Réunion n°1",
    "日本語",
    "🙂",
    "👩‍💻 emoji zwj",
    "with space",
    " leading",
    "trailing ",
    "quote'single",
    'quote"double',
    "semi;colon",
    "*?<>|:",
    "__HIVE_DEFAULT_PARTITION__",
    "__private",
    "_x",
    "-",
    "~",
    "+plus",
    "null",
    "NULL",
    "none",
]

PARTITION_COLUMNS = ["dataset", "agent", "attack", "config_hash"]


def assert_safe_segment(escaped: str) -> None:
    assert escaped.isascii()
    for bad in ("/", "\\", "\x00", "="):
        assert bad not in escaped
    assert escaped not in (".", "..", "")
    assert not escaped.startswith("__")  # hive's null marker and other reserved names
    assert len(escaped.encode()) <= MAX_PARTITION_VALUE_BYTES


@pytest.mark.parametrize("value", NASTY)
def test_nasty_partition_value_round_trips_as_one_safe_segment(value):
    escaped = escape_partition_value(value)
    assert_safe_segment(escaped)
    assert unescape_partition_value(escaped) == value


@pytest.mark.parametrize("value", ["agentdojo", "tool_agent", "important_instructions", "v1.2", "gpt-4o-mini"])
def test_plain_names_stay_readable(value):
    assert escape_partition_value(value) == value


@settings(max_examples=300, deadline=None)
@given(st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=16))
def test_escape_is_safe_and_inverted_by_unescape(value):
    # 16 characters are at most 64 UTF-8 bytes, 192 once escaped: always under the limit.
    escaped = escape_partition_value(value)
    assert_safe_segment(escaped)
    assert unescape_partition_value(escaped) == value


@given(
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=8),
    st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=8),
)
def test_different_values_never_share_a_directory(a, b):
    if a != b:
        assert escape_partition_value(a) != escape_partition_value(b)


def test_partition_dir_is_table_then_escaped_columns_in_order():
    part = {"dataset": "a/b", "agent": "..", "attack": "none", "config_hash": "0badcafe"}
    rel = partition_dir("executions", part, PARTITION_COLUMNS)
    assert rel == "executions/dataset=a%2Fb/agent=%2E%2E/attack=none/config_hash=0badcafe"
    assert parse_partition_path(f"{rel}/part-x.parquet") == part


def test_empty_partition_value_is_invalid():
    with pytest.raises(warehouse.InvalidPartitionValue, match="agent"):
        escape_partition_value("", column="agent")


def percent_encoded_length(value: str) -> int:
    """Length of `value` with every byte outside [A-Za-z0-9._-] percent-encoded."""
    return sum(1 if chr(b).isascii() and (chr(b).isalnum() or chr(b) in "-_.") else 3 for b in value.encode())


@pytest.mark.parametrize("value", ["a" * (MAX_PARTITION_VALUE_BYTES + 1), "é" * 34, "/" * 67, "🙂" * 17])
def test_partition_value_too_long_once_escaped_is_invalid(value):
    assert percent_encoded_length(value) > MAX_PARTITION_VALUE_BYTES
    with pytest.raises(warehouse.InvalidPartitionValue, match="agent"):
        escape_partition_value(value, column="agent")


def test_partition_value_at_the_limit_is_accepted():
    assert escape_partition_value("a" * MAX_PARTITION_VALUE_BYTES) == "a" * MAX_PARTITION_VALUE_BYTES
    assert len(escape_partition_value("é" * 33)) == 198


def test_lone_surrogate_partition_value_is_invalid():
    with pytest.raises(warehouse.InvalidPartitionValue):
        escape_partition_value("bad\ud800")


def test_store_refuses_paths_that_leave_the_root(root):
    store = Store.from_url(str(root))
    for rel in ("../x", "a/../../x", "/etc/passwd", ".."):
        with pytest.raises(ValueError):
            store.full(rel)


def test_writer_refuses_empty_or_too_long_type_names_and_writes_nothing(tmp_path, wh, open_writer, snapshot_tree):
    before = snapshot_tree(tmp_path)
    with pytest.raises(warehouse.InvalidRecord):
        open_writer(wh, dataset="", agent="a")
    with pytest.raises(warehouse.InvalidPartitionValue):
        open_writer(wh, dataset="d", agent="x" * (MAX_PARTITION_VALUE_BYTES + 1))
    with pytest.raises(warehouse.InvalidPartitionValue):
        open_writer(wh, dataset="d", agent="a", attack={"type": "é" * 100, "config": {}})
    assert snapshot_tree(tmp_path) == before


def files_under(path: Path) -> list[Path]:
    return [Path(dp) / f for dp, _, fs in os.walk(path) for f in fs]


@pytest.mark.slow
def test_hostile_type_names_stay_inside_the_root_and_read_back_unchanged(tmp_path, open_writer):
    root = tmp_path / "deep" / "wh"
    wh = warehouse.open(str(root), create=True)
    values = [
        "../../escaped",
        "/abs",
        "a\\..\\b",
        "..",
        ".",
        "x=y/z=w",
        "%2e%2e",
        "nul\x00x",
        "🙂 'q\"",
        "__HIVE_DEFAULT_PARTITION__",
        "NULL",
    ]
    ids = {}
    for v in values:
        w = open_writer(
            wh, dataset={"type": v, "config": {}}, agent={"type": v, "config": {}}, attack={"type": v, "config": {}}
        )
        ids[v] = {
            w.add_execution(
                task_id="t0",
                benign_score=1.0,
                attacks=[{"vector_id": "v", "content": "x"}],
                messages=[{"role": "user", "content": "hi"}],
            )
        }
        w.close()

    resolved_root = root.resolve()
    written = list(files_under(tmp_path))
    assert written
    for f in written:
        assert f.resolve().is_relative_to(resolved_root), f
    assert {p.name for p in (tmp_path).iterdir()} == {"deep"}
    assert {p.name for p in (tmp_path / "deep").iterdir()} == {"wh"}

    rows = wh.sql("select dataset, agent, attack, execution_id from executions").fetchall()
    assert sorted(rows) == sorted((v, v, v, eid) for v, s in ids.items() for eid in s)
    for v in values:
        for col in ("dataset", "agent", "attack"):
            got = wh.sql(f"select execution_id from executions where {col} = ?", [v]).fetchall()
            assert {r[0] for r in got} == ids[v], (col, v)
        assert wh.sql("select count(*) from messages where agent = ?", [v]).fetchall() == [(1,)]
        assert wh.sql("select count(*) from attacks where attack = ?", [v]).fetchall() == [(1,)]
        assert wh.sql("select dataset_type, agent_type, attack_type from configs where agent = ?", [v]).fetchall() == [
            (v, v, v)
        ]
    scanned = wh.scan("executions").collect()
    assert sorted(scanned.select("dataset", "agent", "attack").rows()) == sorted((v, v, v) for v in values)
