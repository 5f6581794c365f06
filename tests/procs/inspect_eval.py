"""A real Inspect AI eval with the warehouse's live-capture hook on (the test sets WAREHOUSE_INSPECT_URL
and WAREHOUSE_INSPECT_WAL); the hook is loaded through the package's `inspect_ai` entry point.

    inspect_eval.py LOG_DIR full       the fixture task `capitals` (3 samples x 2 epochs, one crashing),
                                       then prints `done <log file> <status>`
    inspect_eval.py LOG_DIR block N    task `counting`: 6 samples run one at a time; the one after the
                                       first N prints `blocked` and waits on stdin until the test kills it
    inspect_eval.py LOG_DIR raise N    the same, but the sample after the first N raises: the eval fails
                                       (fail_on_error), then prints `done <log file> <status>`

The hook's warnings (logger "warehouse.inspect") are copied to stderr.
"""

import logging
import sys
from pathlib import Path

import anyio.to_thread
from inspect_ai import Task, task
from inspect_ai import eval as inspect_eval
from inspect_ai.dataset import Sample
from inspect_ai.model import ModelOutput, ModelUsage, get_model
from inspect_ai.scorer import match
from inspect_ai.solver import TaskState, generate, solver

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import inspect_fixtures  # noqa: E402

SAMPLES = 6


def answer(input: list, tools: list, tool_choice: object, config: object) -> ModelOutput:
    """The number in the question, except for s4 (scored incorrect)."""
    question = next(m.text for m in input if m.role == "user")
    n = question.split()[-1]
    out = ModelOutput.from_content("mockllm/model", "wrong" if n == "4" else n)
    out.usage = ModelUsage(input_tokens=10 + int(n), output_tokens=2, total_tokens=12 + int(n))
    return out


@solver
def stop_at(n: int, how: str):
    async def solve(state: TaskState, generate_: object) -> TaskState:
        if state.sample_id == f"s{n}":
            if how == "raise":
                raise RuntimeError(f"sample s{n} fails the eval")
            print("blocked", flush=True)
            await anyio.to_thread.run_sync(sys.stdin.readline)  # until killed
        return state

    return solve


@task
def counting(n: int = SAMPLES, how: str = "block") -> Task:
    dataset = [Sample(id=f"s{i}", input=f"Say the number {i}", target=str(i)) for i in range(SAMPLES)]
    return Task(dataset=dataset, solver=[stop_at(n, how), generate()], scorer=match())


def main() -> None:
    log_dir, mode = sys.argv[1], sys.argv[2]
    # the hook's warnings, on stderr for the test (display="none" keeps Inspect from showing them)
    logging.getLogger("warehouse.inspect").addHandler(logging.StreamHandler(sys.stderr))
    if mode == "full":
        log = inspect_fixtures.write_logs(Path(log_dir), "eval", epochs=2)
    else:
        model = get_model("mockllm/model", custom_outputs=answer, memoize=False)
        task = counting(int(sys.argv[3]), mode)
        [log] = inspect_eval(task, model=model, log_dir=log_dir, display="none", max_samples=1)
    print(f"done {log.location} {log.status}", flush=True)


if __name__ == "__main__":
    main()
