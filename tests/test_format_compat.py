"""The on-disk format did not change: a warehouse written by the code before the layered layout (commit
79daeac, by tests/fixtures/make_warehouse_0_1.py) opens with today's code and answers exactly what that
code answered (tests/fixtures/expect_warehouse_0_1.py recorded it), and today's code can go on writing
to it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

import warehouse

FIXTURES = Path(__file__).resolve().parent / "fixtures"
OLD = FIXTURES / "warehouse-0.1"
EXPECTED = json.loads((FIXTURES / "warehouse-0.1.expected.json").read_text())


@pytest.fixture
def old(tmp_path: Path) -> warehouse.Warehouse:
    root = tmp_path / "wh"
    shutil.copytree(OLD, root)  # a copy: the tests write to it
    return warehouse.open(str(root))


def rows(wh: warehouse.Warehouse, sql: str) -> list[list]:
    return json.loads(json.dumps([list(r) for r in wh.sql(sql).fetchall()], default=str))


def test_a_warehouse_written_before_answers_what_it_answered(old: warehouse.Warehouse) -> None:
    assert old.version == EXPECTED["version"]
    assert [[c.version, c.operation, c.files_added, c.rows_added, c.files_removed] for c in old.history()] == EXPECTED[
        "history"
    ]
    assert rows(old, "select dataset, agent, attack, n, utility, asr from scores order by all") == EXPECTED["scores"]
    assert (
        rows(
            old,
            "select execution_id, task_id, status, benign_score, attack_score, input_tokens "
            "from executions order by all",
        )
        == EXPECTED["executions"]
    )
    assert rows(old, "select execution_id, seq, role, content from messages order by all") == EXPECTED["messages"]
    assert rows(old, "select execution_id, vector_id, content from attacks order by all") == EXPECTED["attacks"]
    assert rows(old, "select execution_id from superseded order by all") == EXPECTED["superseded"] == [["job42-task7"]]
    ex = old.execution("job42-task7")
    assert [ex["benign_score"], ex["messages"]] == EXPECTED["job42"]
    task8 = old.sql("select execution_id from executions where task_id = 'task8'").fetchall()[0][0]
    assert [[c.step, c.state] for c in old.executions.checkpoints(task8)] == EXPECTED["checkpoints"]
    assert old.sessions.load("s1")[0] == EXPECTED["session"]
    assert len(old.snapshot.files) == EXPECTED["files"]
    report = old.maintenance.doctor(deep=True)
    assert report.healthy and report.findings == []


def test_todays_code_writes_on_to_a_warehouse_written_before(old: warehouse.Warehouse) -> None:
    before = rows(old, "select agent, attack, n from scores order by all")
    with old.writer(
        dataset={"type": "agentdojo", "config": {"suite": "workspace"}},
        agent={"type": "plain", "config": {"model": "gpt-5"}},
    ) as w:
        w.add_execution(
            execution_id="job42-task7",
            task_id="task7",
            benign_score=1.0,
            messages=[{"role": "user", "content": "attempt 2"}],
        )
    old.maintenance.compact()
    again = warehouse.open(old.url)
    assert again.execution("job42-task7")["messages"] == [{"role": "user", "content": "attempt 2"}]
    assert rows(again, "select count(*) from executions where execution_id = 'job42-task7'") == [[1]]
    after = rows(again, "select agent, attack, n from scores order by all")
    assert after != before and sum(r[2] for r in after) == sum(r[2] for r in before)  # moved, not added
    assert again.maintenance.doctor().healthy
