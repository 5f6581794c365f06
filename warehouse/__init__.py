"""A results warehouse for AI-agent evaluations: partitioned Parquet, one transactional manifest,
DuckDB views for SQL and Polars for notebooks.

    import warehouse
    wh = warehouse.open("results/", create=True)
    with wh.writer(dataset={"type": "agentdojo", "config": {}}, agent={"type": "plain", "config": {}}) as w:
        w.add_execution(task_id="user_task_0", benign_score=1.0, messages=[...])
    wh.sql("select * from scores").show()
"""

from .config import RunConfig, config_hash
from .errors import (CheckpointNotFound, CommitConflict, CorruptCheckpoint, WalError, WalLocked, ConditionalWritesUnsupported, ConfigHashCollision, CorruptCommit,
                     CorruptDataFile, ExecutionNotFound, ExportFailed, ImportFailed, InvalidArgument, InvalidArgumentType, InvalidCondition, InvalidPartitionValue, InvalidRecord, NotAWarehouse, PermissionDenied,
                     ReadOnlyWarehouse, RunNotFound, SchemaMismatch, SessionNotFound, StorageError, UnsupportedFormatVersion, VersionNotFound, WarehouseError,
                     WarehouseNotFound)
from .errors import OrphanWindowTooShort, StaleDataFile, SyncDiverged
from .warehouse import CommitInfo, Warehouse, open
from .writer import Writer

__version__ = "0.1.0"

__all__ = [
    "open", "Warehouse", "Writer", "CommitInfo", "RunConfig", "config_hash",
    "WarehouseError", "WarehouseNotFound", "NotAWarehouse", "ReadOnlyWarehouse", "InvalidRecord",
    "InvalidPartitionValue", "ConfigHashCollision", "SchemaMismatch", "CommitConflict", "CorruptCommit",
    "UnsupportedFormatVersion", "VersionNotFound", "ExecutionNotFound", "StorageError", "ConditionalWritesUnsupported",
    "PermissionDenied", "SessionNotFound", "RunNotFound", "CheckpointNotFound", "CorruptCheckpoint",
    "WalError", "WalLocked", "ImportFailed", "ExportFailed", "InvalidCondition", "InvalidArgument", "InvalidArgumentType", "CorruptDataFile",
]
__all__ += ["OrphanWindowTooShort", "StaleDataFile", "SyncDiverged"]
