"""The machinery every importer shares: sources, the `imports` ledger, staging, batched commits.

An importer lists its sources (files, directories, database rows), loads each one's bytes (their
SHA-256 is the source's fingerprint) and maps them to records through a `SourceRecorder`. Every
record of a source is validated before any is buffered, so a source is imported whole or not at
all; a batch of sources is committed as one `import` commit holding their rows and their `imports`
ledger rows, so a crash or a retry never imports a source twice.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from warehouse.core.buffer import TableBuffer
from warehouse.core.config import RunConfig
from warehouse.core.errors import CommitConflict, ImportFailed, WarehouseError
from warehouse.core.rows import RowShape
from warehouse.core.schemas import catalog
from warehouse.engine import keyed
from warehouse.engine.datafiles import read_data_file, write_data_file
from warehouse.manifest import Commit, writer_info
from warehouse.write.writer import PreparedExecution, Writer

if TYPE_CHECKING:
    from warehouse.engine.engine import Engine

#: The tuples of the import ledger (table `imports`), by name.
IMPORT_ROW = RowShape("imports", ("kind", "root", "source", "fingerprint", "size", "records", "imported_at"))
#: Sources per commit, and buffered bytes that commit a batch early.
BATCH_SOURCES = 2_000
BATCH_BYTES = 256 << 20


@dataclass(frozen=True)
class Source:
    """One unit of import: a file, a directory, or a database row.

    `key` names it within the import (a path relative to the import root, or "table/id");
    `path` is what error reports show; `payload` is importer-specific (a database row, say).
    """

    key: str
    path: str | None = None
    size: int | None = None
    payload: Any = None


class Importer(Protocol):
    """What an importer module's `IMPORTER` provides."""

    kind: str

    def sources(self, path: str) -> Iterable[Source]:
        """Every source under `path`, in a stable order. Raise ImportFailed if `path` is unusable."""
        ...

    def load(self, source: Source) -> bytes:
        """The source's content; its SHA-256 is the fingerprint that makes imports idempotent."""
        ...

    def read(self, source: Source, data: bytes, out: SourceRecorder) -> None:
        """Map the source's content to records through `out`. Any exception rejects the source
        (nothing of it is stored) and is reported with the source's path."""
        ...


class FileImporter:
    """Base for importers whose sources are files matched by glob patterns under a directory."""

    kind = ""
    patterns: tuple[str, ...] = ()

    def sources(self, path: str) -> Iterator[Source]:
        root = Path(path)
        if not root.exists():
            raise ImportFailed(f"{path}: no such file or directory")
        if root.is_file():
            yield Source(root.name, str(root), root.stat().st_size)
            return
        seen: set[Path] = set()
        for pattern in self.patterns:
            for p in sorted(root.glob(pattern)):
                if p.is_file() and p not in seen:
                    seen.add(p)
                    yield Source(p.relative_to(root).as_posix(), str(p), p.stat().st_size)

    def load(self, source: Source) -> bytes:
        with open(source.path, "rb") as f:  # type: ignore[arg-type]
            return f.read()


@dataclass
class Failure:
    """A source that could not be imported: its path and why."""

    source: str
    reason: str


@dataclass
class ImportReport:
    """What one `import_` call did."""

    kind: str
    path: str
    sources: int = 0  #: sources found
    imported: int = 0  #: sources read and committed now
    skipped: int = 0  #: already imported (same content fingerprint)
    changed: list[str] = field(default_factory=list)  #: known keys whose content changed (imported again)
    failed: list[Failure] = field(default_factory=list)
    records: Counter = field(default_factory=Counter)  #: rows added, per table
    versions: list[int] = field(default_factory=list)  #: commits made
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        rows = ", ".join(f"{n:,} {t}" for t, n in sorted(self.records.items()) if n) or "no rows"
        s = (
            f"{self.kind}: {self.sources:,} source(s), {self.imported:,} imported, {self.skipped:,} already imported, "
            f"{len(self.failed):,} failed; {rows} in {len(self.versions)} commit(s), {self.seconds:.1f} s"
        )
        if self.changed:
            s += f"; {len(self.changed)} changed since imported (imported again)"
        return s


def fingerprint(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def stable_id(kind: str, *parts: Any) -> str:
    """A 32-hex-digit id derived from an import kind and `parts` (`SourceRecorder.stable_id`)."""
    h = hashlib.sha256("\0".join([kind, *map(str, parts)]).encode("utf-8"))
    return h.hexdigest()[:32]


class SourceRecorder:
    """Collects the records of one source; they are buffered only once the whole source is read."""

    def __init__(self, run: _Run, source: Source, changed: bool) -> None:
        self._run = run
        self.source = source
        #: True when this source's key was imported before with other content.
        self.changed = changed
        self._staged: list[tuple[Writer, RowShape | None, Any]] = []

    @property
    def warehouse(self) -> Engine:
        """The warehouse being imported into (read it to see what is stored already)."""
        return self._run.wh

    def writer(
        self, dataset: Any, agent: Any, attack: Any = None, *, run_id: str | None = None, config_hash: str | None = None
    ) -> Writer:
        """The writer of one run configuration (shared by every source of the import). Give
        `config_hash` to keep a hash computed by another scheme (legacy results)."""
        return self._run.writer(dataset, agent, attack, run_id=run_id, config_hash=config_hash)

    def execution(self, w: Writer, **fields: Any) -> str:
        """Validate one execution (the arguments of `Writer.add_execution`) now; returns its id."""
        prepared = w.prepare_execution(**fields)
        self._staged.append((w, None, prepared))
        return prepared.execution_id

    def rows(self, w: Writer, shape: RowShape, rows: list[tuple], text_bytes: int = 0) -> None:
        """Validated rows of any table, built as `shape` says, in `w`'s partition."""
        if rows:
            self._staged.append((w, shape, (rows, text_bytes)))

    def known_executions(self, w: Writer, ids: Iterable[str]) -> set[str]:
        """The ids among `ids` of executions already stored in `w`'s partition or read from an earlier
        source of this import: for formats where one run can appear in several sources (a sample an
        Inspect eval-set retry reused from the failed attempt's log). One query, on that
        partition's files only."""
        wanted = list(dict.fromkeys(ids))
        found = {i for i in wanted if i in self._run.execution_ids}
        rest = [i for i in wanted if i not in found]
        if rest:
            cols = list(w.partition)
            cond = " and ".join(f"{c} = ?" for c in cols)
            found.update(
                i
                for (i,) in self._run.wh.sql(
                    f"select distinct execution_id from executions where {cond} "
                    "and execution_id in (select unnest(?::varchar[]))",
                    [*(w.partition[c] for c in cols), rest],
                ).fetchall()
            )
        return found

    def stable_id(self, *parts: Any) -> str:
        """A 32-hex-digit id derived from the import kind and `parts`: importing the same thing
        from another copy of the files gives the same id."""
        return stable_id(self._run.kind, *parts)

    def _apply(self) -> Counter:
        counts: Counter = Counter()
        for w, shape, item in self._staged:
            if shape is None:
                p: PreparedExecution = item
                w._buffer_final(p)
                self._run.execution_ids.add(p.execution_id)
                counts["executions"] += 1
                counts["messages"] += len(p.message_rows)
                counts["attacks"] += len(p.attack_rows)
            else:
                rows, text_bytes = item
                w._add_rows(shape, rows, text_bytes, flush=False)
                counts[shape.table] += len(rows)
        return counts


class _Run:
    def __init__(self, wh: Engine, importer: Importer) -> None:
        self.wh, self.kind = wh, importer.kind
        self.id = uuid.uuid4().hex
        self.writers: dict[tuple, Writer] = {}
        self.by_args: dict[bytes, Writer] = {}  # the same arguments again: no config to normalise
        self.ledger_partition = RunConfig.of({"type": "imports"}, {"type": importer.kind}).partition
        self.ledger = TableBuffer(catalog().table("imports"), self.ledger_partition)
        self.pending: list[str] = []  # fingerprints of the sources in the batch being built
        self.version = wh.version  # the version whose ledger this import has checked
        self.seq = 0
        self.execution_ids: set[str] = set()  # of the executions read so far (`known_executions`)

    def writer(self, dataset: Any, agent: Any, attack: Any, *, run_id: str | None, config_hash: str | None) -> Writer:
        try:
            fast: bytes | None = orjson.dumps(
                [dataset, agent, attack, run_id, config_hash], option=orjson.OPT_SORT_KEYS
            )
        except TypeError:
            fast = None
        if fast is not None and (w := self.by_args.get(fast)) is not None:
            return w
        cfg = RunConfig.of(dataset, agent, attack).with_hash(config_hash)
        key = (cfg.canonical(), cfg.hash, run_id)
        w = self.writers.get(key)
        if w is None:
            w = self.writers[key] = Writer(
                self.wh.engine,
                dataset=cfg.dataset,
                agent=cfg.agent,
                attack=cfg.attack,
                run_id=run_id,
                config_hash=config_hash,
                flush_rows=1 << 62,
                flush_bytes=1 << 62,
                flush_interval=None,
            )
        if fast is not None:
            self.by_args[fast] = w
        return w

    def buffered_bytes(self) -> int:
        return sum(buf.nbytes for w in self.writers.values() for buf in w._buffers.values())

    def check_not_imported_meanwhile(self) -> None:
        """Raise ImportFailed if another import committed any source of this batch since this one
        last looked at the ledger (two imports of the same files running at once): nothing of the
        batch is stored, and running the import again imports what is left."""
        if not self.pending or self.wh.refresh() == self.version:
            return
        taken = [
            f
            for (f,) in self.wh.sql(
                "select fingerprint from imports where kind = ? and fingerprint in (select unnest(?::varchar[]))",
                [self.kind, self.pending],
            ).fetchall()
        ]
        self.version = self.wh.version
        if taken:
            raise ImportFailed(self._taken_message(len(taken)))

    def _taken_message(self, n: int) -> str:
        return (
            f"another {self.kind} import committed {n} of the {len(self.pending)} sources of this batch "
            "while this one ran (two imports of the same files at once); nothing of this batch was stored: "
            "run the import again to import what is left"
        )

    def _taken_by(self, other: Commit) -> str | None:
        """Why this batch must not be committed after `other` (another writer's commit that landed
        between the ledger check and this commit), or None: `other` imported one of its sources."""
        if other.operation != "import" or other.info.get("kind") != self.kind:
            return None
        pending = set(self.pending)
        taken = 0
        for f in other.add:
            if f.table == "imports":
                taken += len(pending.intersection(read_data_file(self.wh, f, ["fingerprint"]).column(0).to_pylist()))
        return self._taken_message(taken) if taken else None

    def commit(self, sources: int) -> int | None:
        """Write every buffered row and the ledger rows as one `import` commit."""
        self.check_not_imported_meanwhile()
        files = []
        batch_keys = []
        for w in self.writers.values():
            batch = w._take_batch()
            if batch is None:
                continue
            batch_keys.append((w.partition, batch.keys))
            for table, buf in batch.buffers.items():
                if len(buf):
                    files.append(write_data_file(self.wh, table, w.partition, buf.table()))
        if len(self.ledger):
            files.append(write_data_file(self.wh, "imports", self.ledger_partition, self.ledger.table()))
            self.ledger = TableBuffer(catalog().table("imports"), self.ledger_partition)
        if not files:
            return None
        self.seq += 1
        try:
            # (imported execution ids are keys too: an id imported again replaces its earlier add)
            commit = keyed.commit(
                self.wh,
                keys=batch_keys,
                add=files,
                write=lambda t, part, rows: write_data_file(self.wh, t, part, rows),
                operation="import",
                writer=writer_info(self.id),
                token=f"import:{self.id}:{self.seq}",
                info={"kind": self.kind, "sources": sources},
                conflict=self._taken_by,
            )
        except CommitConflict as exc:  # another import landed its copy of these sources first
            raise ImportFailed(str(exc)) from None
        self.pending = []
        self.version = self.wh.version
        return commit.version


def imported_fingerprints(wh: Engine, kind: str) -> tuple[set[str], dict[str, str]]:
    """(fingerprints, key -> newest fingerprint) of every source of `kind` already imported."""
    if not wh.snapshot.table_files("imports"):
        return set(), {}
    rows = wh.sql("select source, fingerprint from imports where kind = ? order by imported_at", [kind]).fetchall()
    return {f for _, f in rows}, {k: f for k, f in rows}


def _reason(exc: BaseException) -> str:
    if isinstance(exc, WarehouseError):
        return str(exc)
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"


def run_import(
    wh: Engine,
    importer: Importer,
    path: str | os.PathLike[str],
    *,
    strict: bool = False,
    batch_sources: int = BATCH_SOURCES,
    progress: bool = False,
) -> ImportReport:
    """Import every new source of `importer` under `path` (see the package docstring)."""
    t0 = time.perf_counter()
    path = os.fspath(path)
    # what reports and the ledger show of `path` (a database URL without its password)
    shown = importer.display_path(path) if hasattr(importer, "display_path") else path
    report = ImportReport(importer.kind, shown)
    wh.refresh()  # the ledger as it is now, not as this handle last saw it
    known, by_key = imported_fingerprints(wh, importer.kind)
    sources = list(importer.sources(path))
    report.sources = len(sources)
    run = _Run(wh, importer)
    pending = 0
    bar = _progress(progress, importer.kind, len(sources))
    try:
        for source in sources:
            if bar:
                bar.advance()
            try:
                data = importer.load(source)
            except Exception as exc:
                _fail(run, report, source, exc, strict, pending)
                continue
            fp = fingerprint(data)
            if fp in known:
                report.skipped += 1
                continue
            changed = source.key in by_key
            out = SourceRecorder(run, source, changed)
            try:
                importer.read(source, data, out)
            except Exception as exc:
                _fail(run, report, source, exc, strict, pending)
                continue
            if changed:
                report.changed.append(source.key)
            counts = out._apply()
            report.records.update(counts)
            known.add(fp)
            run.ledger.append(
                IMPORT_ROW, (importer.kind, shown, source.key, fp, len(data), sum(counts.values()), datetime.now(UTC))
            )
            run.pending.append(fp)
            report.imported += 1
            pending += 1
            if pending >= batch_sources or run.buffered_bytes() >= BATCH_BYTES:
                _commit(run, report, pending)
                pending = 0
        if pending:
            _commit(run, report, pending)
    finally:
        if bar:
            bar.stop()
        for w in run.writers.values():
            w._closed = True  # nothing left to flush: every batch went through run.commit
    report.seconds = time.perf_counter() - t0
    return report


def _commit(run: _Run, report: ImportReport, pending: int) -> None:
    version = run.commit(pending)
    if version is not None:
        report.versions.append(version)


def _fail(run: _Run, report: ImportReport, source: Source, exc: Exception, strict: bool, pending: int) -> None:
    """Record a failed source; with `strict`, commit the sources read before it and raise ImportFailed."""
    where = source.path or source.key
    report.failed.append(Failure(where, _reason(exc)))
    if strict:
        if pending:
            _commit(run, report, pending)
        raise ImportFailed(f"{where}: {_reason(exc)}") from exc


class _Bar:
    def __init__(self, kind: str, total: int) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self.p = Progress(
            TextColumn(f"importing {kind}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
        )
        self.task = self.p.add_task(kind, total=total)
        self.p.start()

    def advance(self) -> None:
        self.p.advance(self.task)

    def stop(self) -> None:
        self.p.stop()


def _progress(enabled: bool, kind: str, total: int) -> _Bar | None:
    return _Bar(kind, total) if enabled and total else None
