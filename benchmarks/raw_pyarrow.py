"""Raw pyarrow: the practical lower bound of a writer that takes Python objects.

The same `add_execution` keyword dicts become Arrow through pyarrow's own bulk conversion: one typed
`pa.array(dicts, type=struct)` for the executions, one typed `pa.array(list_of_message_lists,
type=list<struct>)` for all messages (flattened with Arrow compute; execution_id and seq come from
the list offsets), the same for attacks. The only Python work per row is what Arrow cannot take as
is: a fresh execution id and the metadata as JSON text per execution, and per message one
`isinstance` test that moves a list of content parts into its own typed column. Tool calls and
content parts stay native nested Arrow types (no JSON). No validation at all.

Files are written with `pyarrow.dataset.write_dataset`, hive-partitioned by dataset/agent/attack/
config_hash like the warehouse, zstd level 3 like the warehouse.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

PARTITION_COLUMNS = ["dataset", "agent", "attack", "config_hash"]
TIMESTAMP = pa.timestamp("us", tz="UTC")

USAGE = pa.struct(
    [
        ("input_tokens", pa.int64()),
        ("output_tokens", pa.int64()),
        ("total_tokens", pa.int64()),
        ("requests", pa.int64()),
        ("tool_calls", pa.int64()),
        ("cost", pa.float64()),
    ]
)
EXECUTION = pa.struct(
    [
        ("execution_id", pa.string()),
        ("task_id", pa.string()),
        ("model", pa.string()),
        ("usage", USAGE),
        ("benign_score", pa.float64()),
        ("attack_score", pa.float64()),
        ("started_at", TIMESTAMP),
        ("finished_at", TIMESTAMP),
        ("trace_id", pa.string()),
        ("span_id", pa.string()),
        ("metadata", pa.string()),
        ("scores", pa.map_(pa.string(), pa.float64())),
    ]
)
TOOL_CALL = pa.struct(
    [
        ("id", pa.string()),
        ("type", pa.string()),
        ("function", pa.struct([("name", pa.string()), ("arguments", pa.string())])),
    ]
)
CONTENT_PART = pa.struct([("type", pa.string()), ("text", pa.string())])
MESSAGE = pa.struct(
    [
        ("role", pa.string()),
        ("content", pa.string()),
        ("content_parts", pa.list_(CONTENT_PART)),
        ("tool_calls", pa.list_(TOOL_CALL)),
        ("tool_call_id", pa.string()),
        ("name", pa.string()),
        ("step", pa.int32()),
        ("timestamp", TIMESTAMP),
        ("tokens", pa.int64()),
    ]
)
ATTACK = pa.struct(
    [("vector_id", pa.string()), ("type", pa.string()), ("content", pa.string()), ("metadata", pa.string())]
)


def _children(lists: list[list[Any]], item: pa.DataType, eids: pa.Array) -> pa.Table:
    """A list of per-execution lists of dicts -> one flat table with execution_id and seq first."""
    arr = pa.array(lists, type=pa.list_(item))
    flat = arr.flatten()
    parents = np.asarray(pc.list_parent_indices(arr))
    seq = np.arange(len(flat), dtype=np.int32) - np.asarray(arr.offsets)[parents].astype(np.int32)
    t = pa.Table.from_struct_array(flat)
    t = t.add_column(0, "seq", pa.array(seq, pa.int32()))
    return t.add_column(0, "execution_id", eids.take(pa.array(parents)))


def to_arrow(executions: list[Mapping[str, Any]], partition: Mapping[str, str]) -> dict[str, pa.Table]:
    """`add_execution` keyword dicts of one configuration -> Arrow tables executions, messages, attacks."""
    ids = [uuid.uuid4().hex for _ in executions]
    rows = [
        {**e, "execution_id": i, "metadata": None if e.get("metadata") is None else json.dumps(e["metadata"])}
        for e, i in zip(executions, ids)
    ]
    eids = pa.array(ids, pa.string())
    tables = {"executions": pa.Table.from_struct_array(pa.array(rows, type=EXECUTION))}
    tables["messages"] = _children(
        [
            [
                m if not isinstance(m.get("content"), list) else {**m, "content": None, "content_parts": m["content"]}
                for m in e.get("messages") or ()
            ]
            for e in executions
        ],
        MESSAGE,
        eids,
    )
    tables["attacks"] = _children(
        [
            [
                a if a.get("metadata") is None else {**a, "metadata": json.dumps(a["metadata"])}
                for a in e.get("attacks") or ()
            ]
            for e in executions
        ],
        ATTACK,
        eids,
    ).drop_columns(["seq"])
    for name, t in tables.items():
        for col in PARTITION_COLUMNS:
            # a constant column: filling an all-null array is ~25x faster than pa.repeat
            t = t.append_column(col, pc.fill_null(pa.nulls(t.num_rows, pa.string()), partition[col]))
        tables[name] = t
    return tables


def write(root: str | Path, tables: Mapping[str, pa.Table]) -> None:
    """One `write_dataset` per table into `<root>/<table>/dataset=.../config_hash=.../part-<uuid>-<i>.parquet`."""
    options = ds.ParquetFileFormat().make_write_options(compression="zstd", compression_level=3)
    token = uuid.uuid4().hex
    for name, t in tables.items():
        if t.num_rows:
            ds.write_dataset(
                t,
                base_dir=f"{root}/{name}",
                format="parquet",
                partitioning=PARTITION_COLUMNS,
                partitioning_flavor="hive",
                existing_data_behavior="overwrite_or_ignore",
                basename_template=f"part-{token}-{{i}}.parquet",
                file_options=options,
            )


def count_rows(root: str | Path, table: str) -> int:
    path = Path(root) / table
    if not path.exists():
        return 0
    return ds.dataset(str(path), format="parquet", partitioning="hive").count_rows()
