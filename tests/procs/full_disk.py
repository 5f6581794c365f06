"""A writer, compaction and report on a real small filesystem that fills up or turns read-only.

Run inside a private mount namespace with a small tmpfs at MOUNT (see test_bad_input.py):
    full_disk.py MOUNT enospc|erofs
Prints one JSON document: what each failure raised, and what the warehouse held after the cause
was removed and the same writer flushed again.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys

import warehouse

mount, mode = sys.argv[1], sys.argv[2]
root = os.path.join(mount, "wh")
filler = os.path.join(mount, "filler")
out: dict = {}


def fill() -> None:
    """Take every free byte of the filesystem (unbuffered, so that closing cannot fail)."""
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    with open(filler, "ab", buffering=0) as f:  # the last partial block too
        try:
            while True:
                f.write(b"\0")
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc


def break_disk() -> None:
    if mode == "enospc":
        fill()
    else:
        subprocess.run(["mount", "-o", "remount,ro", mount], check=True)


def mend_disk() -> None:
    if mode == "enospc":
        os.unlink(filler)
    else:
        subprocess.run(["mount", "-o", "remount,rw", mount], check=True)


def caught(fn) -> dict:
    try:
        fn()
    except Exception as exc:  # reported to the test, which asserts the type and message
        return {
            "type": type(exc).__name__,
            "storage_error": isinstance(exc, warehouse.StorageError),
            "message": str(exc),
        }
    return {"type": None}


def count() -> int:
    return warehouse.open(root).sql("select count(*) from executions").fetchall()[0][0]


wh = warehouse.open(root, create=True)
w = wh.writer(dataset={"type": "d", "config": {}}, agent={"type": "a", "config": {}}, flush_interval=None)
for i in range(3):  # three small committed flushes: something for compaction to do later
    w.add_execution(task_id=f"first{i}", benign_score=1.0, messages=[{"role": "user", "content": "x" * 100}])
    w.flush()
for i in range(30):
    w.add_execution(task_id=f"t{i}", benign_score=0.5, messages=[{"role": "user", "content": os.urandom(4000).hex()}])

break_disk()
out["flush"] = caught(w.flush)
out["buffered_after_failure"] = w.buffered_rows
out["count_after_failure"] = count()
out["compact"] = caught(lambda: warehouse.open(root).compact(target_file_size=1 << 20))
out["count_after_compact_failure"] = count()
out["report"] = caught(lambda: warehouse.open(root).report(os.path.join(root, "report.html")))
out["export"] = caught(lambda: warehouse.open(root).export("legacy", os.path.join(mount, "legacy-export")))
mend_disk()

out["retried_flush"] = caught(w.flush)
out["buffered_after_retry"] = w.buffered_rows
w.close()
out["count_after_retry"] = count()
out["compact_after"] = caught(lambda: warehouse.open(root).compact(target_file_size=1 << 20))
out["count_after_compact"] = count()
report = warehouse.open(root).doctor()
out["doctor_problems"] = len(report.problems)
out["doctor_orphans"] = [f.path for f in report.orphans]
print(json.dumps(out))
