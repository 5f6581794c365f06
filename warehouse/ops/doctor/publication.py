"""Doctor's checks of publication (`warehouse.ops.publish.delta`): each table's `_delta_log`.

- `publication-damaged` (error): a log that delta-rs cannot open, or whose latest version names
  files that do not exist, or other files than the warehouse version its `warehouse` transaction
  records should name (computed as publication does, writing nothing). Fix: `warehouse publish
  delta --rebuild` writes the log again from the current snapshot.
- `publication-foreign` (warning): a `_delta_log` without the `warehouse` transaction, which
  publication never touches (and `--rebuild` replaces).
- `publication-behind` (warning): the setting `_manifest/_publish.json` asks for Delta, and the log
  reflects a version older than the table's last change (and names other files than the current
  snapshot should), or the table has data and no log. Fix: `warehouse publish delta`.

`doctor --repair` does not rewrite logs: publishing is its own command (it may write derived files).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from warehouse.core.schemas import catalog
from warehouse.core.storage import Store
from warehouse.manifest import Commit, DataFile
from warehouse.ops.doctor.report import DoctorReport, Finding

REBUILD = (
    "run `warehouse publish delta --rebuild --url URL --table {table}` to write the log again from the current snapshot"
)
PUBLISH = "run `warehouse publish delta --url URL` (or wait for the automatic publication of the next commit)"


def _named_by_version(
    store: Store, version: int, table: str, options: Mapping[str, Any] | None, engines: dict[int, Any]
) -> set[str] | None:
    """The paths `table`'s Delta version for warehouse `version` should name (None: that version
    cannot be opened, e.g. folded away by vacuum); `engines` caches the engines opened per version."""
    from warehouse.engine import keys
    from warehouse.engine.engine import open_engine
    from warehouse.ops.publish import delta

    if version not in engines:
        try:
            engines[version] = open_engine(store.url, version=version, storage_options=options)
        except Exception:  # a version vacuum made unreadable, or a damaged log: nothing to compare with
            engines[version] = None
    engine = engines[version]
    if engine is None:
        return None
    snap = engine.snapshot
    hidden = keys.Hidden(engine.keys, engine.store, snap)
    report = delta.TablePublication(table, version, None)
    return set(delta.target(engine, snap, table, hidden, report, dry=True))


def check_publication(
    store: Store,
    listed: Mapping[str, int],
    commits: Mapping[int, Commit],
    files: Mapping[str, DataFile],
    report: DoctorReport,
    *,
    exact: bool,
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Check every table's Delta log against storage (`listed`: every file under the tables) and the
    log (`commits`, `files`: the replayed snapshot); findings go in `report`."""
    from warehouse.ops.publish import delta, settings

    wanted = "delta" in settings.read(store)
    last_change: dict[str, int] = {}
    for v, c in commits.items():
        for t in {a.table for a in c.add} | {r.table for r in c.remove}:
            last_change[t] = max(last_change.get(t, -1), v)
    latest = max(commits, default=-1)
    engines: dict[int, Any] = {}
    checked = 0
    for table in catalog().tables:
        path = f"{table}/{delta.DELTA_LOG}"
        if not delta.log_present(store, table):  # (a first commit's temp file alone is no log)
            if wanted and any(f.table == table for f in files.values()):
                report.findings.append(
                    Finding(
                        "warning",
                        "publication-behind",
                        "publication to Delta is on, but this table has data and no Delta log",
                        PUBLISH,
                        path=path,
                    )
                )
            continue
        checked += 1
        finding = _check_log(store, table, listed, report, engines, exact=exact, storage_options=storage_options)
        if finding is not None:
            report.findings.append(finding)
            continue
        done = _published(store, table)
        if wanted and done is not None and done < last_change.get(table, -1):
            now = _named_by_version(store, latest, table, storage_options, engines)
            if now is None or now != _named(store, table):
                report.findings.append(
                    Finding(
                        "warning",
                        "publication-behind",
                        f"the Delta log reflects warehouse version {done}; the table last changed "
                        f"in version {last_change[table]}: Delta readers see older data",
                        PUBLISH,
                        path=path,
                        version=done,
                    )
                )
    if checked:
        report.notes.append(
            f"publication: checked {checked} Delta log(s); `doctor --repair` does not rewrite them "
            "(`warehouse publish delta --rebuild` does)"
        )


def _published(store: Store, table: str) -> int | None:
    from warehouse.ops.publish import delta

    dt = delta.open_table(delta.table_uri(store, table), delta.storage_options(store))
    return None if dt is None else delta.published_version(dt)


def _named(store: Store, table: str) -> set[str]:
    from warehouse.ops.publish import delta

    dt = delta.open_table(delta.table_uri(store, table), delta.storage_options(store))
    return set() if dt is None else delta.delta_files(dt, table)


def _check_log(
    store: Store,
    table: str,
    listed: Mapping[str, int],
    report: DoctorReport,
    engines: dict[int, Any],
    *,
    exact: bool,
    storage_options: Mapping[str, Any] | None,
) -> Finding | None:
    """The finding for `table`'s Delta log if it is damaged or foreign, else None."""
    from warehouse.ops.publish import delta

    path = f"{table}/{delta.DELTA_LOG}"

    def damaged(message: str, version: int | None = None) -> Finding:
        return Finding("error", "publication-damaged", message, REBUILD.format(table=table), path=path, version=version)

    try:
        dt = delta.open_table(delta.table_uri(store, table), delta.storage_options(store))
        error = None if dt is not None else "delta-rs finds no Delta table in it"
    except Exception as exc:  # whatever delta-rs raises for a damaged log, it cannot be read
        dt, error = None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    if dt is None:
        return damaged(f"the Delta log cannot be opened ({error}): Delta readers fail on this table")
    done = delta.published_version(dt)
    if done is None:
        return Finding(
            "warning",
            "publication-foreign",
            f"a Delta log this warehouse did not write (no '{delta.APP_ID}' transaction): publication "
            "never touches it, and Delta readers read it instead of the warehouse's table",
            f"move it out of the warehouse, or {REBUILD.format(table=table)} (replacing it)",
            path=path,
        )
    try:
        named = delta.delta_files(dt, table)
    except Exception as exc:  # an unreadable checkpoint or commit of the log
        return damaged(f"the files of Delta version {dt.version()} cannot be read ({type(exc).__name__}: {exc})")
    missing = sorted(p for p in named if p not in listed)
    if missing:
        return damaged(
            f"Delta version {dt.version()} names {len(missing)} file(s) that do not exist "
            f"(first: {missing[0]}): Delta readers fail on this table",
            done,
        )
    if not exact:
        return None  # the warehouse's own log is damaged: no version to compare with
    should = _named_by_version(store, done, table, storage_options, engines)
    if should is None:
        report.notes.append(
            f"{path}: warehouse version {done}, which it reflects, cannot be opened any more "
            "(vacuumed): its files were not compared"
        )
    elif should != named:
        extra, lacking = sorted(named - should), sorted(should - named)
        return damaged(
            f"Delta version {dt.version()} records warehouse version {done} but names other files than "
            f"that version holds ({len(extra)} more, {len(lacking)} fewer; e.g. "
            f"{(extra or lacking)[0]}): Delta readers see other rows than the warehouse",
            done,
        )
    return None


def is_publication_path(rel: str) -> bool:
    """A file of a table's Delta log, or a derived file of publication where publication writes
    them (at a partition's depth): neither an orphan nor a stray."""
    from warehouse.ops.publish import delta
    from warehouse.ops.vacuum import is_derived_path

    parts = rel.split("/")
    if len(parts) > 2 and parts[0] in catalog().tables and parts[1] == delta.DELTA_LOG:
        return True
    return is_derived_path(rel, catalog().tables, catalog().partition_columns)
