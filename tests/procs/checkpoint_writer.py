"""A writer whose commits land on checkpoint versions; optionally it stops inside checkpoint writing.

    checkpoint_writer.py ROOT TAG INTERVAL FLUSHES MODE [step]

Opens the warehouse with `checkpoint_interval=INTERVAL`, prints `ready`, waits for a line on stdin
(the test's barrier), then makes FLUSHES flushes of one execution each (ids `<TAG>-<n>`), printing
`committed <n> <version>` after each, and `done` at the end. With `step`, it waits for a line
before every flush instead: `one` makes one flush, `rest` makes all the remaining ones at once.

MODE chooses where the writer stops, the first time it writes a checkpoint:
  none          never
  before_write  after its commit landed, before the checkpoint file is created (nothing written yet)
  mid_write     half of the checkpoint's bytes are in the temp file beside it (written by the store's
                own code; the rest never comes)
  before_link   the temp file is whole, not yet linked to the checkpoint's name
  before_hint   the checkpoint exists; `_last_checkpoint` is not yet updated
At the stop it prints `paused <mode> <version>` and blocks on stdin; the test kills it with SIGKILL
there. The hooks only pause (mid_write: stops a real write halfway); every write is the real one.
"""

import os
import sys

import warehouse
import warehouse.core.storage as storage
import warehouse.manifest.checkpoint as mc

CONFIG = {"dataset": {"type": "agentdojo", "config": {}}, "agent": {"type": "checkpointer", "config": {}}}


def pause(mode: str, version: object) -> None:
    print(f"paused {mode} {version}", flush=True)
    sys.stdin.readline()  # blocks until the kill
    os._exit(3)


def main() -> None:
    root, tag, interval, flushes, mode = sys.argv[1:6]
    interval, flushes = int(interval), int(flushes)
    step = sys.argv[6:7] == ["step"]

    if mode == "before_write":

        def hooked_encode(snapshot, *args, **kwargs):
            pause(mode, snapshot.version)

        mc.encode = hooked_encode
    elif mode == "mid_write":
        real_open, put_if_absent = open, storage.Store.put_if_absent
        checkpointing = []

        class HalfFile:
            def __init__(self, f):
                self.f = f

            def write(self, data):
                self.f.write(data[: len(data) // 2])
                self.f.flush()
                pause(mode, checkpointing[0])

            def __enter__(self):
                return self

            def __exit__(self, *exc):
                self.f.close()

        def hooked_put_if_absent(self, rel, data):
            if rel.endswith(".checkpoint.parquet"):
                checkpointing.append(rel)
            return put_if_absent(self, rel, data)

        def hooked_open(path, *args, **kwargs):
            f = real_open(path, *args, **kwargs)
            return HalfFile(f) if checkpointing and "/_manifest/.tmp-" in str(path) else f

        storage.Store.put_if_absent = hooked_put_if_absent
        storage.open = hooked_open  # the module's `open` (the builtin until now)
    elif mode == "before_link":
        link = os.link

        def hooked_link(src, dst, *args, **kwargs):
            if str(dst).endswith(".checkpoint.parquet"):
                pause(mode, os.path.basename(str(dst))[:20])
            return link(src, dst, *args, **kwargs)

        os.link = hooked_link
    elif mode == "before_hint":

        def hooked_hint(store, version, nbytes):
            pause(mode, version)

        mc.write_hint = hooked_hint
    elif mode != "none":
        sys.exit(f"unknown mode {mode!r}")

    wh = warehouse.open(root, checkpoint_interval=interval)
    print("ready", flush=True)
    if not step:
        sys.stdin.readline()
    with wh.writer(**CONFIG, flush_interval=None) as w:
        for n in range(1, flushes + 1):
            if step and sys.stdin.readline().strip() == "rest":
                step = False
            w.add_execution(task_id=f"task-{n}", execution_id=f"{tag}-{n}", benign_score=1.0)
            print(f"committed {n} {w.flush()}", flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main()
