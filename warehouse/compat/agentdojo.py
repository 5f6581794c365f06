"""AgentDojo benchmarks recorded live: each task's result is committed to a warehouse as it finishes.

Two ways, both leaving AgentDojo's own behaviour (its results, its log files) unchanged:

    from warehouse.compat.agentdojo import WarehouseLogger
    with OutputLogger(logdir), WarehouseLogger("s3://bucket/wh"):      # as agentdojo's script does
        results = benchmark_suite_with_injections(pipeline, suite, attack, logdir, force_rerun=True)

    from warehouse.compat.agentdojo import benchmark_suite_with_injections   # the one changed import
    results = benchmark_suite_with_injections(pipeline, suite, attack, logdir, True, warehouse="wh/")

The wrappers `benchmark_suite_with_injections` and `benchmark_suite_without_injections` take
agentdojo's arguments, in its order, plus a keyword `warehouse` (a URL, an open `Warehouse`, or None:
the environment variable `WAREHOUSE_AGENTDOJO_URL`), and return agentdojo's own `SuiteResults`.

How a result is seen: AgentDojo runs each task (a user task alone, a (user task, injection task)
pair, or an injection task alone, to check it can be achieved) inside a `TraceLogger` whose
`delegate` is the current logger, and that `TraceLogger` is the only object that ever holds the
task's utility, security and duration: it rewrites the task's log file each time one of them is
set (`save`). `WarehouseLogger` is a `Logger`; pushed onto AgentDojo's logger stack, it becomes the
delegate of each task's `TraceLogger`, finds that `TraceLogger` when it first forwards the task's
messages, and follows its `save` (on that one object only): the save that completes utility,
security and duration (the last one, whichever order the benchmark sets them in) records the task
and commits it (one commit per task). The log is the dict `TraceLogger.save` writes, and goes
through the AgentDojo importer's own mapping (`warehouse.interop.importers.agentdojo`): utility ->
benign_score, security -> attack_score (attacked pairs), injections -> attacks, messages, injection
task checks in the dataset `agentdojo.checks`, and the same execution id. Importing the run's log
directory afterwards therefore adds no execution: it rewrites each one with equal values.

Differences from AgentDojo without the warehouse, and why:
- A task AgentDojo skips because its log exists (`force_rerun=False`) runs no `TraceLogger` and is
  not recorded: `warehouse import agentdojo LOGDIR` adds those, without duplicates.
- A task whose pipeline never logs a message (every AgentDojo pipeline does) is not seen.
- A failure of the warehouse (unreachable store, full disk) never stops the benchmark: it is
  logged as a warning and listed in `WarehouseLogger.failures`; the writer retries the uncommitted
  batch at the next task and on close, and AgentDojo's log files still hold every result.
"""

from __future__ import annotations

import json
import logging
import os
import weakref
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentdojo import benchmark as _benchmark  # type: ignore[import-untyped]
from agentdojo.agent_pipeline.base_pipeline_element import BasePipelineElement  # type: ignore[import-untyped]
from agentdojo.attacks.base_attacks import BaseAttack  # type: ignore[import-untyped]
from agentdojo.benchmark import SuiteResults  # type: ignore[import-untyped]
from agentdojo.functions_runtime import Env  # type: ignore[import-untyped]
from agentdojo.logging import LOGGER_STACK, Logger, NullLogger, TraceLogger  # type: ignore[import-untyped]
from agentdojo.task_suite.task_suite import TaskSuite  # type: ignore[import-untyped]
from pydantic import BaseModel

from warehouse.core.errors import InvalidArgument, WarehouseError
from warehouse.interop.importers.agentdojo import BENIGN, execution_fields, run_config
from warehouse.warehouse import Warehouse
from warehouse.warehouse import open as open_warehouse
from warehouse.write.writer import Writer

#: The environment variable the wrappers read when given no `warehouse`.
URL_ENV = "WAREHOUSE_AGENTDOJO_URL"
#: The context keys whose presence says a task has finished (see the module docstring).
FINISHED = ("utility", "security", "duration")
#: Keys `TraceLogger.save` writes from its own fields rather than from its context.
_OWN_KEYS = ("suite_name", "user_task_id", "injection_task_id", "injections", "attack_type", "pipeline_name")

log = logging.getLogger("warehouse")


def task_log(trace: TraceLogger) -> dict[str, Any] | None:
    """The log `trace.save()` writes, as JSON values; None when AgentDojo writes none (no
    attack_type or pipeline_name in its context)."""
    ctx = trace.context
    attack_type, pipeline = ctx.get("attack_type"), ctx.get("pipeline_name")
    if attack_type is None or pipeline is None:
        return None
    doc = {
        "suite_name": ctx.get("suite_name", "unknown_suite_name"),
        "pipeline_name": pipeline.replace("/", "_"),
        "user_task_id": ctx.get("user_task_id", "unknown_user_task_id"),
        "injection_task_id": ctx.get("injection_task_id", "unknown_injection_task_id"),
        "attack_type": attack_type if attack_type != BENIGN else None,
        "injections": ctx.get("injections", {}),
        "messages": trace.messages,
        "error": trace.error,
        **{k: v for k, v in ctx.items() if k not in _OWN_KEYS},
    }
    # through JSON as save does, so that messages' pydantic objects become what the file holds
    return json.loads(json.dumps(doc, default=lambda o: o.model_dump() if isinstance(o, BaseModel) else o))


class WarehouseLogger(Logger):
    """An AgentDojo logger that commits each task's result to a warehouse as soon as it finishes.

    `warehouse`: a URL (created if absent) or an open `Warehouse`; `storage_options` go to
    `warehouse.open`. `delegate`: the logger that still prints and whose `logdir` AgentDojo writes
    its log files to; by default the logger current when this one is entered (an `OutputLogger`
    entered around it, say), or none. `logdir` overrides the delegate's. Use as a context manager
    around the benchmark calls; leaving it commits anything left and closes its writers.
    """

    def __init__(
        self,
        warehouse: str | os.PathLike[str] | Warehouse,
        logdir: str | None = None,
        delegate: Logger | None = None,
        *,
        storage_options: dict[str, Any] | None = None,
    ) -> None:
        if not isinstance(warehouse, (str, os.PathLike, Warehouse)):
            raise InvalidArgument(f"warehouse must be a URL or a Warehouse, got {type(warehouse).__name__}")
        self._target = warehouse
        self._storage_options = storage_options
        self._logdir = logdir
        self._delegate = delegate
        self._wh: Warehouse | None = None
        self._writers: dict[str, Writer] = {}
        self._followed: weakref.WeakSet[Any] = weakref.WeakSet()  # not ids: a freed logger's id is reused
        #: Execution ids recorded, in the order their tasks finished.
        self.recorded: list[str] = []
        #: Warehouse errors met (each also logged as a warning); the benchmark went on.
        self.failures: list[WarehouseError] = []

    # -- AgentDojo's Logger interface ----------------------------------------------------------------
    @property
    def logdir(self) -> str | None:
        """Where AgentDojo's TraceLogger writes log files: `logdir`, else the delegate's."""
        if self._logdir is not None:
            return self._logdir
        return getattr(self._delegate, "logdir", None)

    @property
    def messages(self) -> list:
        return getattr(self._delegate, "messages", [])

    @messages.setter
    def messages(self, value: list) -> None:
        # A new TraceLogger resets its delegate's messages; OutputLogger prints only what is new.
        if self._delegate is not None:
            self._delegate.messages = value

    def __enter__(self) -> WarehouseLogger:
        if self._delegate is None:
            current = Logger.get()
            if isinstance(current, NullLogger):
                current.__enter__()  # sets its messages and logdir (it is not pushed on the stack)
            self._delegate = current
        if self._wh is None:
            self._wh = (
                self._target
                if isinstance(self._target, Warehouse)
                else open_warehouse(os.fspath(self._target), create=True, storage_options=self._storage_options)
            )
        super().__enter__()
        return self

    def __exit__(self, exc_type: Any, exc_value: Any, traceback: Any) -> None:
        super().__exit__(exc_type, exc_value, traceback)
        self.close()

    def log(self, messages: list, **kwargs: Any) -> None:
        """Forward to the delegate; the first call of a task's TraceLogger starts following it."""
        if self._delegate is not None:
            self._delegate.log(messages, **kwargs)
        for trace in reversed(LOGGER_STACK.get()):
            if isinstance(trace, TraceLogger) and trace.delegate is self:
                self._follow(trace)
                break

    def log_error(self, error: str) -> None:
        if self._delegate is not None:
            self._delegate.log_error(error)

    # -- recording -----------------------------------------------------------------------------------
    def _follow(self, trace: TraceLogger) -> None:
        if trace in self._followed:
            return
        self._followed.add(trace)
        save = trace.save
        done = False

        def save_and_record() -> None:
            nonlocal done
            save()
            if not done and all(k in trace.context for k in FINISHED):
                done = True
                self._record(trace)

        trace.save = save_and_record

    def _record(self, trace: TraceLogger) -> None:
        doc = task_log(trace)
        if doc is None:
            return
        try:
            fields = execution_fields(doc)
            dataset, agent, attack = run_config(doc)
            w = self._writer(dataset, agent, attack)
            self.recorded.append(w.add_execution(**fields))
            w.flush()
        except WarehouseError as exc:
            self._failed(exc, f"{doc['user_task_id']} / {doc['injection_task_id']}")

    def _writer(self, dataset: dict[str, Any], agent: dict[str, Any], attack: dict[str, Any] | None) -> Writer:
        key = json.dumps([dataset, agent, attack], sort_keys=True)
        w = self._writers.get(key)
        if w is None:
            assert self._wh is not None, "WarehouseLogger records only inside its `with` block"
            w = self._writers[key] = self._wh.writer(dataset=dataset, agent=agent, attack=attack, flush_interval=None)
        return w

    def _failed(self, exc: WarehouseError, what: str) -> None:
        self.failures.append(exc)
        log.warning("AgentDojo task %s not committed to the warehouse (still in AgentDojo's log): %s", what, exc)

    def close(self) -> None:
        """Commit what a failed flush left and close the writers (leaving the `with` block does it)."""
        writers, self._writers = list(self._writers.values()), {}
        for w in writers:
            try:
                w.close()
            except WarehouseError as exc:
                self._failed(exc, "batch")


def _target(warehouse: str | os.PathLike[str] | Warehouse | None) -> str | os.PathLike[str] | Warehouse:
    if warehouse is not None:
        return warehouse
    url = os.environ.get(URL_ENV)
    if not url:
        raise InvalidArgument(f"give warehouse= (a URL or a Warehouse) or set {URL_ENV}")
    return url


def benchmark_suite_with_injections(
    agent_pipeline: BasePipelineElement,
    suite: TaskSuite[Env],
    attack: BaseAttack,
    logdir: Path | None,
    force_rerun: bool,
    user_tasks: Sequence[str] | None = None,
    injection_tasks: Sequence[str] | None = None,
    verbose: bool = True,
    benchmark_version: str | None = None,
    *,
    warehouse: str | os.PathLike[str] | Warehouse | None = None,
) -> SuiteResults:
    """`agentdojo.benchmark.benchmark_suite_with_injections`, committing each task's result to
    `warehouse` (default: $WAREHOUSE_AGENTDOJO_URL) as it finishes. Returns agentdojo's results.
    Raises InvalidArgument when no warehouse is given or set, before running anything."""
    with WarehouseLogger(_target(warehouse)):
        return _benchmark.benchmark_suite_with_injections(
            agent_pipeline,
            suite,
            attack,
            logdir,
            force_rerun,
            user_tasks,
            injection_tasks,
            verbose,
            benchmark_version,
        )


def benchmark_suite_without_injections(
    agent_pipeline: BasePipelineElement,
    suite: TaskSuite,
    logdir: Path | None,
    force_rerun: bool,
    user_tasks: Sequence[str] | None = None,
    benchmark_version: str | None = None,
    *,
    warehouse: str | os.PathLike[str] | Warehouse | None = None,
) -> SuiteResults:
    """`agentdojo.benchmark.benchmark_suite_without_injections`, committing each task's result to
    `warehouse` (default: $WAREHOUSE_AGENTDOJO_URL) as it finishes. Returns agentdojo's results.
    Raises InvalidArgument when no warehouse is given or set, before running anything."""
    with WarehouseLogger(_target(warehouse)):
        return _benchmark.benchmark_suite_without_injections(
            agent_pipeline, suite, logdir, force_rerun, user_tasks, benchmark_version
        )
