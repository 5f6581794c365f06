"""One compaction in its own process, which stops just before its first commit.

    compactor.py ROOT TABLE

Runs `wh.compact(table=TABLE)` (TABLE `all` = every table). Right before committing its first
partition (its output files written, nothing committed yet) it prints `paused <files in> <files out>`
and blocks on stdin until the test sends `go`; later partitions do not pause. At the end it prints
`done <json>`: one object per partition with table, status, files_in, files_out, rows and version.
The hook only pauses; every read, write and commit is the real one.
"""

import json
import sys

import warehouse
import warehouse.ops.compact as compaction


def main() -> None:
    root, table = sys.argv[1:3]
    commit_rewrite = compaction.commit_rewrite
    paused = False

    def hooked_commit_rewrite(wh, plan, **kwargs):
        nonlocal paused
        if not paused:
            paused = True
            print(f"paused {len(plan.remove)} {len(plan.add)}", flush=True)
            if sys.stdin.readline().strip() != "go":
                sys.exit("no go")
        return commit_rewrite(wh, plan, **kwargs)

    compaction.commit_rewrite = hooked_commit_rewrite
    wh = warehouse.open(root)
    result = wh.compact(None if table == "all" else table)
    print(
        "done "
        + json.dumps(
            [
                {
                    "table": p.table,
                    "status": p.status,
                    "files_in": p.files_in,
                    "files_out": p.files_out,
                    "rows": p.rows,
                    "version": p.version,
                }
                for p in result.partitions
            ]
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
