"""Real Inspect AI eval logs for the importer tests, written by inspect_ai itself.

`write_logs(log_dir, ...)` runs a tiny task against `mockllm/model` (its outputs decided by a
function of the conversation: a tool call first, then an answer) and writes the log in the given
format. The task has a multi-turn tool-using conversation, several epochs, several scorers (a
C/I letter scorer, a numeric one that leaves one sample
unscored (NaN), one with a dict value), unicode and long texts, and one sample
whose tool crashes (a sample error, kept in the log because fail_on_error=False).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from inspect_ai import Task, task
from inspect_ai import eval as inspect_eval
from inspect_ai.dataset import Sample
from inspect_ai.log import EvalLog
from inspect_ai.model import ChatMessageTool, ModelOutput, ModelUsage, get_model
from inspect_ai.scorer import CORRECT, INCORRECT, Score, Target, accuracy, mean, scorer
from inspect_ai.solver import TaskState, generate, system_message, use_tools
from inspect_ai.tool import tool

LONG = "Ελληνικά και 日本語 — " + "lorem ipsum dolor sit amet " * 400  # > 10 kB, non-ASCII

SAMPLES = [
    Sample(
        id="paris",
        input="What is the capital of France? Use the lookup tool. 🇫🇷",
        target="Paris",
        metadata={"topic": "géographie", "difficulty": 1},
    ),
    Sample(
        id="tokyo",
        input=[{"role": "user", "content": "東京はどこの首都ですか？ lookup を使って。"}],
        target=["Japan", "日本"],
        metadata={"topic": "地理", "difficulty": 2, "long": LONG},
    ),
    Sample(id="crash", input="Look up the unknowable.", target="nothing", metadata={"topic": "error"}),
]


@tool
def lookup():
    async def execute(query: str) -> str:
        """Look a fact up.

        Args:
            query: What to look up.
        """
        if "unknowable" in query:
            raise RuntimeError(f"lookup backend exploded on {query!r}")
        return {"France": "Paris", "Japan": "Tokyo — 東京"}.get(query, "unknown") + " (source: atlas)"

    return execute


def mock_outputs(input: list, tools: list, tool_choice: Any, config: Any) -> ModelOutput:
    """A tool call for a fresh question, an answer once the tool has replied."""
    question = next(m.text for m in input if m.role == "user")
    if not any(isinstance(m, ChatMessageTool) for m in input):
        query = "unknowable" if "unknowable" in question else ("Japan" if "東京" in question else "France")
        out = ModelOutput.for_tool_call("mockllm/model", "lookup", {"query": query}, content=f"Let me look up {query}.")
    else:
        answer = "Tokyo is the capital of Japan (日本)." if "東京" in question else "The capital is Paris."
        out = ModelOutput.from_content("mockllm/model", answer)
    out.usage = ModelUsage(
        input_tokens=100 + len(input),
        output_tokens=7,
        total_tokens=107 + len(input),
        input_tokens_cache_read=40,
        reasoning_tokens=3,
    )
    return out


@scorer(metrics=[accuracy()])
def letter():
    async def score(state: TaskState, target: Target) -> Score:
        ok = any(t.lower() in state.output.completion.lower() for t in target.target)
        return Score(
            value=CORRECT if ok else INCORRECT,
            answer=state.output.completion,
            explanation="target found" if ok else "target missing",
        )

    return score


@scorer(metrics=[mean()])
def length():
    async def score(state: TaskState, target: Target) -> Score:
        if "日本" in state.output.completion:  # inspect's NaN "unscored" sentinel
            return Score.unscored(reason="no length for kanji", metadata={"chars": len(state.output.completion)})
        return Score(value=len(state.output.completion) / 10, metadata={"chars": len(state.output.completion)})

    return score


@scorer(metrics={"turns": [mean()], "verdict": [mean()]})
def breakdown():
    async def score(state: TaskState, target: Target) -> Score:
        return Score(value={"turns": len(state.messages), "verdict": "P"})

    return score


@task
def capitals(difficulty: str = "easy") -> Task:
    return Task(
        dataset=SAMPLES,
        solver=[system_message("You answer geography questions — précisément."), use_tools(lookup()), generate()],
        scorer=[letter(), length(), breakdown()],
        metadata={"suite": "géo", "owner": "tests"},
    )


def write_logs(
    log_dir: Path, log_format: str, *, epochs: int = 2, difficulty: str = "easy", tags: list[str] | None = None
) -> EvalLog:
    """Run the task once and write its log (`log_format` "eval" or "json") under `log_dir`."""
    logging.getLogger("inspect_ai").setLevel(logging.ERROR)
    model = get_model("mockllm/model", custom_outputs=mock_outputs, memoize=False)
    [log] = inspect_eval(
        capitals(difficulty=difficulty),
        model=model,
        epochs=epochs,
        log_dir=str(log_dir),
        log_format=log_format,
        fail_on_error=False,
        display="none",
        tags=tags or ["fixture"],
        metadata={"purpose": "warehouse import test"},
        max_samples=1,
    )
    return log


def write_retried_eval_set(log_dir: Path) -> list[Path]:
    """An `eval_set` whose first attempt fails on its last sample (a transient error) and whose
    retry succeeds, with `retry_cleanup=False`: the failed attempt's log stays beside the retry's,
    which reuses the two samples the failed attempt completed. Returns the two logs, oldest first."""
    from inspect_ai import eval_set
    from inspect_ai.log import list_eval_logs
    from inspect_ai.solver import solver

    failed: list[str] = []

    @solver
    def flaky():
        async def solve(state: TaskState, generate_: Any) -> TaskState:
            if state.sample_id == "again" and not failed:
                failed.append(str(state.sample_id))
                raise RuntimeError("transient failure: connection reset")
            return state

        return solve

    @task
    def retried() -> Task:
        dataset = [*SAMPLES[:2], Sample(id="again", input="The capital of France, once more?", target="Paris")]
        return Task(dataset=dataset, solver=[flaky(), use_tools(lookup()), generate()], scorer=[letter()])

    logging.getLogger("inspect_ai").setLevel(logging.ERROR)
    model = get_model("mockllm/model", custom_outputs=mock_outputs, memoize=False)
    ok, _ = eval_set(
        retried(),
        model=model,
        log_dir=str(log_dir),
        retry_attempts=2,
        retry_wait=0,
        retry_cleanup=False,
        display="none",
        max_samples=1,
    )
    assert ok and failed
    return sorted(Path(i.name.removeprefix("file://")) for i in list_eval_logs(str(log_dir)))
