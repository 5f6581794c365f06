"""Inspect AI live capture: every sample lands in the warehouse as soon as it ends.

Registered with Inspect through this package's entry point (`[project.entry-points.inspect_ai]` in
pyproject.toml), so installing the package is all it takes; the hook is active only while
`WAREHOUSE_INSPECT_URL` names a warehouse (a path or any URL `warehouse.open` takes; created if
absent):

    WAREHOUSE_INSPECT_URL=s3://bucket/results inspect eval task.py --model openai/gpt-4o

Each task gets one writer, opened at task start, of the run configuration `warehouse import inspect`
gives that eval's log (`inspect_logs.run_config` of the spec and plan) with Inspect's `run_id`.
Each sample, when it ends, becomes the execution the importer would make of it (`record_sample`:
same id, from the sample's uuid; same scores, messages, usage, result, status and `events` rows),
committed on the writer's normal triggers (10,000 executions, 64 MiB, 30 s) and at task end, when
the log header's "eval" row is added too. So importing the log afterwards adds no execution and no
event: the import finds the captured samples by id and the header row by eval id (it still records
the log in its `imports` ledger).

Crashes: the writer has a write-ahead log (`WAREHOUSE_INSPECT_WAL`, default
`~/.cache/warehouse/inspect-wal`; one folder per warehouse and configuration), so a sample is on
local disk before the hook returns and a `kill -9` of the eval loses nothing that ended. The next
capture of any eval into that warehouse commits what a crashed one left (at run start), and so
does `recover(url)`.

An unreachable warehouse never fails the eval: the hook logs one warning (logger
`warehouse.inspect`, shown with Inspect's own warnings) and the eval goes on. When it is
unreachable at task start no writer can open (a WAL belongs to a writer of one warehouse), so that
task is not captured; its samples are in Inspect's own log, which `warehouse import inspect
LOG_DIR` adds later. When it becomes unreachable mid-run, what the writer could not commit stays in
the WAL for the next capture or `recover(url)`; recover before importing that eval's log (an import
first is answered right, the recovery then supersedes its executions with identical rows, but
events rows have no key and would be stored twice).

Differences from an import of the finished log: each execution's `metadata["eval"]` has `status`
"started" (the eval had not ended when the sample did) and `log` None (Inspect does not tell hooks
where it writes the log). Samples are turned into what reading the log gives with Inspect's own
(internal) functions: condensed (long contents and images as `attachment://` references in
events), then their model events' shared messages resolved. A task that raises gets no task-end
call from Inspect: its writer is closed, and its header row added from the run's logs, at run end.
The configuration is taken from the spec at task start: an object in `model_args` that Inspect
changes during the run (a list of mockllm `custom_outputs`) gives the log another configuration,
and importing that log then replaces the captured executions (same ids) and adds their events again.
Buffering events uses the writer's internal `_add_rows`, as the importers do.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio.to_thread
from inspect_ai.hooks import Hooks, RunEnd, RunStart, SampleEnd, TaskEnd, TaskStart, hooks

if TYPE_CHECKING:
    from warehouse.warehouse import Warehouse
    from warehouse.write.writer import Writer

#: The environment variable naming the warehouse; the hook is off while it is unset or empty.
URL_ENV = "WAREHOUSE_INSPECT_URL"
#: The environment variable naming the folder of the write-ahead logs (default `DEFAULT_WAL`).
WAL_ENV = "WAREHOUSE_INSPECT_WAL"
DEFAULT_WAL = "~/.cache/warehouse/inspect-wal"
#: The file in each WAL folder that says which run configuration its segments belong to.
CONFIG_FILE = "config.json"

log = logging.getLogger("warehouse.inspect")


def wal_root(url: str, wal: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding the WALs of captures into `url`: one per warehouse under `wal` (default
    `$WAREHOUSE_INSPECT_WAL`, else `DEFAULT_WAL`), since a WAL may hold records of one warehouse only."""
    base = Path(wal or os.environ.get(WAL_ENV) or DEFAULT_WAL).expanduser()
    return base / hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]


def recover(url: str, wal: str | os.PathLike[str] | None = None) -> int:
    """Commit what crashed captures into the warehouse at `url` left in their WALs (see the module
    docstring); returns how many WAL folders were recovered. Folders in use by a running capture
    are left alone. Raises the warehouse's errors (StorageError when unreachable, WalError for a
    damaged WAL)."""
    import warehouse
    from warehouse.core.errors import WalLocked

    root = wal_root(url, wal)
    folders = sorted(p.parent for p in root.glob(f"*/{CONFIG_FILE}")) if root.is_dir() else []
    pending = [d for d in folders if any(d.glob("*.wal"))]
    if not pending:
        return 0
    wh = warehouse.open(url, create=True)
    done = 0
    for d in pending:
        cfg = json.loads((d / CONFIG_FILE).read_text("utf-8"))
        try:
            # opening a writer on the folder commits, exactly once, what the crashed writer left
            wh.writer(**cfg, wal=d, flush_interval=None).close()
            done += 1
        except WalLocked:
            continue
    return done


class _Out:
    """What `inspect_logs.record_sample` records through: validates the execution when given, and
    `apply` adds everything to a live writer (instead of staging it for an import commit)."""

    def __init__(self) -> None:
        self._execution: dict[str, Any] | None = None
        self._rows: list[tuple[Any, list[tuple], int]] = []

    def execution(self, w: Writer, **fields: Any) -> str:
        eid = w.prepare_execution(**fields).execution_id  # InvalidRecord now, before anything is added
        self._execution = fields
        return eid

    def rows(self, w: Writer, shape: Any, rows: list[tuple], text_bytes: int = 0) -> None:
        if rows:
            self._rows.append((shape, rows, text_bytes))

    def apply(self, w: Writer) -> None:
        """Add the rows, then the execution, whose adding may flush: by then every record of the
        sample is buffered and in the WAL, so a flush that fails loses none of them."""
        for shape, rows, text_bytes in self._rows:
            w._add_rows(shape, rows, text_bytes, flush=False)
        if self._execution is not None:
            w.add_execution(**self._execution)


@dataclass
class _Task:
    """The capture of one running task (one eval id)."""

    writer: Writer
    wal: Path
    spec: dict[str, Any]  #: the eval spec as JSON
    info: dict[str, Any]  #: every execution's metadata["eval"]
    log_images: bool


@hooks(name="warehouse", description="Stores every sample in the warehouse at $WAREHOUSE_INSPECT_URL as it ends.")
class WarehouseHooks(Hooks):
    """Inspect hooks writing samples to a warehouse live (see the module docstring)."""

    def __init__(self) -> None:
        self._tasks: dict[str, _Task] = {}
        self._warehouses: dict[str, Warehouse] = {}
        self._warned: set[str] = set()  # one warning per warehouse URL and cause

    def enabled(self) -> bool:
        """On while `WAREHOUSE_INSPECT_URL` is set."""
        return bool(os.environ.get(URL_ENV))

    @staticmethod
    def _url() -> str:
        return os.environ[URL_ENV]

    def _warn_once(self, key: str, message: str, *args: Any) -> None:
        if key not in self._warned:
            self._warned.add(key)
            log.warning(message, *args)

    async def on_run_start(self, data: RunStart) -> None:
        """Commit what crashed captures left in their WALs."""
        url = self._url()
        try:
            await anyio.to_thread.run_sync(recover, url)
        except Exception as exc:
            self._warn_once(f"recover:{url}", "warehouse %s: could not recover earlier captures' WALs (%s)", url, exc)

    async def on_task_start(self, data: TaskStart) -> None:
        """Open the task's writer (its WAL folder recovers a crashed run of the same configuration)."""
        url = self._url()
        try:
            self._tasks[data.eval_id] = await anyio.to_thread.run_sync(self._open, url, data)
        except Exception as exc:
            self._warn_once(
                f"open:{url}",
                "warehouse %s is unreachable (%s): this eval's samples are not captured live; they are in its "
                "Inspect log: run `warehouse import inspect LOG_DIR` once the warehouse is reachable",
                url,
                exc,
            )

    def _open(self, url: str, data: TaskStart) -> _Task:
        import warehouse
        from warehouse.core.errors import WalLocked
        from warehouse.interop.importers.inspect_logs import eval_info, run_config

        spec = _json(data.spec)
        dataset, agent, attack = run_config({"eval": spec, "plan": _json(data.plan)})
        wh = self._warehouses.get(url)
        if wh is None:
            wh = self._warehouses[url] = warehouse.open(url, create=True)
        else:
            wh.refresh()
        cfg: dict[str, Any] = {
            "dataset": dataset,
            "agent": agent,
            "attack": attack,
            "run_id": spec.get("run_id") or None,
        }
        root = wal_root(url)
        name = warehouse.RunConfig.of(dataset, agent, attack).hash
        for folder in (root / name, root / f"{name}-{data.eval_id}"):  # the second: another process has the first
            folder.mkdir(parents=True, exist_ok=True)
            (folder / CONFIG_FILE).write_text(json.dumps(cfg), "utf-8")
            try:
                w = wh.writer(**cfg, wal=folder)
                break
            except WalLocked:
                continue
        else:
            raise WalLocked(f"the WAL folders {root / name}[-{data.eval_id}] are in use by other processes")
        config = getattr(data.spec, "config", None)
        return _Task(w, folder, spec, eval_info({"eval": spec, "status": "started"}, None), _log_images(config))

    async def on_sample_end(self, data: SampleEnd) -> None:
        """Record the sample (one epoch of it) as the importer would; the writer commits it on its triggers."""
        t = self._tasks.get(data.eval_id)
        if t is None:
            return
        from warehouse.interop.importers.inspect_logs import record_sample, sample_execution_id

        out = _Out()
        try:
            sample = _json(_condensed(data.sample, t.log_images))
            eid = sample_execution_id(None, t.spec, sample)
            record_sample(out, t.writer, {"eval": t.spec}, sample, t.info, eid)
        except Exception as exc:  # a sample the importer cannot map either: keep the eval going
            self._warn_once(f"sample:{data.eval_id}", "warehouse: a sample could not be mapped, not stored (%s)", exc)
            return
        try:
            out.apply(t.writer)
        except Exception as exc:  # a flush that failed: the sample is in the WAL
            self._warn_unreachable(t, exc)

    def _warn_unreachable(self, t: _Task, exc: BaseException) -> None:
        self._warn_once(
            f"close:{self._url()}",
            "warehouse %s: could not commit captured samples (%s); they are kept in the WAL %s and are committed "
            "by the next capture or warehouse.compat.inspect_hook.recover(url) (before any `warehouse import "
            "inspect` of this eval's log)",
            self._url(),
            exc,
            t.wal,
        )

    async def on_task_end(self, data: TaskEnd) -> None:
        """Add the log header's "eval" row and commit what is buffered."""
        t = self._tasks.pop(data.eval_id, None)
        if t is not None:
            await self._finish(data.eval_id, t, data.log)

    async def on_run_end(self, data: RunEnd) -> None:
        """Finish the tasks that never reached their end (a task that raised: Inspect reports no
        task end for it, but the run's logs hold its header)."""
        logs = {log.eval.eval_id: log for log in data.logs or ()}
        while self._tasks:
            eval_id, t = self._tasks.popitem()
            await self._finish(eval_id, t, logs.get(eval_id))

    async def _finish(self, eval_id: str, t: _Task, log: Any) -> None:
        from warehouse.interop.importers.inspect_logs import eval_row
        from warehouse.write.live import EVENT_ROW

        if log is not None:
            try:
                header = _json(log.model_copy(update={"samples": None}))
                t.writer._add_rows(EVENT_ROW, [eval_row(header)], flush=False)
            except Exception as exc:
                self._warn_once(f"header:{eval_id}", "warehouse: the eval's header row could not be stored (%s)", exc)
        await self._close(t)

    async def _close(self, t: _Task) -> None:
        try:
            await anyio.to_thread.run_sync(t.writer.close)
        except Exception as exc:
            self._warn_unreachable(t, exc)


def _json(model: Any) -> Any:
    """A pydantic model (spec, plan, sample, log) as the importer reads it from the log: written as
    Inspect writes logs (values that cannot be serialized, live objects in `model_args` or metadata,
    become None; None fields left out), read back into the model, dumped as JSON (NaN and infinities
    as strings)."""
    from pydantic_core import to_json

    logged = to_json(model, exclude_none=True, fallback=lambda _: None)
    return json.loads(type(model).model_validate_json(logged).model_dump_json(), parse_constant=str)


def _log_images(config: Any) -> bool:
    value = getattr(config, "log_images", None)
    return True if value is None else bool(value)


def _condensed(sample: Any, log_images: bool) -> Any:
    """The sample as reading its log gives it: condensed as Inspect writes it (long contents and
    images as attachments), then its model events' shared-message references resolved as Inspect
    resolves them on read; with Inspect's own functions (internal ones: without them, events keep
    their contents inline and an import's events rows would differ)."""
    try:
        from inspect_ai.log._condense import condense_sample
        from inspect_ai.log._resolve import rebind_sample_timelines, resolve_sample_events_data
    except ImportError:
        return sample
    return rebind_sample_timelines(resolve_sample_events_data(condense_sample(sample, log_images)))
