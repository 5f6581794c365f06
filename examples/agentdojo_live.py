"""AgentDojo's banking suite benchmarked with a model-free agent, each task committed to a warehouse as
it finishes; then the warehouse's scores beside AgentDojo's own, and the import of AgentDojo's logs
(which adds nothing). Run: `python examples/agentdojo_live.py [WAREHOUSE_URL [LOGDIR]]` (needs the
`agentdojo` package; no model, no network).

The agent runs each task's ground truth, except that on an attacked run of user_task_1 it does what
the injection asks, so that utility and attack success are not all 1 or all 0.
"""

from __future__ import annotations

import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentdojo.agent_pipeline import AgentPipeline, GroundTruthPipeline, InitQuery, SystemMessage
from agentdojo.agent_pipeline.base_pipeline_element import BasePipelineElement
from agentdojo.attacks.attack_registry import load_attack
from agentdojo.benchmark import aggregate_results
from agentdojo.functions_runtime import EmptyEnv, Env, FunctionsRuntime
from agentdojo.logging import Logger, OutputLogger
from agentdojo.task_suite.load_suites import get_suite

import warehouse
from warehouse.compat.agentdojo import benchmark_suite_with_injections


class ObedientGroundTruth(BasePipelineElement):
    """The ground truth of whichever task the query is; the injection task's on attacked user_task_1."""

    def __init__(self, suite: Any) -> None:
        self.suite = suite
        self.tasks = {t.PROMPT: t for t in suite.user_tasks.values()}
        self.tasks.update({t.GOAL: t for t in suite.injection_tasks.values()})

    def query(
        self,
        query: str,
        runtime: FunctionsRuntime,
        env: Env = EmptyEnv(),  # noqa: B008 - the signature of BasePipelineElement.query
        messages: Sequence = (),
        extra_args: dict = {},  # noqa: B006 - the signature of BasePipelineElement.query
    ) -> tuple:
        task = self.tasks[query]
        injection_task = Logger.get().context.get("injection_task_id")
        if task.ID == "user_task_1" and injection_task is not None:
            task = self.suite.get_injection_task_by_id(injection_task)
        return GroundTruthPipeline(task).query(query, runtime, env, messages, extra_args)


def main(url: str = "agentdojo-warehouse", logdir: str = "agentdojo-runs") -> None:
    suite = get_suite("v1.2", "banking")
    pipeline = AgentPipeline([SystemMessage("You are a helpful assistant."), InitQuery(), ObedientGroundTruth(suite)])
    pipeline.name = "local-ground-truth"  # "local": the model name the important_instructions attack uses
    with warnings.catch_warnings(), OutputLogger(logdir):
        warnings.simplefilter("ignore")  # AgentDojo warns about its own injection-task checks
        results = benchmark_suite_with_injections(
            pipeline,
            suite,
            load_attack("important_instructions", suite, pipeline),
            Path(logdir),
            True,
            ["user_task_0", "user_task_1", "user_task_2", "user_task_3"],
            ["injection_task_0", "injection_task_1"],
            False,
            "v1.2",
            warehouse=url,
        )
    print(f"AgentDojo: utility {aggregate_results([results['utility_results']]):.3f}, ", end="")
    print(f"attack success {aggregate_results([results['security_results']]):.3f}")
    wh = warehouse.open(url)
    for attack, n, utility, asr in wh.scores(by="attack").select("attack, n, utility, asr").fetchall():
        print(f"warehouse ({attack}, {n} runs): utility {utility:.3f}, attack success {asr:.3f}")
    before = wh.sql("select count(*) from executions").fetchall()[0][0]
    report = wh.import_("agentdojo", logdir)
    after = wh.sql("select count(*) from executions").fetchall()[0][0]
    print(f"importing AgentDojo's {report.sources} log files afterwards: {before} executions before, {after} after")


if __name__ == "__main__":
    main(*sys.argv[1:3])
