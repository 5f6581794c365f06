"""Every Python reading path that docs/delta-readers.md shows for a published table exits cleanly: each
snippet of that page runs as 10 separate processes, each exiting 0 with nothing on stderr and the row
count of the warehouse's view of the same name (at the latest version, or at Delta version 0).

The page's snippets are the ```python blocks that start with `# reader: <name>`; they read
`results/executions`, so they run here from a directory whose `results` is a published warehouse.
The reading path they replace (deltalake's default pyarrow filesystem) aborts at interpreter shutdown
in some runs and so cannot be asserted either way by a test of 10 runs; the page gives its measured rates.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pyarrow.fs as pafs
import pytest
from deltalake import DeltaTable

import warehouse

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

PAGE = Path(__file__).resolve().parent.parent / "docs" / "delta-readers.md"
RUNS = 10
# Two cores: more parallel interpreters only queue.
POOL = 2


def reader_snippets() -> dict[str, str]:
    """The page's reading snippets by name (the text after `# reader: ` on their first line)."""
    blocks = re.findall(r"```python\n(# reader: ([^\n]+)\n.*?)```", PAGE.read_text(), flags=re.S)
    return {name: code for code, name in blocks}


SNIPPETS = reader_snippets()


def _publish(root: Path) -> None:
    """Bring the Delta logs of every table at `root` up to the warehouse's current version."""
    warehouse.open(str(root)).publish("delta")


def _write(wh: warehouse.Warehouse, first: int, n: int) -> None:
    for agent in ("a1", "a2"):
        for attack in (None, "k1"):
            with wh.writer(dataset="d1", agent=agent, attack=attack) as w:
                for i in range(first, first + n):
                    w.add_execution(
                        task_id=f"t{i}",
                        benign_score=float(i % 2),
                        attack_score=float(i % 3 == 0),
                        messages=[{"role": "user", "content": f"hi {i}"}, {"role": "assistant", "content": "ok"}],
                        metadata={"m": i % 5},
                    )


def _count(wh: warehouse.Warehouse) -> int:
    wh.refresh()
    [(n,)] = wh.sql("select count(*) from executions").fetchall()
    return int(n)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, int]]:
    """A directory whose `results` is a warehouse published twice (Delta versions 0 and 1), and the
    warehouse's `executions` count at each Delta version."""
    home = tmp_path_factory.mktemp("readers")
    wh = warehouse.open(str(home / "results"), create=True)
    _write(wh, 0, 30)
    counts = {"version 0": _count(wh)}
    _publish(home / "results")
    _write(wh, 30, 20)
    counts["latest"] = _count(wh)
    _publish(home / "results")
    assert DeltaTable(str(home / "results" / "executions")).version() == 1
    assert counts["version 0"] < counts["latest"]
    return home, counts


def test_the_page_shows_every_reading_path() -> None:
    """A snippet renamed or dropped from the page would silently stop being run."""
    assert set(SNIPPETS) == {
        "polars.scan_delta",
        "polars.read_delta",
        "polars.scan_delta at version 0",
        "datafusion",
        "deltalake.QueryBuilder",
        "deltalake.to_pyarrow_table with a pyarrow filesystem",
        "deltalake.to_pyarrow_table with a pyarrow filesystem at version 0",
        "duckdb over to_pyarrow_dataset",
    }


def _run(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name", sorted(SNIPPETS))
def test_reader_process_exits_cleanly_with_the_warehouse_count(
    published: tuple[Path, dict[str, int]], name: str
) -> None:
    home, counts = published
    expected = counts["version 0" if name.endswith("version 0") else "latest"]
    with ThreadPoolExecutor(POOL) as pool:
        runs = list(pool.map(lambda _: _run(SNIPPETS[name], home), range(RUNS)))
    outcomes = [(r.returncode, r.stdout.strip(), r.stderr.strip()) for r in runs]
    assert outcomes == [(0, str(expected), "")] * RUNS, outcomes


def test_a_pyarrow_filesystem_reads_the_same_table_as_polars(published: tuple[Path, dict[str, int]]) -> None:
    """The documented workaround changes only who opens the files, not the rows or their partition values.
    (Compared with Polars' reader: the default pyarrow filesystem would risk aborting pytest at exit.)"""
    home, _ = published
    uri = os.path.abspath(home / "results" / "executions")
    raw, root = pafs.FileSystem.from_uri(uri)
    ours = pl.from_arrow(DeltaTable(uri).to_pyarrow_table(filesystem=pafs.SubTreeFileSystem(root, raw)))
    theirs = pl.read_delta(uri)
    assert isinstance(ours, pl.DataFrame)
    assert ours.sort("execution_id").equals(theirs.sort("execution_id"))
    assert theirs.height > 0 and set(theirs["agent"]) == {"a1", "a2"}
