"""Automatic publication: keep the Delta logs current after every commit this process makes.

When the warehouse's publication setting names `delta` (`warehouse.open(url, publish=["delta"])`,
persisted in `_manifest/_publish.json`), every engine that commits registers a publisher. A commit
(a writer's flush, compaction, expire, doctor's repair, an import, a sync) only tells the publisher
which tables it touched; a background thread then brings those tables' Delta logs to the engine's
snapshot, coalescing commits that arrive while it works. So `add_execution` and `flush` never wait
for delta-rs. The thread drains before the interpreter exits (`atexit`, at most `EXIT_WAIT`
seconds); `wait()` waits for it explicitly. Publication is idempotent, so a process killed with work
pending leaves the logs a few versions behind, never wrong; the next publication (automatic or
`warehouse publish delta`) catches them up. A failed publication is kept in `last_error` and issued as
a `PublicationWarning`; it never fails the commit that triggered it.
"""

from __future__ import annotations

import atexit
import threading
import warnings
import weakref
from typing import TYPE_CHECKING

from warehouse.engine import keys
from warehouse.engine.engine import OPEN_HOOKS
from warehouse.manifest import Commit
from warehouse.ops.publish import settings
from warehouse.ops.publish.delta import publish_table, touched

if TYPE_CHECKING:
    from warehouse.engine.engine import Engine

#: Seconds the interpreter's exit waits for pending publication.
EXIT_WAIT = 60.0


class PublicationWarning(UserWarning):
    """Automatic publication failed after a commit (the commit itself stands)."""


class AutoPublisher:
    """Publishes an engine's touched tables in a background thread (see the module docstring)."""

    def __init__(self, engine: Engine, *, enabled: bool | None = None) -> None:
        self._engine = weakref.ref(engine)
        #: Whether the setting asks for publication; None: not read yet (read at the first commit, so
        #: opening a warehouse costs no request for it).
        self.enabled = enabled
        self._cond = threading.Condition()
        self._pending: set[str] = set()
        self._busy = False
        self._thread: threading.Thread | None = None
        self.last_error: BaseException | None = None
        self.published = 0  # Delta commits made

    def notify(self, commit: Commit) -> None:
        """Note the tables `commit` touched and wake the publisher (a listener of the engine)."""
        tables = touched(commit)
        if not tables:
            return
        if self.enabled is None:
            engine = self._engine()
            self.enabled = engine is not None and "delta" in settings.read(engine.store)
        if not self.enabled:
            return
        with self._cond:
            self._pending |= tables
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="warehouse-publish", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _run(self) -> None:
        while True:
            with self._cond:
                if not self._pending:
                    self._busy = False
                    self._cond.notify_all()
                    self._cond.wait(timeout=30.0)
                    if not self._pending:
                        self._thread = None
                        self._cond.notify_all()
                        return
                todo, self._pending = sorted(self._pending), set()
                self._busy = True
            engine = self._engine()
            if engine is None:  # the warehouse is gone: nothing left to publish for
                with self._cond:
                    self._pending.clear()
                    self._busy = False
                    self._thread = None
                    self._cond.notify_all()
                return
            snapshot = engine.snapshot
            hidden = keys.Hidden(engine.keys, engine.store, snapshot)
            for table in todo:
                try:  # (a failure here never leaves the publisher busy: wait() and the exit drain return)
                    r = publish_table(engine, table, snapshot, hidden=hidden)
                    self.published += r.committed
                except Exception as exc:  # the commit stands; say so and let the next one catch up
                    self.last_error = exc
                    warnings.warn(
                        f"publishing table {table!r} of {engine.url!r} as Delta failed ({type(exc).__name__}: {exc}); "
                        "the warehouse commit stands: run `warehouse publish delta` to catch the log up",
                        PublicationWarning,
                        stacklevel=1,
                    )
            del engine

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until nothing is pending; False if `timeout` seconds passed first."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._busy, timeout=timeout)


_publishers: weakref.WeakSet[AutoPublisher] = weakref.WeakSet()


def _drain() -> None:
    for p in list(_publishers):
        p.wait(EXIT_WAIT)


atexit.register(_drain)


def attach(engine: Engine, *, enabled: bool | None = None) -> AutoPublisher | None:
    """Register automatic publication on a writable `engine`: it publishes after each commit if the
    warehouse's setting asks for it (`enabled`, or read at the first commit); returns the publisher."""
    if engine.read_only:
        return None
    if enabled is None and settings.present(engine.manifest_hints) is False:
        enabled = False  # the listing made when opening shows no setting: no request to read it
    publisher = AutoPublisher(engine, enabled=enabled)
    _publishers.add(publisher)
    engine.on_commit(publisher.notify)
    _by_engine[engine] = publisher
    return publisher


_by_engine: weakref.WeakKeyDictionary[Engine, AutoPublisher] = weakref.WeakKeyDictionary()


def publisher_of(engine: Engine) -> AutoPublisher | None:
    """The automatic publisher attached to `engine`, if any."""
    return _by_engine.get(engine)


def enable(engine: Engine, formats: list[str]) -> None:
    """Persist the setting and make `engine`'s publisher follow it from now on."""
    settings.write(engine.store, formats)
    p = _by_engine.get(engine) or attach(engine)
    if p is not None:
        p.enabled = "delta" in formats


OPEN_HOOKS.append(attach)
