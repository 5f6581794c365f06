"""Bad input fails in `add_execution` itself, naming the field and value, and leaves everything
buffered and stored intact; a damaged or foreign warehouse is refused with a specific error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import warehouse
from warehouse.manifest import commit_name

REPO = Path(__file__).resolve().parents[1]


class Unserialisable:
    def __repr__(self) -> str:
        return "<Unserialisable>"


GOOD_MESSAGES = [{"role": "user", "content": "hi"}]

# (keyword arguments of add_execution, a string the error message must contain)
BAD_EXECUTIONS: dict[str, tuple[dict[str, Any], str]] = {
    "nan_benign_score": ({"benign_score": float("nan")}, "benign_score"),
    "inf_benign_score": ({"benign_score": float("inf")}, "benign_score"),
    "nan_attack_score": ({"attack_score": float("nan")}, "attack_score"),
    "minus_inf_attack_score": ({"attack_score": float("-inf")}, "attack_score"),
    "nan_in_scores_map": ({"scores": {"f1": 0.5, "rouge_l": float("nan")}}, "rouge_l"),
    "inf_in_scores_map": ({"scores": {"bleu": float("inf")}}, "bleu"),
    "inf_usage_cost": ({"usage": {"input_tokens": 10, "cost": float("inf")}}, "cost"),
    "nan_usage_cost": ({"usage": {"cost": float("nan")}}, "cost"),
    "lone_surrogate_task_id": ({"task_id": "user_task_\ud800"}, "task_id"),
    "lone_surrogate_message_content": (
        {"messages": [{"role": "user", "content": "ok"}, {"role": "assistant", "content": "broken \udc80 text"}]},
        "messages[1].content",
    ),
    "lone_surrogate_in_content_part": (
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "\ud83d"}]}]},
        "messages[0].content",
    ),
    "lone_surrogate_metadata_value": ({"metadata": {"note": "half an emoji \ud83d"}}, "metadata"),
    "lone_surrogate_metadata_key": ({"metadata": {"k\udfff": 1}}, "metadata"),
    "metadata_object": ({"metadata": Unserialisable()}, "metadata"),
    "metadata_set": ({"metadata": {"tags": {"a", "b"}}}, "metadata"),
    "metadata_nan": ({"metadata": {"temperature": float("nan")}}, "metadata"),
    "unknown_field": ({"bening_score": 1.0}, "bening_score"),
    "unknown_usage_field": ({"usage": {"prompt_tokens": 12}}, "prompt_tokens"),
    "empty_task_id": ({"task_id": ""}, "task_id"),
    "none_task_id": ({"task_id": None}, "task_id"),
    "missing_task_id": ({"task_id": ...}, "task_id"),  # `...` = leave the argument out
    "message_without_role": ({"messages": [{"content": "who am I?"}]}, "role"),
    "message_with_empty_role": ({"messages": [{"role": "", "content": "x"}]}, "role"),
    "message_content_of_wrong_type": ({"messages": [{"role": "user", "content": 42}]}, "content"),
    "message_not_a_dict": ({"messages": ["just a string"]}, "messages[0]"),
    "messages_not_a_list": ({"messages": "hello"}, "messages"),
    "score_not_a_number": ({"benign_score": "1.0"}, "benign_score"),
    "message_step_beyond_int32": ({"messages": [{"role": "user", "content": "x", "step": 1 << 40}]}, "step"),
    "message_tokens_beyond_int64": ({"messages": [{"role": "user", "content": "x", "tokens": 1 << 70}]}, "tokens"),
    "usage_tokens_beyond_int64": ({"usage": {"input_tokens": 1 << 64}}, "input_tokens"),
    "sample_beyond_int32": ({"sample": 1 << 31}, "sample"),
}


@pytest.fixture
def loaded(wh, open_writer, config):
    """A writer with 2 executions stored (one commit) and 1 more buffered."""
    w = open_writer(wh, **config)
    stored = [
        w.add_execution(
            task_id=f"stored_{i}",
            benign_score=1.0,
            messages=GOOD_MESSAGES,
            attacks=[{"vector_id": "v0", "content": "x"}],
        )
        for i in range(2)
    ]
    w.flush()
    buffered = w.add_execution(task_id="buffered", benign_score=0.0, messages=GOOD_MESSAGES * 2)
    return wh, w, set(stored) | {buffered}


@pytest.mark.parametrize("bad", list(BAD_EXECUTIONS), ids=list(BAD_EXECUTIONS))
def test_bad_execution_is_refused_and_nothing_is_lost(loaded, bad):
    wh, w, expected_ids = loaded
    kwargs, needle = BAD_EXECUTIONS[bad]
    call = {"task_id": "bad_task", "messages": GOOD_MESSAGES, **kwargs}
    if call["task_id"] is ...:
        del call["task_id"]
    version = wh.version

    with pytest.raises(warehouse.WarehouseError) as exc:
        w.add_execution(**call)
    assert needle in str(exc.value)
    assert wh.version == version and w.buffered_rows == 1

    assert w.flush() == version + 1
    assert {r[0] for r in wh.sql("select execution_id from executions").fetchall()} == expected_ids
    assert wh.sql("select count(*) from messages").fetchall() == [(4,)]
    assert wh.sql("select count(*) from attacks").fetchall() == [(2,)]
    assert wh.sql("select count(*) from executions where task_id = 'bad_task'").fetchall() == [(0,)]


def test_writer_keeps_working_after_refusing_bad_input(loaded):
    wh, w, expected_ids = loaded
    with pytest.raises(warehouse.InvalidRecord):
        w.add_execution(task_id="t", benign_score=float("nan"))
    good = w.add_execution(task_id="after", benign_score=0.5)
    w.close()
    assert {r[0] for r in wh.sql("select execution_id from executions").fetchall()} == expected_ids | {good}


@pytest.mark.parametrize("component", ["dataset", "agent", "attack"])
def test_config_with_lone_surrogate_is_invalid_record(wh, open_writer, config, component):
    config[component]["config"]["note"] = "half an emoji \ud83d"
    with pytest.raises(warehouse.InvalidRecord, match=component):
        open_writer(wh, **config)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1, 2}])
def test_config_that_is_not_json_is_invalid_record(wh, open_writer, config, value):
    config["agent"]["config"]["temperature"] = value
    with pytest.raises(warehouse.InvalidRecord):
        open_writer(wh, **config)


def test_attack_type_none_is_reserved_for_benign_runs(wh, open_writer, config):
    config["attack"] = {"type": "none", "config": {}}
    with pytest.raises(warehouse.InvalidRecord, match="attack=None"):
        open_writer(wh, **config)
    assert not (wh.store.fs.exists(wh.store.full("configs")))


# -- damaged or foreign warehouses ------------------------------------------------------------------


def committed(wh, open_writer, config, n: int) -> None:
    w = open_writer(wh, **config)
    for i in range(n):
        w.add_execution(task_id=f"t{i}", benign_score=1.0)
        w.flush()


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"",
        b"\xff\xfe\x00garbage",
        b"[]",
        b"null",
        b'{"version": 2}',
        b'{"version": "two", "committed_at": "2024-01-01T00:00:00Z", "operation": "append"}',
    ],
    ids=["syntax", "empty", "binary", "list", "null", "missing_fields", "bad_version"],
)
def test_corrupt_commit_file_is_refused_naming_the_file(root, wh, open_writer, config, content):
    committed(wh, open_writer, config, 3)
    name = commit_name(2)
    (root / name).write_bytes(content)
    with pytest.raises(warehouse.CorruptCommit) as exc:
        warehouse.open(str(root))
    assert "00000000000000000002.json" in str(exc.value)
    with pytest.raises(warehouse.CorruptCommit, match="00000000000000000002.json"):
        warehouse.open(str(root), version=2)
    assert warehouse.open(str(root), version=1).version == 1  # earlier versions stay readable


def test_truncated_commit_file_is_refused_naming_the_file(root, wh, open_writer, config):
    committed(wh, open_writer, config, 2)
    data = (root / commit_name(2)).read_bytes()
    (root / commit_name(2)).write_bytes(data[: len(data) // 2])
    with pytest.raises(warehouse.CorruptCommit, match="00000000000000000002.json"):
        warehouse.open(str(root))


def test_corrupt_commit_seen_on_refresh_is_refused(root, wh, open_writer, config):
    committed(wh, open_writer, config, 1)
    reader = warehouse.open(str(root))
    committed(wh, open_writer, config, 1)
    (root / commit_name(2)).write_bytes(b"{oops")
    with pytest.raises(warehouse.CorruptCommit, match="00000000000000000002.json"):
        reader.refresh()


def test_newer_format_version_is_refused(root, wh, open_writer, config):
    committed(wh, open_writer, config, 1)
    doc = json.loads((root / commit_name(0)).read_bytes())
    assert doc["format_version"] == 1
    doc["format_version"] = 99
    (root / commit_name(0)).write_text(json.dumps(doc))
    with pytest.raises(warehouse.UnsupportedFormatVersion, match="99"):
        warehouse.open(str(root))
    with pytest.raises(warehouse.UnsupportedFormatVersion):
        warehouse.open(str(root), create=True)


def test_opening_a_missing_warehouse_without_create_raises_and_creates_nothing(tmp_path):
    for path in (tmp_path / "absent", tmp_path):  # a missing path, and an existing empty directory
        with pytest.raises(warehouse.WarehouseNotFound):
            warehouse.open(str(path))
    assert list(tmp_path.iterdir()) == []


def test_create_on_a_non_empty_directory_that_is_not_a_warehouse_raises(tmp_path, snapshot_tree):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "index.jsonl").write_text('{"task_id": "t0"}\n')
    (tmp_path / "results" / "config.yaml").write_text("dataset: {}\n")
    before = snapshot_tree(tmp_path)
    with pytest.raises(warehouse.NotAWarehouse):
        warehouse.open(str(tmp_path / "results"), create=True)
    assert snapshot_tree(tmp_path) == before
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["config.yaml", "index.jsonl"]


def test_create_on_an_existing_warehouse_opens_it(root, wh, open_writer, config):
    committed(wh, open_writer, config, 2)
    again = warehouse.open(str(root), create=True)
    assert again.version == 2 and again.sql("select count(*) from executions").fetchall() == [(2,)]


# -- numbers and times of every kind -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"started_at": 1e20}, "started_at"),
        ({"finished_at": -1e20}, "finished_at"),
        ({"started_at": 10**400}, "started_at"),
        ({"messages": [{"role": "user", "content": "x", "timestamp": 1e20}]}, "messages[0].timestamp"),
        ({"started_at": datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5)))}, "started_at"),
        ({"finished_at": "9999-12-31T23:00:00-05:00"}, "finished_at"),
        (
            {
                "messages": [
                    {
                        "role": "user",
                        "content": "x",
                        "timestamp": datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-5))),
                    }
                ]
            },
            "timestamp",
        ),
        ({"started_at": pd.NaT}, "started_at"),
        ({"benign_score": 10**400}, "benign_score"),
        ({"benign_score": np.float32("nan")}, "benign_score"),
        ({"attack_score": np.complex128(1)}, "attack_score"),
        ({"usage": {"input_tokens": np.float64(2.5)}}, "input_tokens"),
        ({"sample": np.bool_(True)}, "sample"),
    ],
    ids=[
        "epoch_1e20",
        "epoch_minus_1e20",
        "epoch_huge_int",
        "message_epoch_1e20",
        "year_1_east_of_utc",
        "year_9999_west_of_utc_string",
        "message_year_9999_west_of_utc",
        "pandas_nat",
        "huge_int_score",
        "numpy_nan",
        "numpy_complex",
        "numpy_fractional_token_count",
        "numpy_bool_sample",
    ],
)
def test_values_out_of_range_are_invalid_records_naming_the_field_and_nothing_is_lost(loaded, kwargs, needle):
    wh, w, expected_ids = loaded
    with pytest.raises(warehouse.InvalidRecord) as exc:
        w.add_execution(task_id="bad_task", **kwargs)
    assert needle in str(exc.value)
    assert w.flush() is not None  # an accepted value that Arrow cannot store would fail this flush forever
    assert {r[0] for r in wh.sql("select execution_id from executions").fetchall()} == expected_ids


def test_epoch_milliseconds_are_refused_saying_what_they_would_be_in_seconds(wh, open_writer, config):
    w = open_writer(wh, **config)
    ms = datetime(2025, 3, 1, 12, tzinfo=UTC).timestamp() * 1000
    with pytest.raises(warehouse.InvalidRecord) as exc:
        w.add_execution(task_id="t", started_at=ms)
    assert (
        "started_at" in str(exc.value) and "milliseconds" in str(exc.value) and "2025-03-01T12:00:00" in str(exc.value)
    )


REAL_DTYPES = [
    np.bool_,
    np.int8,
    np.int16,
    np.int32,
    np.int64,
    np.uint8,
    np.uint16,
    np.uint32,
    np.uint64,
    np.float16,
    np.float32,
    np.float64,
    np.longdouble,
]


@pytest.mark.parametrize("dtype", REAL_DTYPES, ids=[d.__name__ for d in REAL_DTYPES])
def test_numpy_scalars_of_every_real_kind_are_stored_as_their_value(wh, open_writer, config, dtype):
    w = open_writer(wh, **config)
    one, zero = dtype(1), dtype(0)
    flag = dtype is np.bool_  # a bool is a number (True = 1), but never a time, count or index
    eid = w.add_execution(
        task_id="t",
        benign_score=one,
        attack_score=zero,
        reward=one,
        duration_ms=one,
        scores={"f1": one},
        advantages=np.array([1, 0], dtype=dtype),
        started_at=1.0 if flag else one,
        finished_at=2.0 if flag else np.array(2, dtype=dtype),
        usage={"cost": one, **({} if dtype is np.bool_ else {"input_tokens": one})},
        sample=None if dtype is np.bool_ else one,
        messages=[{"role": "user", "content": "x", **({} if dtype is np.bool_ else {"step": one, "tokens": one})}],
    )
    w.flush()
    ex = wh.execution(eid)
    assert (ex["benign_score"], ex["attack_score"], ex["reward"], ex["duration_ms"]) == (1.0, 0.0, 1.0, 1.0)
    assert dict(ex["scores"]) == {"f1": 1.0} and list(ex["advantages"]) == [1.0, 0.0] and ex["cost"] == 1.0
    assert ex["started_at"] == datetime(1970, 1, 1, 0, 0, 1, tzinfo=UTC)
    if dtype is not np.bool_:
        assert ex["input_tokens"] == 1 and ex["sample"] == 1
        assert (ex["messages"][0]["step"], ex["messages"][0]["tokens"]) == (1, 1)


def test_numpy_datetime64_and_numpy_epoch_seconds_are_times(wh, open_writer, config):
    w = open_writer(wh, **config)
    eid = w.add_execution(
        task_id="t", started_at=np.datetime64("2025-03-01T12:00:00"), finished_at=np.int64(1740830500)
    )
    w.flush()
    ex = wh.execution(eid)
    assert ex["started_at"] == datetime(2025, 3, 1, 12, tzinfo=UTC)
    assert ex["finished_at"] == datetime.fromtimestamp(1740830500, UTC)


ANY_VALUE = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.decimals(),
    st.fractions(),
    st.text(max_size=5),
    st.complex_numbers(),
    st.datetimes(timezones=st.timezones()),
    st.datetimes(),
    st.sampled_from(
        [
            np.float16(1.5),
            np.float32("inf"),
            np.int64(-3),
            np.uint64(2**64 - 1),
            np.bool_(False),
            np.longdouble("1e4000"),
            np.datetime64("NaT"),
            np.datetime64("2024-02-29"),
            pd.NaT,
            pd.Timestamp("2024-01-01", tz="Asia/Tokyo"),
            [1.0],
            {"a": 1},
        ]
    ),
)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=ANY_VALUE,
    field=st.sampled_from(
        [
            "benign_score",
            "attack_score",
            "reward",
            "duration_ms",
            "started_at",
            "finished_at",
            "sample",
            "usage.input_tokens",
            "usage.cost",
            "scores.f1",
            "messages.step",
            "messages.timestamp",
            "advantages",
        ]
    ),
)
def test_any_value_of_any_numeric_or_time_field_is_stored_or_refused_as_invalid_record(
    wh, open_writer, config, value, field
):
    w = open_writer(wh, **config)
    if field.startswith("usage."):
        kwargs = {"usage": {field[6:]: value}}
    elif field == "scores.f1":
        kwargs = {"scores": {"f1": value}}
    elif field.startswith("messages."):
        kwargs = {"messages": [{"role": "user", "content": "x", field[9:]: value}]}
    elif field == "advantages":
        kwargs = {"advantages": [value]}
    else:
        kwargs = {field: value}
    try:
        w.add_execution(task_id="t", **kwargs)
    except warehouse.InvalidRecord as exc:
        assert field.split(".")[-1] in str(exc)
    w.flush()  # whatever was accepted can be stored: a flush never fails on an accepted value
    w.close()


# -- arguments of public functions -----------------------------------------------------------------------


def _bad_calls(wh: warehouse.Warehouse, root: str, tmp: str) -> list[tuple[str, Any, type, str]]:
    """(label, call, expected error class, a string the message must contain)."""
    cfg = {"dataset": {"type": "d", "config": {}}, "agent": {"type": "a", "config": {}}}

    def writer(**kw: Any) -> None:
        wh.writer(**cfg, **kw).close()

    T, V = warehouse.InvalidArgumentType, warehouse.InvalidArgument
    return [
        ("open version str", lambda: warehouse.open(root, version="2"), T, "version"),
        ("open version float", lambda: warehouse.open(root, version=2.5), T, "version"),
        ("open version nan", lambda: warehouse.open(root, version=float("nan")), T, "version"),
        ("open version bool", lambda: warehouse.open(root, version=True), T, "version"),
        ("open as_of number", lambda: warehouse.open(root, as_of=5), T, "as_of"),
        ("open as_of garbage", lambda: warehouse.open(root, as_of="yesterday"), V, "as_of"),
        (
            "open checkpoint_interval str",
            lambda: warehouse.open(root, checkpoint_interval="x"),
            T,
            "checkpoint_interval",
        ),
        (
            "open checkpoint_interval negative",
            lambda: warehouse.open(root, checkpoint_interval=-1),
            V,
            "checkpoint_interval",
        ),
        ("open create str", lambda: warehouse.open(root, create="no"), T, "create"),
        ("open url int", lambda: warehouse.open(5), T, "url"),
        ("writer flush_rows str", lambda: writer(flush_rows="2"), T, "flush_rows"),
        ("writer flush_rows 0", lambda: writer(flush_rows=0), V, "flush_rows"),
        ("writer flush_bytes float", lambda: writer(flush_bytes=1.5), T, "flush_bytes"),
        ("writer flush_interval negative", lambda: writer(flush_interval=-1), V, "flush_interval"),
        ("writer flush_interval nan", lambda: writer(flush_interval=float("nan")), V, "flush_interval"),
        ("writer flush_interval str", lambda: writer(flush_interval="30"), T, "flush_interval"),
        ("writer max_buffered_events", lambda: writer(max_buffered_events=None), T, "max_buffered_events"),
        ("writer wal_sync", lambda: writer(wal_sync="sometimes"), V, "wal_sync"),
        ("async_writer flush_interval 0", lambda: wh.async_writer(**cfg, flush_interval=0), V, "flush_interval"),
        ("history limit str", lambda: wh.history(limit="2"), T, "limit"),
        ("history limit negative", lambda: wh.history(limit=-1), V, "limit"),
        ("expire older_than number", lambda: wh.expire(30, dry_run=True), T, "older_than"),
        ("expire older_than zero", lambda: wh.expire(timedelta(0), dry_run=True), V, "older_than"),
        ("expire tables", lambda: wh.expire(timedelta(days=1), tables=["sessions"], dry_run=True), V, "sessions"),
        ("expire tables not names", lambda: wh.expire(timedelta(days=1), tables=5, dry_run=True), T, "tables"),
        ("expire now", lambda: wh.expire(timedelta(days=1), now="now", dry_run=True), T, "now"),
        ("compact target_file_size", lambda: wh.compact(target_file_size=0, dry_run=True), V, "target_file_size"),
        ("compact min_files", lambda: wh.compact(min_files=1.5, dry_run=True), V, "min_files"),
        ("compact table number", lambda: wh.compact(table=5, dry_run=True), T, "table"),
        ("compact partition list", lambda: wh.compact(partition=["agent=a"], dry_run=True), T, "partition"),
        ("compact partition column", lambda: wh.compact(partition={"task_id": "t"}, dry_run=True), V, "task_id"),
        ("vacuum retain number", lambda: wh.vacuum(retain=7, dry_run=True), T, "retain"),
        ("vacuum retain negative", lambda: wh.vacuum(retain=timedelta(-1), dry_run=True), V, "retain"),
        ("vacuum orphan_window str", lambda: wh.vacuum(orphan_window="1h", dry_run=True), T, "orphan_window"),
        ("vacuum now", lambda: wh.vacuum(now=0, dry_run=True), T, "now"),
        ("scores k str", lambda: wh.scores(k="3"), T, "k"),
        ("scores k zero", lambda: wh.scores(k=0), V, "k"),
        ("scores k huge", lambda: wh.scores(k=10**30), V, "k"),
        ("scores threshold str", lambda: wh.scores(threshold="0.5"), T, "threshold"),
        ("scores threshold nan", lambda: wh.scores(threshold=float("nan")), V, "threshold"),
        ("report top str", lambda: wh.report(f"{tmp}/r.html", top="3"), T, "top"),
        ("report top huge", lambda: wh.report(f"{tmp}/r.html", top=10**30), V, "top"),
        ("report title", lambda: wh.report(f"{tmp}/r.html", title=5), T, "title"),
        ("import kind", lambda: wh.import_(["legacy"], tmp), V, "import kind"),
        ("sync workers", lambda: wh.sync_to(f"{tmp}/copy", workers=0), V, "workers"),
        ("sync batch_files", lambda: wh.sync_to(f"{tmp}/copy", batch_files="10"), T, "batch_files"),
        ("execution id", lambda: wh.execution(5), T, "execution_id"),
        ("scan table", lambda: wh.scan(["executions"]), T, "table"),
        ("files table", lambda: wh.files(None), T, "table"),
        ("trajectories where", lambda: wh.trajectories(where="difficulty=hard"), V, "difficulty=hard"),
        ("trajectories where type", lambda: wh.trajectories(where=5), V, "where"),
        ("trajectories key pattern", lambda: wh.trajectories(where={"a.*": 1}), V, "a.*"),
        ("follow last", lambda: list(wh.follow(follow=False, last=-1)), V, "last"),
        ("follow poll_interval", lambda: list(wh.follow(follow=False, poll_interval=0)), V, "poll_interval"),
    ]


@pytest.mark.slow
def test_every_bad_argument_of_a_public_function_is_a_specific_error_naming_it(root, wh, open_writer, config, tmp_path):
    committed(wh, open_writer, config, 2)
    before = wh.version
    failures = []
    for label, call, kind, needle in _bad_calls(wh, str(root), str(tmp_path)):
        try:
            call()
            failures.append(f"{label}: accepted")
        except Exception as exc:
            if not isinstance(exc, kind) or not isinstance(exc, ValueError) or needle not in str(exc):
                failures.append(f"{label}: {type(exc).__name__}: {exc}")
    assert failures == []
    assert warehouse.open(str(root)).version == before  # nothing was written by any of them


def test_time_travel_accepts_an_iso_8601_time(root, wh, open_writer, config):
    committed(wh, open_writer, config, 2)
    at = wh.history()[0].committed_at
    assert warehouse.open(str(root), as_of=at.isoformat()).version == 2


# -- a full or read-only disk -------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["enospc", "erofs"])
def test_full_or_read_only_disk_is_a_storage_error_naming_the_file_and_the_rows_stay_retryable(tmp_path, mode):
    """A real 3 MiB tmpfs, mounted in a private user and mount namespace (`unshare -rm`), filled up
    (ENOSPC) or remounted read-only (EROFS) under a writer, a compaction and a report."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    script = Path(__file__).parent / "procs" / "full_disk.py"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [
            "unshare",
            "-rm",
            "sh",
            "-c",
            'mount -t tmpfs -o size=3m tmpfs "$1" && exec "$2" "$3" "$1" "$4"',
            "sh",
            str(mnt),
            sys.executable,
            str(script),
            mode,
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    why = "no space left" if mode == "enospc" else "read-only"
    for step in ("flush", "compact", "report", "export"):
        assert out[step]["type"] == "StorageError", out[step]
        assert why in out[step]["message"] and str(mnt) in out[step]["message"]
    assert "part-" in out["flush"]["message"] and "report.html" in out["report"]["message"]
    assert out["buffered_after_failure"] == 30 and out["count_after_failure"] == 3
    assert out["count_after_compact_failure"] == 3
    assert out["retried_flush"]["type"] is None and out["buffered_after_retry"] == 0
    assert out["count_after_retry"] == 33 and out["count_after_compact"] == 33
    assert out["doctor_problems"] == 0 and out["doctor_orphans"] == []


def test_numpy_scalars_are_numbers_in_trajectories_plans_and_run_recorders(wh, open_writer, config):
    w = open_writer(wh, **config)
    w.add_trajectory(
        messages=[],
        rewards=np.float32(0.5),
        advantages=np.float32(0.25),
        group=np.int64(3),
        replica=np.int64(1),
        task_id="t",
    )
    w.flush()
    assert wh.trajectories().collect().select("rewards", "advantages", "replica").to_dicts() == [
        {"rewards": 0.5, "advantages": [0.25], "replica": 1}
    ]
    assert wh.run_recorder("scenario", save_frequency=np.int64(2), max_steps=np.uint8(5)).max_steps == 5
    assert wh.resume_plan(config, ["t"], runs=np.int64(1)) is not None


ANY_ARGUMENT = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
    st.timedeltas(),
    st.datetimes(),
    st.sampled_from([np.int64(3), np.float32(2.5), np.bool_(True), b"2", 1j]),
)


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    value=ANY_ARGUMENT,
    entry=st.sampled_from(
        [
            "open.version",
            "open.as_of",
            "open.checkpoint_interval",
            "writer.flush_rows",
            "writer.flush_bytes",
            "writer.flush_interval",
            "writer.max_buffered_events",
            "history.limit",
            "scores.k",
            "scores.threshold",
            "vacuum.retain",
            "vacuum.orphan_window",
            "compact.target_file_size",
            "compact.min_files",
            "expire.older_than",
            "follow.last",
            "doctor.deep",
        ]
    ),
)
def test_any_argument_value_is_accepted_or_refused_with_a_warehouse_error(root, wh, value, entry):
    """Whatever a caller passes, a public function either works or raises a WarehouseError (a
    bad argument also a ValueError): never a bare TypeError, OverflowError or AttributeError."""
    fn, arg = entry.split(".")
    cfg = {"dataset": {"type": "d", "config": {}}, "agent": {"type": "a", "config": {}}}
    calls = {
        "open": lambda: warehouse.open(str(root), **{arg: value}),
        "writer": lambda: wh.writer(**cfg, **{arg: value}).close(),
        "history": lambda: wh.history(**{arg: value}),
        "scores": lambda: wh.scores(**{arg: value}).fetchall(),
        "vacuum": lambda: wh.vacuum(**{arg: value}, dry_run=True),
        "compact": lambda: wh.compact(**{arg: value}, dry_run=True),
        "expire": lambda: wh.expire(value, dry_run=True),
        "follow": lambda: list(wh.follow(follow=False, last=value)),
        "doctor": lambda: wh.doctor(deep=value),
    }
    try:
        calls[fn]()
    except warehouse.WarehouseError as exc:
        if isinstance(exc, (warehouse.InvalidArgument, warehouse.InvalidRecord)):
            assert arg in str(exc) or arg == "older_than" and "older_than" in str(exc)
        else:
            assert isinstance(exc, warehouse.VersionNotFound) and arg in ("version", "as_of"), exc
