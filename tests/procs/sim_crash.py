"""A simulation that records its run until it ends or is killed, for the crash and race tests.

    sim_crash.py ROOT SCENARIO STARTED_AT STEPS

Opens the warehouse, prints `ready`, then blocks on stdin until the test sends `go` (a barrier,
so that racing processes claim their run ids at the same time). Then it starts a recorder
(save_frequency 1, started at the ISO time STARTED_AT) and prints `run <run_id>`; records steps
0, 1, 2, ... with a state derived from the step number (see `state`), printing `step <n>` after
each `step()` call returns (its snapshot is committed by then). With STEPS > 0 it stops after
STEPS steps, saves the final snapshot and prints `done`; with STEPS = 0 it runs until killed.
"""

import itertools
import sys

import warehouse


def state(step: int) -> dict:
    """The state saved at `step`: what the test expects to read back."""
    return {
        "game_state": {"round": step, "resources": 150 - step},
        "global_vars": {"interest_rate": 0.05, "simulation_active": True},
        "agent_vars": {"Agent Alpha": {"action_count": step}, "Agent Beta": {"action_count": step // 2}},
        "messages": [
            {"from": "Orchestrator", "to": "Agent Alpha", "content": f"proceed with step {step}"},
            {"from": "Agent Alpha", "to": "Orchestrator", "content": "Acknowledged ✓"},
        ],
    }


def main() -> None:
    root, scenario, started_at, steps = sys.argv[1:5]
    steps = int(steps)
    wh = warehouse.open(root)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit("no go")
    rec = wh.run_recorder(scenario, save_frequency=1, started_at=started_at)
    print(f"run {rec.run_id}", flush=True)
    for n in range(steps) if steps else itertools.count():
        rec.step(n, **state(n))
        print(f"step {n}", flush=True)
    rec.finish(steps, **state(steps))
    print("done", flush=True)


if __name__ == "__main__":
    main()
