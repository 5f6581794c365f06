"""One writer process for the execution-id key tests.

    keyed_writer.py ROOT PROC ROUNDS IDS CONFIG

Opens the warehouse, prints `ready`, blocks on stdin until the test sends `go` (a barrier, so that
every process writes at once). Then, ROUNDS times, adds the executions `shared-0` .. `shared-<IDS-1>`
(the same ids in every process and round: a retried job with deterministic ids) through one writer
of configuration CONFIG ("a" or "b"), each with two messages and one attack naming the process and
round, and flushes, printing `committed <round> <version>`; `done` at the end.
"""

import sys

import warehouse

CONFIGS = {
    "a": {"dataset": {"type": "agentdojo", "config": {"suite": "workspace"}}, "agent": {"type": "plain", "config": {}}},
    "b": {
        "dataset": {"type": "agentdojo", "config": {"suite": "workspace"}},
        "agent": {"type": "react", "config": {}},
        "attack": {"type": "important_instructions", "config": {}},
    },
}


def main() -> None:
    root, proc, rounds, ids, config = sys.argv[1:6]
    wh = warehouse.open(root)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit("no go")
    with wh.writer(**CONFIGS[config], flush_interval=None) as w:
        for r in range(int(rounds)):
            for i in range(int(ids)):
                tag = f"p{proc}-r{r}"
                w.add_execution(
                    execution_id=f"shared-{i}",
                    task_id=f"task-{i}",
                    benign_score=1.0,
                    attack_score=float(i % 2),
                    metadata={"tag": tag},
                    messages=[
                        {"role": "user", "content": f"{tag} question"},
                        {"role": "assistant", "content": f"{tag} answer"},
                    ],
                    attacks=[{"vector_id": "v0", "type": "str", "content": f"{tag} injection"}],
                )
            print(f"committed {r} {w.flush()}", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
