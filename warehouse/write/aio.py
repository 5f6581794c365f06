"""The writer for asyncio code: nothing that waits for storage runs on the event loop.

`AsyncWriter` wraps a `Writer` whose size- and time-triggered flushes all run on its flusher
thread (never inline in the caller), and runs everything else that touches storage (opening the
writer, checkpoints, flush, close) in a worker thread with `asyncio.to_thread`. Buffering calls
(`add_execution`, `start_execution`, `log`, spans, `update`, `finish`) only validate and append in
memory, so they are plain calls. Safe to share between many tasks of one loop.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any

from warehouse.core.errors import InvalidArgument
from warehouse.write.live import Execution, Span
from warehouse.write.options import WriterOptions
from warehouse.write.writer import Writer

if TYPE_CHECKING:
    from warehouse.engine.engine import Engine


class AsyncExecution:
    """An `Execution` for coroutines: `await` checkpoint (it commits); the rest is as in Execution."""

    def __init__(self, ex: Execution) -> None:
        self.sync = ex

    def __getattr__(self, name: str) -> Any:  # execution_id, task_id, owner, status, revision
        return getattr(self.sync, name)

    def __repr__(self) -> str:
        return f"<Async{self.sync!r}"

    def log(
        self, level: str, message: Any, *, source: str | None = None, attrs: Any = None, name: str | None = None
    ) -> None:
        """As `Execution.log`: buffered, never raises, never waits."""
        self.sync.log(level, message, source=source, attrs=attrs, name=name)

    def span(self, name: str, attrs: Any = None, *, kind: str = "tool") -> Span:
        """As `Execution.span`; use with `async with` or `with`."""
        return self.sync.span(name, attrs, kind=kind)

    def update(self, **changes: Any) -> int:
        """As `Execution.update` (buffered)."""
        return self.sync.update(**changes)

    def finish(self, **result: Any) -> None:
        """As `Execution.finish` (buffered; committed by the next flush)."""
        self.sync.finish(**result)

    def fail(self, error: Any, **result: Any) -> None:
        """As `Execution.fail` (buffered)."""
        self.sync.fail(error, **result)

    async def checkpoint(self, state: Any, **kw: Any) -> str:
        """As `Execution.checkpoint`, committing on a worker thread; durable when awaited."""
        return await asyncio.to_thread(self.sync.checkpoint, state, **kw)

    async def __aenter__(self) -> AsyncExecution:
        return self

    async def __aexit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.sync.__exit__(exc_type, exc, tb)


class AsyncWriter:
    """`async with wh.async_writer(dataset=..., agent=...) as w:`; see the module docstring."""

    def __init__(
        self,
        wh: Engine,
        *,
        dataset: Any,
        agent: Any,
        attack: Any = None,
        run_id: str | None = None,
        options: WriterOptions | None = None,
        **option_values: Any,
    ) -> None:
        """As `Writer` (options given as `options` or as keywords); raises InvalidArgument without
        a `flush_interval` > 0. Nothing touches storage until `open()`."""
        if options is None or option_values:
            options = dataclasses.replace(options or WriterOptions(), **option_values)
        if not options.flush_interval:
            raise InvalidArgument(
                f"an async writer needs a flush_interval > 0 (its flushes run on the flusher thread), "
                f"got {options.flush_interval!r}"
            )
        self.wh = wh
        self._config = {"dataset": dataset, "agent": agent, "attack": attack, "run_id": run_id}
        self.options = options
        self._w: Writer | None = None

    @property
    def writer(self) -> Writer:
        if self._w is None:
            raise RuntimeError("use the async writer inside `async with` (or await open() first)")
        return self._w

    async def open(self) -> AsyncWriter:
        """Create the underlying writer (registers the config: storage I/O, on a worker thread)."""
        if self._w is None:
            w = await asyncio.to_thread(Writer, self.wh.engine, **self._config, options=self.options)
            w._caller_flushes = False
            self._w = w
        return self

    def add_execution(self, **record: Any) -> str:
        """As `Writer.add_execution`; never flushes on the calling thread."""
        return self.writer.add_execution(**record)

    def add_trajectory(self, **record: Any) -> str:
        """As `Writer.add_trajectory`; never flushes on the calling thread."""
        return self.writer.add_trajectory(**record)

    def start_execution(self, task_id: str, **kw: Any) -> AsyncExecution:
        """As `Writer.start_execution`."""
        return AsyncExecution(self.writer.start_execution(task_id, **kw))

    async def resume_execution(self, execution_id: str, *, owner: str | None = None) -> AsyncExecution:
        """As `Writer.resume_execution` (reads the snapshot on a worker thread)."""
        return AsyncExecution(await asyncio.to_thread(self.writer.resume_execution, execution_id, owner=owner))

    @property
    def dropped_events(self) -> dict[str, int]:
        return self.writer.dropped_events

    async def flush(self) -> int | None:
        """Commit everything buffered (on a worker thread); returns the version."""
        return await asyncio.to_thread(self.writer.flush)

    async def close(self) -> int | None:
        """Flush and close (on a worker thread)."""
        if self._w is None:
            return None
        return await asyncio.to_thread(self._w.close)

    async def __aenter__(self) -> AsyncWriter:
        return await self.open()

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.close()
