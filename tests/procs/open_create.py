"""Races `warehouse.open(path, create=True)` against other processes.

    open_create.py ROOT [ROOT ...]

Prints `ready`, blocks on stdin until the test sends `go`, then opens (creating if absent) each
ROOT in order and prints `opened <index> <version>` for each.
"""

import sys

import warehouse


def main() -> None:
    roots = sys.argv[1:]
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        sys.exit("no go")
    for index, root in enumerate(roots):
        wh = warehouse.open(root, create=True)
        print(f"opened {index} {wh.version}", flush=True)


if __name__ == "__main__":
    main()
