"""A prompt-siren run in its own process: `siren_saver.py URL NAME N` creates an ExecutionPersistence
on URL (the attack configuration of tests/prompt_siren_fixtures.py), says `ready`, waits for a line
on stdin, saves N task couples named NAME-<i> (each a real pydantic-ai TestModel run) and says `done`."""

from __future__ import annotations

import sys
from dataclasses import dataclass

from opentelemetry.trace import NonRecordingSpan, SpanContext
from pydantic_ai import RunContext
from pydantic_ai.models.test import TestModel

from tests import prompt_siren_fixtures as psf
from warehouse.compat.prompt_siren import ExecutionPersistence


@dataclass(frozen=True)
class Couple:
    id: str


@dataclass(frozen=True)
class Evaluation:
    results: dict[str, float]


def main(url: str, name: str, n: int) -> None:
    persistence = ExecutionPersistence.create(url, psf.DATASET, psf.AGENT, psf.ATTACK)
    messages, usage = psf.run_test_model("Résumé my inbox", injected=psf.INJECTION)
    print("ready", flush=True)
    sys.stdin.readline()
    for i in range(n):
        persistence.save_couple_execution(
            Couple(f"{name}-{i}:injection_task_0"),
            "plain:test",
            RunContext(deps=None, model=TestModel(), usage=usage, messages=messages),
            Evaluation({"utility": 1.0}),
            Evaluation({"security": float(i % 2)}),
            NonRecordingSpan(SpanContext(trace_id=i + 1, span_id=i + 1, is_remote=False)),
            {"injection_vector_email": {"kind": "str", "content": psf.INJECTION}},
        )
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
