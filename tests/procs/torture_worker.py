"""One worker of the crash-torture harness (tests/torture.py), run until it is killed with SIGKILL.

    torture_worker.py ROLE ROOT TAG SEED [DST]

Storage options for a remote ROOT come as JSON in the environment variable TORTURE_STORAGE_OPTIONS.
With TORTURE_SHORT_WINDOW=<seconds> (the short-window case), the warehouse's time constants are
scaled down in this process as in every other one of the run: the vacuum's minimum orphan window
(`manifest.model.MIN_ORPHAN_WINDOW`) becomes that many seconds and the commit deadline half of it; and
writers and compaction stall: before some commits (every third flush of a writer, every other
compaction commit) they print `stalled <paths of the files it adds>` and block on stdin until the
harness writes a line, which it does once a vacuum has deleted one of those files (a stalled
process's files in flight, as a paused VM or a long GC pause would leave them). A commit that
refuses stale files prints `stale`.
Roles (each loops forever and prints one line per finished operation, flushed):
  writer      flush n buffers 1..25 executions with ids `<TAG>-<n>-<size>-<i>` (2 messages each) and
              commits them; prints `ack <n> <size> <version>` once flush() has returned
  compact     wh.compact() over every partition; prints `compacted <version>`
  vacuum      wh.vacuum(retain=0) (the orphan window stays at its default, so writers' files in
              flight are never taken); prints `vacuum <version>`
  vacuum-short  wh.vacuum(retain=0, orphan_window=the minimum); prints `vacuum-short <version> <orphans
              deleted...>` (for the short-window case)
  checkpoint  wh.checkpoint(); prints `checkpointed <version>`
  sync        wh.sync_to(DST); prints `synced <version>`
  writer-publish  a writer of a warehouse opened with publish=["delta"] (each commit is published
              in the background); after each flush it waits for that publication, then prints
              `ack <n> <size> <version>`
  publish     wh.publish("delta") in a loop; prints `publish <version> <commits>`
"""

import json
import os
import random
import sys
from datetime import timedelta

import warehouse
from warehouse.core.errors import StaleDataFile
from warehouse.manifest import Log
from warehouse.manifest import model as manifest

CONFIGS = [
    {
        "dataset": {"type": "agentdojo", "config": {}},
        "agent": {"type": f"agent{a}", "config": {}},
        "attack": None if a == 0 else {"type": "injection", "config": {}},
    }
    for a in range(3)
]


def stall_before_commits(every: dict[str, int]) -> None:
    """Make this process stall before the `every[operation]`-th commits of those operations (see the
    module docstring); a retry of the same commit does not stall again."""
    real_commit = Log.commit
    counts: dict[str, int] = {}
    last_token: list[str | None] = [None]

    def commit(self, base, **kw):
        op, token = kw["operation"], kw.get("token")
        if op in every and kw.get("add") and (token is None or token != last_token[0]):
            counts[op] = counts.get(op, 0) + 1
            last_token[0] = token
            if counts[op] % every[op] == 0:
                print("stalled " + " ".join(a.path for a in kw["add"]), flush=True)
                sys.stdin.readline()
        try:
            return real_commit(self, base, **kw)
        except StaleDataFile:
            print("stale", flush=True)
            raise

    Log.commit = commit


ROLES = ("writer", "writer-publish", "publish", "compact", "vacuum", "vacuum-short", "checkpoint", "sync")


def main() -> None:
    role, root, tag, seed = sys.argv[1:5]
    if role not in ROLES:  # before `ready`: the harness then sees this exit status, not its own kill
        sys.exit(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
    options = json.loads(os.environ.get("TORTURE_STORAGE_OPTIONS") or "null")
    rng = random.Random(int(seed))
    short = os.environ.get("TORTURE_SHORT_WINDOW")
    if short:
        manifest.MIN_ORPHAN_WINDOW = timedelta(seconds=float(short))
        manifest.COMMIT_DEADLINE = timedelta(seconds=float(short) / 2)
        stall_before_commits({"append": 3, "compact": 2})
    wh = warehouse.open(root, storage_options=options, publish=["delta"] if role == "writer-publish" else None)
    print("ready", flush=True)
    if role in ("writer", "writer-publish"):
        config = CONFIGS[rng.randrange(len(CONFIGS))]
        with wh.writer(**config, flush_interval=None) as w:
            n = 0
            while True:
                n += 1
                size = rng.randint(1, 25)
                for i in range(size):
                    w.add_execution(
                        task_id=f"task-{i}",
                        execution_id=f"{tag}-{n}-{size}-{i}",
                        benign_score=float(i % 2),
                        attack_score=float(i % 3 == 0),
                        messages=[
                            {"role": "user", "content": f"q {n} {i}"},
                            {"role": "assistant", "content": "a" * rng.randint(0, 200)},
                        ],
                    )
                version = w.flush()
                if role == "writer-publish":
                    wh.wait_for_publication()
                print(f"ack {n} {size} {version}", flush=True)
    ops = {
        "compact": lambda: wh.compact(),
        "vacuum": lambda: wh.vacuum(retain=timedelta(0)),
        "vacuum-short": lambda: wh.vacuum(retain=timedelta(0), orphan_window=manifest.MIN_ORPHAN_WINDOW),
        "checkpoint": lambda: wh.checkpoint(),
        "sync": lambda: wh.sync_to(sys.argv[5], storage_options=options),
        "publish": lambda: wh.publish("delta"),
    }
    op = ops[role]
    while True:
        wh.refresh()
        done = None
        try:
            done = op()
        except warehouse.CommitConflict:
            pass  # another maintenance process won this round: try again
        except warehouse.PublishFailed as exc:
            if "kept committing" not in str(exc):
                raise
            print("publish-contended", flush=True)  # other publishers won every round: try again
        deleted = " ".join(done.orphans) if role == "vacuum-short" and done is not None else ""
        if role == "publish" and done is not None:
            deleted = str(done.commits)
        print(f"{role} {wh.version} {deleted}".rstrip(), flush=True)


if __name__ == "__main__":
    main()
