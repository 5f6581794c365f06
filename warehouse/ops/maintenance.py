"""Maintenance: compaction (`compact`) and vacuum (`vacuum`), under the names the facade and callers
have always used. The work is in `warehouse.ops.compact` and `warehouse.ops.vacuum`; the CLI's
argument parsers in `warehouse.core.arguments.parse_size` and `warehouse.core.partition_filter`.
"""

from __future__ import annotations

from warehouse.core.arguments import parse_size
from warehouse.core.partition_filter import parse_partition
from warehouse.manifest.vacuum_hint import VACUUM_HINT, check_readable
from warehouse.ops.compact import TARGET_FILE_SIZE, CompactResult, PartitionCompaction, compact, plan_compaction
from warehouse.ops.vacuum import VacuumResult, check_orphan_window, is_data_path, vacuum

__all__ = [
    "compact",
    "plan_compaction",
    "vacuum",
    "check_readable",
    "check_orphan_window",
    "is_data_path",
    "parse_size",
    "parse_partition",
    "CompactResult",
    "PartitionCompaction",
    "VacuumResult",
    "TARGET_FILE_SIZE",
    "VACUUM_HINT",
]
