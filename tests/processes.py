"""Real child processes for the tests: the scripts of `tests/procs/`, run with this interpreter.

Children are synchronised through pipes (they announce what they did on stdout); nothing waits on
a sleep. The `children` fixture (conftest.py) kills whatever is left at teardown.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PROCS = Path(__file__).resolve().parent / "procs"
REPO = Path(__file__).resolve().parents[1]


class Children:
    """Starts the scripts of `tests/procs/` as real processes and kills any left over at teardown."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.procs: list[subprocess.Popen] = []
        self._stderr: dict[int, Path] = {}

    def start(self, script: str, *args: object) -> subprocess.Popen:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        err = self.logs / f"{script}-{len(self.procs)}.stderr"
        with open(err, "wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, str(PROCS / script), *map(str, args)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                bufsize=1,
                env=env,
            )
        self.procs.append(proc)
        self._stderr[proc.pid] = err
        return proc

    def stderr(self, proc: subprocess.Popen) -> str:
        return self._stderr[proc.pid].read_text(errors="replace")[-3000:]

    def expect_line(self, proc: subprocess.Popen, prefix: str) -> str:
        """The child's next stdout line, which must start with `prefix`."""
        line = proc.stdout.readline()
        assert line.startswith(prefix), (
            f"pid {proc.pid} said {line!r}, expected {prefix!r}; stderr:\n{self.stderr(proc)}"
        )
        return line

    def line(self, proc: subprocess.Popen, prefix: str) -> str:
        """The child's next stdout line, which must start with `prefix`; returns the rest, stripped."""
        return self.expect_line(proc, prefix)[len(prefix) :].strip()

    def kill_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
            for stream in (p.stdin, p.stdout):
                if stream is not None:
                    stream.close()


@contextmanager
def watchdog(procs: list[subprocess.Popen], seconds: float) -> Iterator[None]:
    """Kill `procs` if the block takes longer than `seconds`, so a hang fails the test instead of blocking it."""

    def fire() -> None:
        for p in procs:
            if p.poll() is None:
                p.kill()

    timer = threading.Timer(seconds, fire)
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
