"""The fault proxy (`tests/faultproxy.py`) in a process of its own, for clients that hold the GIL
while they wait for an answer (delta-rs does: an in-process proxy thread could never answer it).

    python faultproxy_process.py UPSTREAM [ignore|refuse]

prints the proxy's URL on one line (the second argument imitates a store without conditional
writes, as `FaultProxy(conditional=...)` does), then answers commands on stdin, one per line, with
one JSON line: `stats` (requests, faults and the (method, path) log so far), `reset` (the same,
then counts afresh), `drop REGEX BUDGET` (from now on drop the answer of up to BUDGET PUTs whose
path matches REGEX). It exits when stdin closes.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faultproxy import FaultProxy, Stats  # noqa: E402


def _json(stats: Stats) -> str:
    return json.dumps({"requests": stats.requests, "faults": dict(stats.faults), "log": stats.log})


def main() -> None:
    conditional = sys.argv[2] if len(sys.argv) > 2 else None
    with FaultProxy(sys.argv[1], faults=("drop",), conditional=conditional) as proxy:
        print(proxy.url, flush=True)
        for line in sys.stdin:
            cmd, *args = line.split()
            if cmd == "drop":
                pattern = re.compile(args[0])
                proxy.only = lambda method, path, p=pattern: method == "PUT" and p.search(path) is not None
                proxy.budget, proxy.rate = int(args[1]), 1.0
                print("{}", flush=True)
            elif cmd == "reset":
                print(_json(proxy.reset_stats()), flush=True)
            else:
                print(_json(proxy.stats), flush=True)


if __name__ == "__main__":
    main()
