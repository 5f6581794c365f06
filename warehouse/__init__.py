"""A results warehouse for AI-agent evaluations: partitioned Parquet, one transactional manifest,
DuckDB views for SQL and Polars for notebooks.

    import warehouse
    wh = warehouse.open("results/", create=True)
    with wh.writer(dataset={"type": "agentdojo", "config": {}}, agent={"type": "plain", "config": {}}) as w:
        w.add_execution(task_id="user_task_0", benign_score=1.0, messages=[...])
    wh.sql("select * from scores").show()
"""

import importlib
from typing import Any

from warehouse.core.config import RunConfig, config_hash
from warehouse.core.errors import (
    CheckpointNotFound,
    CommitConflict,
    ConditionalWritesUnsupported,
    ConfigHashCollision,
    CorruptCheckpoint,
    CorruptCommit,
    CorruptDataFile,
    ExecutionNotFound,
    ExportFailed,
    ImportFailed,
    InvalidArgument,
    InvalidArgumentType,
    InvalidCondition,
    InvalidPartitionValue,
    InvalidRecord,
    NotAWarehouse,
    OrphanWindowTooShort,
    PermissionDenied,
    PublishFailed,
    ReadOnlyWarehouse,
    RunNotFound,
    SchemaMismatch,
    SessionNotFound,
    StaleDataFile,
    StateError,
    StorageError,
    SyncDiverged,
    UnsupportedFormatVersion,
    VersionNotFound,
    WalError,
    WalLocked,
    WarehouseError,
    WarehouseNotFound,
    WriterClosed,
)
from warehouse.core.version import VERSION as __version__
from warehouse.warehouse import CommitInfo, Warehouse, open
from warehouse.write.aio import AsyncWriter
from warehouse.write.live import Checkpoint, Execution
from warehouse.write.writer import Writer

#: Where the modules of the flat layout before 0.2 live now. `from warehouse import analytics` (and
#: the other old names) keeps working as an alias, resolved on first use; new code imports the new
#: path (`from warehouse.read import analytics`).
MOVED_MODULES = {
    "errors": "warehouse.core.errors",
    "arguments": "warehouse.core.arguments",
    "storage": "warehouse.core.storage",
    "schemas": "warehouse.core.schemas",
    "records": "warehouse.core.records",
    "config": "warehouse.core.config",
    "condition": "warehouse.core.condition",
    "partition_filter": "warehouse.core.partition_filter",
    "manifest_checkpoint": "warehouse.manifest.checkpoint",
    "keys": "warehouse.engine.keys",
    "reader": "warehouse.engine.reader",
    "rewrite": "warehouse.engine.rewrite",
    "writer": "warehouse.write.writer",
    "live": "warehouse.write.live",
    "aio": "warehouse.write.aio",
    "wal": "warehouse.write.wal",
    "analytics": "warehouse.read.analytics",
    "report": "warehouse.read.report",
    "agent_state": "warehouse.agent.state",
    "sessions": "warehouse.agent.sessions",
    "simulation": "warehouse.agent.simulation",
    "maintenance": "warehouse.ops.maintenance",
    "retention": "warehouse.ops.retention",
    "doctor": "warehouse.ops.doctor",
    "sync": "warehouse.ops.sync",
    "importers": "warehouse.interop.importers",
    "exporters": "warehouse.interop.exporters",
    "demo": "warehouse.cli.demo",
    "bench": "warehouse.cli.bench",
}


def __getattr__(name: str) -> Any:
    if name in MOVED_MODULES:
        return importlib.import_module(MOVED_MODULES[name])
    raise AttributeError(f"module 'warehouse' has no attribute {name!r}")


__all__ = [
    "open",
    "Warehouse",
    "Writer",
    "AsyncWriter",
    "Execution",
    "Checkpoint",
    "CommitInfo",
    "RunConfig",
    "config_hash",
    "WarehouseError",
    "WarehouseNotFound",
    "NotAWarehouse",
    "ReadOnlyWarehouse",
    "InvalidRecord",
    "InvalidPartitionValue",
    "ConfigHashCollision",
    "SchemaMismatch",
    "CommitConflict",
    "CorruptCommit",
    "UnsupportedFormatVersion",
    "VersionNotFound",
    "ExecutionNotFound",
    "StorageError",
    "ConditionalWritesUnsupported",
    "PermissionDenied",
    "SessionNotFound",
    "RunNotFound",
    "CheckpointNotFound",
    "CorruptCheckpoint",
    "WalError",
    "WalLocked",
    "ImportFailed",
    "ExportFailed",
    "PublishFailed",
    "InvalidCondition",
    "InvalidArgument",
    "InvalidArgumentType",
    "CorruptDataFile",
    "OrphanWindowTooShort",
    "StaleDataFile",
    "SyncDiverged",
    "StateError",
    "WriterClosed",
    "__version__",
]
