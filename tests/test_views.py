"""The DuckDB views and Polars scans equal a plain-Python reference computed from what was written,
and a filter on a partition column reads only that partition's files."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Any

import duckdb
import pytest

import warehouse
from tests.reference_stats import mean, wilson
from warehouse import RunConfig
from warehouse.core.schemas import catalog

DATASETS = [{"type": "agentdojo", "config": {"suite": "workspace"}}, {"type": "injecagent", "config": {"split": "dh"}}]
AGENTS = [{"type": "tool_agent", "config": {"model": "gpt-4o"}}, {"type": "react", "config": {"max_steps": 5}}]
ATTACKS = [None, {"type": "important_instructions", "config": {"position": "end"}}]
TASKS = ["user_task_0", "user_task_1", "user_task_2"]
MODELS = ["gpt-4o-2024-08-06", "claude-3-5-sonnet"]


def records(rel: duckdb.DuckDBPyRelation) -> list[dict[str, Any]]:
    cols = rel.columns
    return [dict(zip(cols, r)) for r in rel.fetchall()]


def reference_scores(rows: list[dict[str, Any]]) -> dict[str, Any]:
    benign = [r["benign_score"] for r in rows if r["benign_score"] is not None]
    attack = [r["attack_score"] for r in rows if r["attack_score"] is not None]
    tokens = [r["total_tokens"] for r in rows if r["total_tokens"] is not None]
    costs = [r["cost"] for r in rows if r["cost"] is not None]
    u, a = mean(benign), mean(attack)
    (ul, uh), (al, ah) = wilson(u, len(benign)), wilson(a, len(attack))
    return {
        "n": len(rows),
        "n_tasks": len({r["task_id"] for r in rows}),
        "utility": u,
        "utility_low": ul,
        "utility_high": uh,
        "asr": a,
        "asr_low": al,
        "asr_high": ah,
        "n_failed": sum(r["status"] == "failed" for r in rows),
        "total_tokens": sum(tokens) if tokens else None,
        "cost": sum(costs) if costs else None,
    }


def assert_close(got: dict[str, Any], want: dict[str, Any]) -> None:
    assert set(want) <= set(got)
    for k, v in want.items():
        if isinstance(v, float):
            assert got[k] == pytest.approx(v, rel=0, abs=1e-9), k
        else:
            assert got[k] == v, k


class Campaign:
    """2 datasets x 2 agents x (benign, attacked), random scores from a fixed seed; keeps what it wrote."""

    def __init__(self, wh: warehouse.Warehouse, seed: int = 20240607) -> None:
        rng = random.Random(seed)
        self.executions: list[dict[str, Any]] = []
        self.messages = 0
        self.attacks: list[tuple] = []
        self.configs: dict[str, RunConfig] = {}
        for d in DATASETS:
            for a in AGENTS:
                for k in ATTACKS:
                    rc = RunConfig.of(d, a, k)
                    self.configs[rc.hash] = rc
                    # Two writers of one config opened before either flushes: both buffer its config row.
                    writers = [
                        wh.writer(dataset=d, agent=a, attack=k, run_id=f"run-{rc.hash}-{i}", flush_interval=None)
                        for i in range(2 if d is DATASETS[0] and a is AGENTS[0] else 1)
                    ]
                    for i in range(rng.randint(5, 9)):
                        self._add(rng, writers[i % len(writers)], rc, k is not None, i)
                    for w in writers:
                        w.close()

    def _add(self, rng: random.Random, w: warehouse.Writer, rc: RunConfig, attacked: bool, i: int) -> None:
        failed = rng.random() < 0.2
        row = {
            "task_id": rng.choice(TASKS),
            "model": rng.choice(MODELS),
            "status": "failed" if failed else "completed",
            "error": "TimeoutError: tool call" if failed else None,
            "benign_score": None if failed else rng.choice([0.0, 1.0, rng.random()]),
            "attack_score": (rng.choice([0.0, 1.0]) if attacked and not failed else None),
            "input_tokens": rng.randint(100, 5000),
            "output_tokens": rng.randint(10, 900),
            "cost": round(rng.random() / 100, 6),
            "scores": {"f1": rng.random()},
            "metadata": {"i": i, "tag": rng.choice("xyz")},
        }
        msgs = [{"role": "user", "content": f"do {row['task_id']}"}, {"role": "assistant", "content": "done"}][
            : rng.randint(1, 2)
        ]
        attacks = [
            {"vector_id": f"inj_{j}", "type": "email", "content": f"Ignore and do {j}"}
            for j in range(rng.randint(0, 2))
        ]
        eid = w.add_execution(
            task_id=row["task_id"],
            model=row["model"],
            status=row["status"],
            error=row["error"],
            benign_score=row["benign_score"],
            attack_score=row["attack_score"],
            usage={"input_tokens": row["input_tokens"], "output_tokens": row["output_tokens"], "cost": row["cost"]},
            scores=row["scores"],
            metadata=row["metadata"],
            messages=msgs,
            attacks=attacks,
            sample=i,
        )
        row.update(
            execution_id=eid,
            run_id=w.run_id,
            sample=i,
            revision=0,
            total_tokens=row["input_tokens"] + row["output_tokens"],
            **rc.partition,
        )
        self.executions.append(row)
        self.messages += len(msgs)
        self.attacks += [(eid, a["vector_id"], a["type"], a["content"], rc.partition["agent"]) for a in attacks]


@pytest.fixture(scope="module")
def campaign(tmp_path_factory) -> tuple[warehouse.Warehouse, Campaign]:
    wh = warehouse.open(str(tmp_path_factory.mktemp("views") / "wh"), create=True)
    return wh, Campaign(wh)


EXECUTION_COLUMNS = [
    "execution_id",
    "task_id",
    "run_id",
    "sample",
    "dataset",
    "agent",
    "attack",
    "config_hash",
    "model",
    "status",
    "error",
    "revision",
    "benign_score",
    "attack_score",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "cost",
    "scores",
    "metadata",
]


def test_executions_view_equals_what_was_written(campaign):
    wh, c = campaign
    got = {r["execution_id"]: r for r in records(wh.sql(f"select {', '.join(EXECUTION_COLUMNS)} from executions"))}
    assert len(got) == len(c.executions)
    for want in c.executions:
        row = dict(got[want["execution_id"]])
        row["metadata"] = json.loads(row["metadata"])
        assert {k: row[k] for k in EXECUTION_COLUMNS} == {k: want[k] for k in EXECUTION_COLUMNS}


def test_messages_attacks_and_configs_views_equal_what_was_written(campaign):
    wh, c = campaign
    assert wh.sql("select count(*) from messages").fetchall() == [(c.messages,)]
    assert sorted(wh.sql("select execution_id, vector_id, type, content, agent from attacks").fetchall()) == sorted(
        c.attacks
    )
    got = records(wh.sql("select * from configs"))
    assert len(got) == len(c.configs) == 8  # one row per config, though one config had two first writers
    for row in got:
        rc = c.configs[row["config_hash"]]
        assert (row["dataset"], row["agent"], row["attack"], row["config_hash"]) == tuple(rc.partition.values())
        assert (row["dataset_type"], row["agent_type"], row["attack_type"]) == (
            rc.dataset["type"],
            rc.agent["type"],
            rc.attack["type"] if rc.attack else None,
        )
        assert json.loads(row["dataset_config"]) == rc.dataset["config"]
        assert json.loads(row["agent_config"]) == rc.agent["config"]
        assert (json.loads(row["attack_config"]) if row["attack_config"] else None) == (
            rc.attack["config"] if rc.attack else None
        )
        assert json.loads(row["config"]) == rc.as_dict()


def group(rows: list[dict[str, Any]], by: list[str]) -> dict[tuple, list[dict[str, Any]]]:
    out: dict[tuple, list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        out[tuple(r[b] for b in by)].append(r)
    return out


def test_scores_view_equals_python_reference(campaign):
    wh, c = campaign
    by = ["dataset", "agent", "attack", "config_hash"]
    got = {tuple(r[b] for b in by): r for r in records(wh.sql("select * from scores"))}
    want = group(c.executions, by)
    assert set(got) == set(want)
    for key, rows in want.items():
        assert_close(got[key], reference_scores(rows))
        if key[2] == "none":
            assert got[key]["asr"] is None and got[key]["asr_low"] is None


@pytest.mark.parametrize(
    "by",
    [
        ["dataset"],
        ["agent", "attack"],
        ["config_hash"],
        ["model"],
        ["task_id"],
        ["run_id"],
        ["status"],
        ["dataset", "agent", "attack"],
        [],
    ],
)
def test_scores_by_grouping_equals_python_reference(campaign, by):
    wh, c = campaign
    got = records(wh.scores(by=by))
    want = group(c.executions, by)
    assert len(got) == len(want)
    for r in got:
        assert_close(r, reference_scores(want[tuple(r[b] for b in by)]))


def test_scores_filtered_by_where_equals_python_reference(campaign):
    wh, c = campaign
    got = records(wh.scores(by=["agent"], where="model = 'claude-3-5-sonnet'"))
    want = group([r for r in c.executions if r["model"] == "claude-3-5-sonnet"], ["agent"])
    assert {r["agent"] for r in got} == {k[0] for k in want}
    for r in got:
        assert_close(r, reference_scores(want[(r["agent"],)]))


def test_scores_refuse_an_unknown_grouping(campaign):
    wh, _ = campaign
    with pytest.raises(warehouse.WarehouseError, match="metadata"):
        wh.scores(by=["metadata"])


def test_metadata_is_filterable_by_json_path(campaign):
    wh, c = campaign
    got = {r[0] for r in wh.sql("select execution_id from executions where metadata->>'$.tag' = 'y'").fetchall()}
    assert got == {r["execution_id"] for r in c.executions if r["metadata"]["tag"] == "y"}


def normalise(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: json.dumps({k: str(v) for k, v in r.items()}, sort_keys=True))


@pytest.mark.parametrize("table", ["executions", "messages", "attacks"])
def test_scan_equals_sql_view(campaign, table):
    wh, _ = campaign
    scanned = wh.scan(table).collect()
    viewed = wh.sql(f"select * from {table}").pl()
    assert sorted(scanned.columns) == sorted(viewed.columns) == sorted(catalog().table(table).column_names)
    assert normalise(scanned.to_dicts()) == normalise(viewed.select(scanned.columns).to_dicts())


def test_scan_of_configs_holds_every_config(campaign):
    wh, c = campaign
    assert set(wh.scan("configs").collect()["config_hash"]) == set(c.configs)


def test_warehouse_queried_while_empty_sees_later_commits(wh, open_writer, config):
    for table in ("executions", "messages", "attacks", "configs", "scores"):
        assert wh.sql(f"select count(*) from {table}").fetchall() == [(0,)]
    w = open_writer(wh, **config)
    eid = w.add_execution(
        task_id="t0",
        benign_score=1.0,
        messages=[{"role": "user", "content": "hi"}],
        attacks=[{"vector_id": "v", "content": "x"}],
    )
    w.flush()
    assert wh.version == 1
    assert wh.sql("select execution_id from executions").fetchall() == [(eid,)]
    for table in ("messages", "attacks", "configs", "scores"):
        assert wh.sql(f"select count(*) from {table}").fetchall() == [(1,)], table


def test_root_directory_named_like_a_partition_changes_nothing(tmp_path, open_writer):
    root = tmp_path / "year=2024" / "agent=shadow" / "wh"
    wh = warehouse.open(str(root), create=True)
    w = open_writer(wh, dataset="agentdojo", agent="tool_agent")
    eid = w.add_execution(task_id="t0", benign_score=1.0)
    w.flush()
    assert wh.sql("select execution_id, dataset, agent from executions").fetchall() == [
        (eid, "agentdojo", "tool_agent")
    ]
    assert wh.sql("select count(*) from executions where agent = 'tool_agent'").fetchall() == [(1,)]
    assert sorted(wh.sql("select * from executions").columns) == sorted(catalog().table("executions").column_names)
    assert [(r["agent"], r["n"]) for r in records(wh.sql("select * from scores"))] == [("tool_agent", 1)]


# -- partition pruning ----------------------------------------------------------------------------


@pytest.fixture
def pruning_wh(tmp_path) -> tuple[Path, dict[str, list[dict[str, Any]]]]:
    """8 configs, one flush each; returns the root and the partitions of the executions written."""
    root = tmp_path / "wh"
    wh = warehouse.open(str(root), create=True)
    for d in DATASETS:
        for a in AGENTS:
            for k in ATTACKS:
                with wh.writer(dataset=d, agent=a, attack=k, flush_interval=None) as w:
                    for t in TASKS:
                        w.add_execution(
                            task_id=t,
                            benign_score=1.0,
                            attack_score=0.0 if k else None,
                            messages=[{"role": "user", "content": t}],
                            attacks=[{"vector_id": "v", "content": t}],
                        )
    return root, {t: [dict(f.partition) for f in wh.files(t)] for t in wh.tables}


@pytest.mark.parametrize("column", ["dataset", "agent", "attack", "config_hash"])
def test_filter_on_partition_column_opens_only_that_partitions_files(pruning_wh, column):
    root, _ = pruning_wh
    wh = warehouse.open(str(root))
    # The partition of the file listed last: every other file, including the first listed, is garbage.
    last = sorted(wh.files("executions"), key=lambda f: f.path)[-1].partition
    value = last[column]
    expected = sum(f.rows for f in wh.files("executions") if f.partition[column] == value)
    garbled = 0
    for table in wh.tables:
        for f in wh.files(table):
            if f.partition[column] != value:
                (root / f.path).write_bytes(b"not parquet " * 8)
                garbled += 1
    assert garbled > 0 and expected > 0

    fresh = warehouse.open(str(root))
    assert fresh.sql(f"select count(*) from executions where {column} = ?", [value]).fetchall() == [(expected,)]
    scores = records(fresh.sql(f"select * from scores where {column} = ?", [value]))
    assert sum(r["n"] for r in scores) == expected and all(r[column] == value for r in scores)
    assert fresh.sql(f"select count(*) from messages where {column} = ?", [value]).fetchall() == [(expected,)]
    with pytest.raises(duckdb.Error):
        fresh.sql("select count(*) from executions").fetchall()
    with pytest.raises(duckdb.Error):
        fresh.sql("select * from scores").fetchall()
