"""Arrow never reads Parquet out of Python-owned bytes.

Arrow's decode threads drop the last reference to the buffers they read after the read has
returned; a buffer over Python `bytes` then takes the GIL to be freed, and if the interpreter is
exiting at that moment the thread dies inside C++ and the process aborts with
"terminate called without an active exception" (exit -6) after its work is done. CI saw it in
`warehouse export parquet` (about 1 run in 30). `storage.arrow_reader` gives Arrow its own copy.
"""

from __future__ import annotations

import ast
import io
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from warehouse.core.storage import arrow_reader

PACKAGE = Path(__file__).resolve().parent.parent / "warehouse"
READERS = {"ParquetFile", "read_table", "read_metadata", "read_schema", "read_pandas", "ParquetDataset"}
PYTHON_BACKED = {"BytesIO", "BufferReader", "py_buffer", "BufferedReader"}


def test_the_reader_holds_arrow_memory_not_the_python_bytes() -> None:
    sink = io.BytesIO()
    pq.write_table(pa.table({"x": list(range(1000)), "s": [str(i) for i in range(1000)]}), sink, row_group_size=100)
    data = sink.getvalue()
    before = sys.getrefcount(data)
    reader = arrow_reader(data)
    pf = pq.ParquetFile(reader, page_checksum_verification=True)
    table = pf.read()
    assert sys.getrefcount(data) == before  # nothing Arrow holds points back into Python's object
    assert table.column("x").to_pylist() == list(range(1000))
    assert table.column("s").to_pylist()[-1] == "999"
    assert arrow_reader(b"").size() == 0


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return None


def test_no_parquet_read_in_the_package_is_over_python_bytes() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and _name(node.func) in READERS and node.args:
                source = node.args[0]
                if isinstance(source, ast.Call) and _name(source.func) in PYTHON_BACKED:
                    offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}")
    assert offenders == [], f"use storage.arrow_reader(data) for bytes read from the store: {offenders}"
