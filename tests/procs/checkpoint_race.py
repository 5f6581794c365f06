"""One of several processes writing the same checkpoint at once.

    checkpoint_race.py ROOT

Reads commands from stdin: `prep V` rebuilds the snapshot at version V from the log and answers
`ready V`; `go` then writes its checkpoint (`Log.write_checkpoint`) and answers `created V True`
(this process created the file) or `created V False` (another one had); `quit` ends. The test sends
`go` to every process only once all said `ready`: the writes start together.
"""

import sys

from warehouse.core.storage import Store
from warehouse.manifest import Log


def main() -> None:
    log = Log(Store.from_url(sys.argv[1]), checkpoint_interval=0)
    snap = None
    for line in sys.stdin:
        cmd = line.split()
        if cmd[0] == "prep":
            snap = log.snapshot(int(cmd[1]))
            print(f"ready {snap.version}", flush=True)
        elif cmd[0] == "go":
            print(f"created {snap.version} {log.write_checkpoint(snap)}", flush=True)
        elif cmd[0] == "quit":
            return


if __name__ == "__main__":
    main()
