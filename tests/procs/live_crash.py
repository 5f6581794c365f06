"""A live execution that checkpoints, then is killed with SIGKILL before it finishes.

    live_crash.py ROOT OWNER STEPS

Starts one execution of task `t-crash` (owner OWNER), logs a line and checkpoints each step
1..STEPS, printing `checkpointed <step> <execution_id>` once `checkpoint()` has returned; then
logs one more line (never committed), prints `waiting` and blocks on stdin until the test kills it.
"""

import sys

import warehouse

CONFIG = {"dataset": {"type": "agentdojo", "config": {}}, "agent": {"type": "live", "config": {}}}


def main() -> None:
    root, owner, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    wh = warehouse.open(root)
    w = wh.writer(**CONFIG, flush_interval=None)
    ex = w.start_execution("t-crash", owner=owner, metadata={"attempt": 1})
    for step in range(1, steps + 1):
        ex.log("info", f"step {step}", source="agent-callback")
        ex.checkpoint({"messages": [{"role": "user", "content": f"turn {step}"}], "env": {"step": step}}, step=step)
        print(f"checkpointed {step} {ex.execution_id}", flush=True)
    ex.log("info", "this line is buffered, never committed")
    print("waiting", flush=True)
    sys.stdin.readline()


if __name__ == "__main__":
    main()
