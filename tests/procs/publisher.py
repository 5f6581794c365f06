"""One publisher in its own process, publishing until the warehouse reaches a version.

    publisher.py ROOT FINAL_VERSION

Prints `ready` once the warehouse is open, waits for `go` on stdin, then runs `wh.publish("delta")`
again and again (each run reads the warehouse's latest version) until a publication reflects
FINAL_VERSION; prints `done <json>` with the warehouse versions its publications reflected and the
number of Delta commits it made.
"""

import json
import sys

import warehouse


def main() -> None:
    root, final = sys.argv[1], int(sys.argv[2])
    wh = warehouse.open(root)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit("no go")
    seen: list[int] = []
    commits = 0
    while True:
        report = wh.publish("delta")
        seen.append(report.version)
        commits += report.commits
        if report.version >= final:
            break
    print("done " + json.dumps({"versions": seen, "commits": commits}), flush=True)


if __name__ == "__main__":
    main()
