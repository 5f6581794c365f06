"""One writer process for the multi-process flush test.

    flush_writer.py ROOT PROC FLUSHES PER_FLUSH MESSAGES CONFIG

Opens the warehouse, prints `ready`, then blocks on stdin until the test sends `go` (a barrier,
so that every process writes at the same time). Then it makes FLUSHES flushes of PER_FLUSH
executions each (ids `p<PROC>-f<flush>-<i>`, MESSAGES messages each) through one writer of run
configuration CONFIG, printing `committed <flush> <version>` after each, and `done` at the end.
"""

import sys

import warehouse

CONFIGS = {
    "a": {"dataset": {"type": "agentdojo", "config": {"suite": "workspace"}}, "agent": {"type": "plain", "config": {}}},
    "b": {
        "dataset": {"type": "agentdojo", "config": {"suite": "slack"}},
        "agent": {"type": "plain", "config": {}},
        "attack": {"type": "important_instructions", "config": {"n": 1}},
    },
}


def main() -> None:
    root, proc, flushes, per_flush, n_messages, config = sys.argv[1:7]
    flushes, per_flush, n_messages = int(flushes), int(per_flush), int(n_messages)
    wh = warehouse.open(root)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit("no go")
    # The writer is made after the barrier so that same-config writers also race on registering it.
    with wh.writer(**CONFIGS[config], flush_interval=None) as w:
        for f in range(flushes):
            for i in range(per_flush):
                eid = f"p{proc}-f{f}-{i}"
                w.add_execution(
                    task_id=f"task-{i}",
                    execution_id=eid,
                    benign_score=float(i % 2),
                    messages=[
                        {"role": "user" if j % 2 == 0 else "assistant", "content": f"{eid} message {j}"}
                        for j in range(n_messages)
                    ],
                )
            version = w.flush()
            print(f"committed {f} {version}", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
