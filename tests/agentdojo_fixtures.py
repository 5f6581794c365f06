"""AgentDojo logs written by the `agentdojo` package itself, with no model: its `GroundTruthPipeline`
(each task's ground-truth tool calls, run against the real suite environment) inside an
`AgentPipeline([SystemMessage, InitQuery, ...])`, benchmarked by `benchmark_suite_without_injections`
and `benchmark_suite_with_injections` under its `OutputLogger`, as `agentdojo.scripts.benchmark` does.

`benchmark_suite_with_injections` also runs each injection task alone, as a user task without an
attack (`{pipeline}/{suite}/injection_task_N/none/none.json`), to check that it can be achieved.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentdojo.agent_pipeline import AgentPipeline, GroundTruthPipeline, InitQuery, SystemMessage
from agentdojo.agent_pipeline.base_pipeline_element import BasePipelineElement
from agentdojo.attacks.attack_registry import load_attack
from agentdojo.benchmark import benchmark_suite_with_injections, benchmark_suite_without_injections
from agentdojo.functions_runtime import EmptyEnv, Env, FunctionsRuntime
from agentdojo.logging import OutputLogger
from agentdojo.task_suite.load_suites import get_suite

PIPELINE = "ground-truth"
SUITE = "banking"
VERSION = "v1.2"


class _GroundTruthOfEachTask(BasePipelineElement):
    """`GroundTruthPipeline` of whichever task the query is (a user task's prompt, an injection task's goal)."""

    def __init__(self, suite: Any) -> None:
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
        return GroundTruthPipeline(self.tasks[query]).query(query, runtime, env, messages, extra_args)


def write_agentdojo_logs(
    logdir: Path,
    user_tasks: Sequence[str] = ("user_task_0", "user_task_1", "user_task_2"),
    injection_tasks: Sequence[str] = ("injection_task_0", "injection_task_1"),
    attack: str = "direct",
) -> dict[str, Any]:
    """Benchmark `user_tasks` without injections, then with `attack` x `injection_tasks`, logging to
    `logdir`. Returns the two SuiteResults: {"benign": ..., "attacked": ...}."""
    suite = get_suite(VERSION, SUITE)
    pipeline = AgentPipeline(
        [
            SystemMessage("You are an AI language model who assists the user."),
            InitQuery(),
            _GroundTruthOfEachTask(suite),
        ]
    )
    pipeline.name = PIPELINE
    with warnings.catch_warnings(), OutputLogger(str(logdir)):
        warnings.simplefilter("ignore")
        benign = benchmark_suite_without_injections(
            pipeline, suite, logdir, force_rerun=True, user_tasks=list(user_tasks), benchmark_version=VERSION
        )
        attacked = benchmark_suite_with_injections(
            pipeline,
            suite,
            load_attack(attack, suite, pipeline),
            logdir,
            force_rerun=True,
            user_tasks=list(user_tasks),
            injection_tasks=list(injection_tasks),
            verbose=False,
            benchmark_version=VERSION,
        )
    return {"benign": benign, "attacked": attacked}
