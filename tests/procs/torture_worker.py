"""One worker of the crash-torture harness (tests/torture.py), run until it is killed with SIGKILL.

    torture_worker.py ROLE ROOT TAG SEED [DST]

Storage options for a remote ROOT come as JSON in the environment variable TORTURE_STORAGE_OPTIONS.
Roles (each loops forever and prints one line per finished operation, flushed):
  writer      flush n buffers 1..25 executions with ids `<TAG>-<n>-<size>-<i>` (2 messages each) and
              commits them; prints `ack <n> <size> <version>` once flush() has returned
  compact     wh.compact() over every partition; prints `compacted <version>`
  vacuum      wh.vacuum(retain=0) (the orphan window stays at its default, so writers' files in
              flight are never taken); prints `vacuumed <version>`
  checkpoint  wh.checkpoint(); prints `checkpointed <version>`
  sync        wh.sync_to(DST); prints `synced <version>`
"""

import json
import os
import random
import sys
from datetime import timedelta

import warehouse

CONFIGS = [
    {"dataset": {"type": "agentdojo", "config": {}}, "agent": {"type": f"agent{a}", "config": {}},
     "attack": None if a == 0 else {"type": "injection", "config": {}}}
    for a in range(3)
]


def main() -> None:
    role, root, tag, seed = sys.argv[1:5]
    options = json.loads(os.environ.get("TORTURE_STORAGE_OPTIONS") or "null")
    rng = random.Random(int(seed))
    wh = warehouse.open(root, storage_options=options)
    print("ready", flush=True)
    if role == "writer":
        config = CONFIGS[rng.randrange(len(CONFIGS))]
        with wh.writer(**config, flush_interval=None) as w:
            n = 0
            while True:
                n += 1
                size = rng.randint(1, 25)
                for i in range(size):
                    w.add_execution(task_id=f"task-{i}", execution_id=f"{tag}-{n}-{size}-{i}",
                                    benign_score=float(i % 2), attack_score=float(i % 3 == 0),
                                    messages=[{"role": "user", "content": f"q {n} {i}"},
                                              {"role": "assistant", "content": "a" * rng.randint(0, 200)}])
                version = w.flush()
                print(f"ack {n} {size} {version}", flush=True)
    ops = {
        "compact": lambda: wh.compact(),
        "vacuum": lambda: wh.vacuum(retain=timedelta(0)),
        "checkpoint": lambda: wh.checkpoint(),
        "sync": lambda: wh.sync_to(sys.argv[5], storage_options=options),
    }
    op = ops[role]
    while True:
        wh.refresh()
        try:
            op()
        except warehouse.CommitConflict:
            pass  # another maintenance process won this round: try again
        print(f"{role} {wh.version}", flush=True)


if __name__ == "__main__":
    main()
