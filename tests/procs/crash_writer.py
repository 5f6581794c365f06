"""A writer that flushes forever until it is killed with SIGKILL.

    crash_writer.py ROOT TAG PER_FLUSH MESSAGES MODE PAUSE_AT

Flush n (from 1) buffers PER_FLUSH executions with ids `<TAG>-f<n>-<i>`, MESSAGES messages each,
then commits them; after each commit it prints `committed <n> <version>`.

MODE chooses where the test's `kill -9` lands:
  free             no pause: the test kills at whatever moment it reads the Nth line
  after_data_file  flush PAUSE_AT stops right after its first data file is written (not committed)
  before_commit    flush PAUSE_AT stops with all data files written, before creating its commit file
  before_link      flush PAUSE_AT stops with the commit's temp file written, before it is linked into place
  after_commit     flush PAUSE_AT stops right after its commit file exists, before it is acknowledged
At a pause the process prints `paused <mode> <n>` and blocks on stdin (the test never writes to
it), so the kill lands exactly there. The hooks only pause; every write is the real one.
"""

import os
import sys

import warehouse
import warehouse.write.flushing as flushing_module
from warehouse.core.storage import Store

CONFIG = {"dataset": {"type": "agentdojo", "config": {}}, "agent": {"type": "crashy", "config": {}}}


def main() -> None:
    root, tag, per_flush, n_messages, mode, pause_at = sys.argv[1:7]
    per_flush, n_messages, pause_at = int(per_flush), int(n_messages), int(pause_at)
    current = 0

    def pause() -> None:
        print(f"paused {mode} {current}", flush=True)
        sys.stdin.readline()  # blocks until the kill
        os._exit(3)

    def armed() -> bool:
        return current == pause_at

    if mode == "after_data_file":
        write_data_file = flushing_module.write_data_file

        def hooked_write_data_file(*args, **kwargs):
            written = write_data_file(*args, **kwargs)
            if armed():
                pause()
            return written

        flushing_module.write_data_file = hooked_write_data_file
    elif mode in ("before_commit", "after_commit"):
        put_if_absent = Store.put_if_absent

        def hooked_put_if_absent(self, rel, data):
            manifest = rel.startswith("_manifest/")
            if armed() and manifest and mode == "before_commit":
                pause()
            created = put_if_absent(self, rel, data)
            if armed() and manifest and created and mode == "after_commit":
                pause()
            return created

        Store.put_if_absent = hooked_put_if_absent
    elif mode == "before_link":
        link = os.link

        def hooked_link(src, dst, *args, **kwargs):
            if armed() and "/_manifest/" in str(dst):
                pause()
            return link(src, dst, *args, **kwargs)

        os.link = hooked_link
    elif mode != "free":
        sys.exit(f"unknown mode {mode!r}")

    wh = warehouse.open(root)
    w = wh.writer(**CONFIG, flush_interval=None)
    while True:
        current += 1
        for i in range(per_flush):
            eid = f"{tag}-f{current}-{i}"
            w.add_execution(
                task_id=f"task-{i}",
                execution_id=eid,
                benign_score=1.0,
                messages=[
                    {"role": "user" if j % 2 == 0 else "assistant", "content": f"{eid} #{j}"} for j in range(n_messages)
                ],
            )
        version = w.flush()
        print(f"committed {current} {version}", flush=True)


if __name__ == "__main__":
    main()
