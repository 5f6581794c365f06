"""Bad input fails in `add_execution` itself, naming the field and value, and leaves everything
buffered and stored intact; a damaged or foreign warehouse is refused with a specific error."""

from __future__ import annotations

import json
from typing import Any

import pytest

import warehouse
from warehouse.manifest import commit_name


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
    "lone_surrogate_message_content": ({"messages": [{"role": "user", "content": "ok"},
                                                     {"role": "assistant", "content": "broken \udc80 text"}]},
                                       "messages[1].content"),
    "lone_surrogate_in_content_part": ({"messages": [{"role": "user", "content": [{"type": "text", "text": "\ud83d"}]}]},
                                       "messages[0].content"),
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
    stored = [w.add_execution(task_id=f"stored_{i}", benign_score=1.0, messages=GOOD_MESSAGES,
                              attacks=[{"vector_id": "v0", "content": "x"}]) for i in range(2)]
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


@pytest.mark.parametrize("content", [b"{not json", b"", b"\xff\xfe\x00garbage", b"[]", b"null", b'{"version": 2}',
                                     b'{"version": "two", "committed_at": "2024-01-01T00:00:00Z", "operation": "append"}'],
                         ids=["syntax", "empty", "binary", "list", "null", "missing_fields", "bad_version"])
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
