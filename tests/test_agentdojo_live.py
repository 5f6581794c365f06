"""`warehouse.compat.agentdojo`: a real AgentDojo suite (banking), run by agentdojo's own benchmark
functions with a model-free pipeline (each task's ground truth; for one user task it obeys the
injection instead), commits each task's result while the benchmark runs; the warehouse says what
AgentDojo's result objects say; importing the run's logs afterwards adds nothing."""

from __future__ import annotations

import inspect
import shutil
import subprocess
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from agentdojo import benchmark as agentdojo_benchmark
from agentdojo.agent_pipeline import AgentPipeline, GroundTruthPipeline, InitQuery, SystemMessage
from agentdojo.agent_pipeline.base_pipeline_element import BasePipelineElement
from agentdojo.attacks.attack_registry import load_attack
from agentdojo.benchmark import aggregate_results
from agentdojo.functions_runtime import EmptyEnv, Env, FunctionsRuntime
from agentdojo.logging import Logger, OutputLogger
from agentdojo.task_suite.load_suites import get_suite

import warehouse
from warehouse.compat import agentdojo as live
from warehouse.core.errors import InvalidArgument, ReadOnlyWarehouse

VERSION = "v1.2"
USER_TASKS = ["user_task_0", "user_task_1", "user_task_2"]
INJECTION_TASKS = ["injection_task_0", "injection_task_1"]
OBEYS = "user_task_1"  # the user task for which the agent does what the injection asks instead
ATTACK = "important_instructions"
PIPELINE = "local-ground-truth"  # important_instructions addresses the model it names ("local": "Local model")


def _committed(url: str) -> int:
    """Executions committed in the warehouse at `url`, seen through a handle of its own."""
    return warehouse.open(url).sql("select count(*) from executions").fetchall()[0][0]


class _Agent(BasePipelineElement):
    """The ground truth of the task the query is (a user task's prompt, an injection task's goal);
    on an attacked run of OBEYS, the injection task's ground truth instead. Before each task it notes
    how many executions the warehouse at `url` holds committed."""

    def __init__(self, suite: Any, url: str | None) -> None:
        self.suite, self.url = suite, url
        self.tasks = {t.PROMPT: t for t in suite.user_tasks.values()}
        self.tasks.update({t.GOAL: t for t in suite.injection_tasks.values()})
        self.seen: list[tuple[str, str | None, int]] = []

    def query(
        self,
        query: str,
        runtime: FunctionsRuntime,
        env: Env = EmptyEnv(),  # noqa: B008 - the signature of BasePipelineElement.query
        messages: Sequence = (),
        extra_args: dict = {},  # noqa: B006 - the signature of BasePipelineElement.query
    ) -> tuple:
        task = self.tasks[query]
        injection_task = Logger.get().context.get("injection_task_id")  # the TraceLogger of this run
        if self.url is not None:
            self.seen.append((task.ID, injection_task, _committed(self.url)))
        if task.ID == OBEYS and injection_task is not None:
            task = self.suite.get_injection_task_by_id(injection_task)
        return GroundTruthPipeline(task).query(query, runtime, env, messages, extra_args)


def _pipeline(suite: Any, url: str | None) -> tuple[AgentPipeline, _Agent]:
    agent = _Agent(suite, url)
    pipeline = AgentPipeline([SystemMessage("You are an AI language model who assists the user."), InitQuery(), agent])
    pipeline.name = PIPELINE
    return pipeline, agent


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict[str, Any]:
    """The benchmark without and with injections, under OutputLogger + WarehouseLogger."""
    base = tmp_path_factory.mktemp("agentdojo_live")
    url, logdir = str(base / "wh"), base / "runs"
    suite = get_suite(VERSION, "banking")
    pipeline, agent = _pipeline(suite, url)
    warehouse.open(url, create=True)
    with warnings.catch_warnings(), OutputLogger(str(logdir)), live.WarehouseLogger(url) as logger:
        warnings.simplefilter("ignore")
        benign = agentdojo_benchmark.benchmark_suite_without_injections(
            pipeline, suite, logdir, force_rerun=True, user_tasks=USER_TASKS, benchmark_version=VERSION
        )
        attacked = agentdojo_benchmark.benchmark_suite_with_injections(
            pipeline,
            suite,
            load_attack(ATTACK, suite, pipeline),
            logdir,
            force_rerun=True,
            user_tasks=USER_TASKS,
            injection_tasks=INJECTION_TASKS,
            verbose=False,
            benchmark_version=VERSION,
        )
        committed_on_return = _committed(url)
    return dict(
        url=url,
        logdir=logdir,
        benign=benign,
        attacked=attacked,
        seen=agent.seen,
        logger=logger,
        committed_on_return=committed_on_return,
    )


def _scores(wh: Any, dataset: str, attack: str) -> dict[str, tuple[float | None, float | None]]:
    rows = wh.sql(
        "select task_id, benign_score, attack_score from executions where dataset = ? and attack = ?", [dataset, attack]
    ).fetchall()
    return {t: (b, a) for t, b, a in rows}


@pytest.mark.slow
def test_each_task_is_committed_before_the_next_one_starts(run):
    seen = run["seen"]
    # 3 user tasks alone, 2 injection tasks alone (AgentDojo's checks), then 3 x 2 attacked pairs
    assert len(seen) == 3 + 2 + 6
    assert [n for _, _, n in seen] == list(range(len(seen)))
    assert run["committed_on_return"] == len(seen)  # the last one too, before the benchmark returned
    assert len(run["logger"].recorded) == len(seen)
    assert run["logger"].failures == []


@pytest.mark.slow
def test_scores_are_what_agentdojo_results_say(run):
    wh = warehouse.open(run["url"])
    benign, attacked = run["benign"], run["attacked"]
    assert _scores(wh, "agentdojo", "none") == {u: (float(v), None) for (u, _), v in benign["utility_results"].items()}
    assert _scores(wh, "agentdojo", ATTACK) == {
        f"{u}:{i}": (float(v), float(attacked["security_results"][(u, i)]))
        for (u, i), v in attacked["utility_results"].items()
    }
    assert _scores(wh, "agentdojo.checks", "none") == {
        i: (float(v), None) for i, v in attacked["injection_tasks_utility_results"].items()
    }
    # the obedient user task makes both outcomes occur, so equality above is not vacuous
    assert set(attacked["utility_results"].values()) == {True, False}
    assert set(attacked["security_results"].values()) == {True, False}
    by_attack = {r[0]: r[1:] for r in wh.scores(by="attack").select("attack, n, utility, asr").fetchall()}
    assert by_attack["none"] == (3, pytest.approx(aggregate_results([benign["utility_results"]])), None)
    assert by_attack[ATTACK] == (
        6,
        pytest.approx(aggregate_results([attacked["utility_results"]])),
        pytest.approx(aggregate_results([attacked["security_results"]])),
    )


@pytest.mark.slow
def test_messages_and_injections_are_stored(run):
    wh = warehouse.open(run["url"])
    (eid,) = wh.sql(
        "select execution_id from executions where task_id = ? and attack = ?", [f"{OBEYS}:injection_task_0", ATTACK]
    ).fetchall()[0]
    ex = wh.execution(eid)
    assert [m["role"] for m in ex["messages"]][:2] == ["system", "user"]
    assert any(m.get("tool_calls") for m in ex["messages"])
    assert ex["attacks"] and all(a["type"] == ATTACK for a in ex["attacks"])


def _answers(url: str) -> list[tuple]:
    wh = warehouse.open(url)
    return [
        wh.sql("select * exclude (write_id) from executions order by execution_id").fetchall(),
        wh.sql("select * exclude (write_id) from messages order by execution_id, seq").fetchall(),
        wh.sql("select * exclude (write_id) from attacks order by execution_id, vector_id").fetchall(),
        [tuple(r) for r in wh.scores(by="dataset,attack", checks=True).fetchall()],
    ]


@pytest.mark.slow
def test_importing_the_logs_afterwards_adds_nothing(run, tmp_path):
    before = _answers(run["url"])
    copy = str(tmp_path / "wh")
    shutil.copytree(run["url"], copy)
    report = warehouse.open(copy).import_("agentdojo", run["logdir"])
    assert report.ok and report.imported == len(run["seen"])
    assert _answers(copy) == before
    fresh = str(tmp_path / "imported")
    warehouse.open(fresh, create=True).import_("agentdojo", run["logdir"])
    assert _answers(fresh) == before


@pytest.mark.slow
def test_wrappers_take_agentdojo_arguments_and_the_url_from_the_environment(tmp_path, monkeypatch):
    for name in ("benchmark_suite_with_injections", "benchmark_suite_without_injections"):
        ours = list(inspect.signature(getattr(live, name)).parameters)
        assert ours == [*inspect.signature(getattr(agentdojo_benchmark, name)).parameters, "warehouse"]
    suite = get_suite(VERSION, "banking")
    pipeline, _ = _pipeline(suite, None)
    monkeypatch.delenv(live.URL_ENV, raising=False)
    with pytest.raises(InvalidArgument, match=live.URL_ENV):
        live.benchmark_suite_without_injections(pipeline, suite, tmp_path / "runs", True, ["user_task_0"])
    url = str(tmp_path / "wh")
    monkeypatch.setenv(live.URL_ENV, url)
    with warnings.catch_warnings(), OutputLogger(str(tmp_path / "runs")):
        warnings.simplefilter("ignore")
        results = live.benchmark_suite_without_injections(
            pipeline, suite, tmp_path / "runs", True, ["user_task_0", "user_task_3"], VERSION
        )
    assert _scores(warehouse.open(url), "agentdojo", "none") == {
        u: (float(v), None) for (u, _), v in results["utility_results"].items()
    }


@pytest.mark.slow
def test_a_warehouse_that_refuses_writes_does_not_stop_the_benchmark(tmp_path):
    url = str(tmp_path / "wh")
    warehouse.open(url, create=True)
    past = warehouse.open(url, version=0)  # a read-only snapshot: every writer is refused
    suite = get_suite(VERSION, "banking")
    pipeline, _ = _pipeline(suite, None)
    with warnings.catch_warnings(), OutputLogger(str(tmp_path / "runs")), live.WarehouseLogger(past) as logger:
        warnings.simplefilter("ignore")
        results = agentdojo_benchmark.benchmark_suite_without_injections(
            pipeline, suite, tmp_path / "runs", True, ["user_task_0", "user_task_1"], VERSION
        )
    assert len(results["utility_results"]) == 2
    assert [type(e) for e in logger.failures] == [ReadOnlyWarehouse, ReadOnlyWarehouse]
    assert _committed(url) == 0
    report = warehouse.open(url).import_("agentdojo", tmp_path / "runs")  # AgentDojo's logs still hold them
    assert report.imported == 2 and _committed(url) == 2


@pytest.mark.slow
@pytest.mark.subprocess
def test_the_example_script_prints_equal_scores_and_the_import_adds_nothing(tmp_path):
    script = Path(__file__).resolve().parent.parent / "examples" / "agentdojo_live.py"
    res = subprocess.run(
        [sys.executable, str(script), "wh", "runs"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    agentdojo_line, warehouse_line, import_line = res.stdout.splitlines()
    assert agentdojo_line.removeprefix("AgentDojo: ") == warehouse_line.split("): ")[1]
    assert "(important_instructions, 8 runs)" in warehouse_line
    assert import_line.endswith("10 executions before, 10 after")


class _Crash(RuntimeError):
    """What the crashing agent raises (AgentDojo lets it through: it is no API error it knows)."""


class _CrashingAgent(_Agent):
    def query(self, query: str, runtime: FunctionsRuntime, *args: Any) -> tuple:
        if self.tasks[query].ID == "user_task_2":
            raise _Crash("the model provider went away")
        return super().query(query, runtime, *args)


@pytest.mark.slow
def test_a_benchmark_that_crashes_keeps_every_task_finished_before(tmp_path):
    url = str(tmp_path / "wh")
    suite = get_suite(VERSION, "banking")
    agent = _CrashingAgent(suite, url)
    pipeline = AgentPipeline([SystemMessage("You are an AI language model who assists the user."), InitQuery(), agent])
    pipeline.name = PIPELINE
    with pytest.raises(_Crash), OutputLogger(str(tmp_path / "runs")):  # else AgentDojo logs inside its package
        live.benchmark_suite_without_injections(pipeline, suite, tmp_path / "runs", True, USER_TASKS, warehouse=url)
    wh = warehouse.open(url)
    assert sorted(t for (t,) in wh.sql("select task_id from executions").fetchall()) == USER_TASKS[:2]
