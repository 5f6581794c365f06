"""A writer with a write-ahead log, killed by the test with SIGKILL at a point it announces.

    wal_writer.py ROOT WAL TAG MODE N [STORAGE_OPTIONS_JSON]

Opens the warehouse at ROOT and a writer with `wal=WAL` (which first recovers what an earlier,
killed writer left in WAL; it prints `opened <recovered versions, comma-separated or ->`). Then it
adds N executions with ids `<TAG>-<i>` (2 messages each), printing `added <id>` once each
`add_execution` has returned (acknowledged), plus a live execution `<TAG>-live` with a log line,
an update and its finish (`added <TAG>-live`). Where the test's `kill -9` lands depends on MODE:

  unflushed      nothing is flushed: prints `waiting` and blocks
  before_commit  flush: its data files are written, the kill lands before its commit file exists
  after_commit   flush: its commit landed, the kill lands before the WAL segment is deleted; while
                 that flush is paused, N more executions `<TAG>-late-<i>` are added (and acknowledged)
  torn           one more execution `<TAG>-torn` is being appended: half of its WAL line is written
                 (its add_execution never returns)
  recovering     the writer's recovery committed old records (it prints `recovered <version>`), the
                 kill lands before it deletes their segment (before `opened`: nothing new is added)

At the kill point the process prints `paused <mode>` (or `waiting`) and blocks on stdin, which the
test never writes to. The hooks only pause; every write is the real one.
"""

import json
import os
import sys
import threading

import warehouse
from warehouse.core.storage import Store
from warehouse.write import wal as wal_module

CONFIG = {"dataset": {"type": "agentdojo", "config": {}}, "agent": {"type": "walled", "config": {}}}


def pause(mode: str) -> None:
    print(f"paused {mode}", flush=True)
    sys.stdin.readline()  # blocks until the kill
    os._exit(3)


def add(w: warehouse.Writer, eid: str) -> None:
    w.add_execution(
        task_id="t",
        execution_id=eid,
        benign_score=1.0,
        messages=[{"role": "user", "content": f"{eid} q"}, {"role": "assistant", "content": f"{eid} a"}],
    )
    print(f"added {eid}", flush=True)


def main() -> None:
    root, wal, tag, mode, n = sys.argv[1:6]
    options = json.loads(sys.argv[6]) if len(sys.argv) > 6 else None
    n = int(n)
    committed_paused = threading.Event()

    if mode == "before_commit":
        put_if_absent = Store.put_if_absent

        def hooked_put_if_absent(self, rel, data):
            if rel.startswith("_manifest/0"):
                pause(mode)
            return put_if_absent(self, rel, data)

        Store.put_if_absent = hooked_put_if_absent
    elif mode == "after_commit":

        def hooked_committed(self, token):
            committed_paused.set()
            threading.Event().wait()  # this flush never finishes; the main thread goes on adding

        wal_module.WriteAheadLog.committed = hooked_committed
    elif mode == "recovering":
        recover_segment = wal_module.WriteAheadLog._recover_segment

        def hooked_recover_segment(self, seg):
            commit = recover_segment(self, seg)
            if commit.writer["writer_id"] == self.writer_id:  # committed now, not found in the log
                print(f"recovered {commit.version}", flush=True)
                pause(mode)
            return commit

        wal_module.WriteAheadLog._recover_segment = hooked_recover_segment
    elif mode not in ("unflushed", "torn"):
        sys.exit(f"unknown mode {mode!r}")

    wh = warehouse.open(root, storage_options=options)
    w = wh.writer(**CONFIG, flush_interval=None, flush_rows=10**6, wal=wal)
    print("opened " + (",".join(str(c.version) for c in w._wal.recovered) or "-"), flush=True)
    for i in range(n):
        add(w, f"{tag}-{i}")
    with w.start_execution("live-task", execution_id=f"{tag}-live") as ex:
        ex.log("info", "working", attrs={"tag": tag})
        ex.update(scores={"progress": 0.5})
    print(f"added {tag}-live", flush=True)

    if mode == "unflushed":
        print("waiting", flush=True)
        sys.stdin.readline()
    elif mode == "before_commit":
        w.flush()
    elif mode == "after_commit":
        threading.Thread(target=w.flush, daemon=True).start()
        committed_paused.wait()
        for i in range(n):
            add(w, f"{tag}-late-{i}")
        pause(mode)
    elif mode == "torn":

        def hooked_write(self, line):
            os.write(self._fd, line[: len(line) // 2])
            pause(mode)

        wal_module.WriteAheadLog._write = hooked_write
        add(w, f"{tag}-torn")
    sys.exit("not killed")


if __name__ == "__main__":
    main()
