"""Damage inside Parquet pages: every data file the warehouse writes carries page checksums,
`doctor --deep` reads every page and finds every bit flip that changes what a query returns (or
makes it fail), `--repair` takes the damaged file out of the snapshot in one repair commit, and no
rewrite (compaction, expire, export) turns a damaged file into a sound-looking one.

The damage is real: single bits flipped in the bytes of a real file's column chunks, whose offsets
come from the file's own Parquet metadata; the file keeps its size and footer, so that every check
but a page read passes.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

import warehouse
from warehouse.manifest import DataFile

T0 = datetime(2025, 3, 1, tzinfo=UTC)


def _campaign(wh: warehouse.Warehouse, n: int = 200, prefix: str = "run0-") -> None:
    """One flush: a data file each of executions, messages and attacks (plus configs), the same
    bytes every time (fixed ids and times), so that a flip is reproducible by its position."""
    with wh.writer(
        dataset={"type": "agentdojo", "config": {}},
        agent={"type": "plain", "config": {}},
        attack={"type": "inj", "config": {}},
        flush_interval=None,
    ) as w:
        for i in range(n):
            w.add_execution(
                task_id=f"user_task_{i % 20}",
                benign_score=float(i % 2),
                attack_score=0.0,
                execution_id=f"{prefix}{i:05d}",
                started_at=T0 + timedelta(seconds=i),
                finished_at=T0 + timedelta(seconds=i + 1 + i % 7),
                usage={"input_tokens": 100 + i, "output_tokens": 7, "cost": 0.001 * i},
                messages=[
                    {"role": "user", "content": f"task {i}"},
                    {"role": "assistant", "content": f"done {i} " * (i % 5)},
                ],
                attacks=[{"vector_id": "v0", "type": "inj", "content": f"ignore {i}"}],
            )


def _chunks(path: str) -> list[tuple[int, int]]:
    """[start, end) of every column chunk's pages (dictionary page included), from the footer."""
    md = pq.read_metadata(path)
    out = []
    for rg in range(md.num_row_groups):
        for c in range(md.num_columns):
            cc = md.row_group(rg).column(c)
            start = cc.dictionary_page_offset if cc.has_dictionary_page else cc.data_page_offset
            out.append((start, start + cc.total_compressed_size))
    return out


def _flip(path: str, pos: int, bit: int) -> bytes:
    """Flip one bit of the file in place (same size, same footer); returns the original bytes."""
    data = Path(path).read_bytes()
    damaged = bytearray(data)
    damaged[pos] ^= 1 << bit
    Path(path).write_bytes(bytes(damaged))
    return data


def _answers(reader: warehouse.Warehouse, table: str, path: str) -> tuple[str, str]:
    """What the SQL views (DuckDB) and a plain pyarrow read of the file return, or that they failed.
    (Not Polars: on some damaged pages it aborts the whole process, e.g. "memory allocation of
    2305843009213693928 bytes failed"; its reads check no checksums either.)"""
    try:
        duck = reader.sql(f"select * from {table} order by all").fetchall()
    except Exception as exc:  # a failed query is one of the outcomes being counted
        duck = f"error: {type(exc).__name__}"
    try:
        arrow = pq.read_table(path).to_pylist()
    except Exception as exc:
        arrow = f"error: {type(exc).__name__}"
    return json.dumps(duck, default=str), json.dumps(arrow, default=str)


@pytest.mark.slow
def test_deep_doctor_finds_every_bit_flip_that_changes_what_queries_return(root, wh):
    _campaign(wh)
    url = str(root)
    outcomes = {"changed or failed": 0, "found": 0, "flips": 0}
    rng = random.Random(20250301)
    for table in ("executions", "messages", "attacks"):
        [f] = wh.files(table)
        path = wh.store.full(f.path)
        chunks = _chunks(path)
        reader = warehouse.open(url)  # its views read the file anew at every query
        sound = _answers(reader, table, path)
        assert warehouse.open(url).doctor(deep=True).healthy
        for _ in range(40):
            lo, hi = rng.choice(chunks)
            pos, bit = rng.randrange(lo, hi), rng.randrange(8)
            original = _flip(path, pos, bit)
            try:
                report = warehouse.open(url).doctor(deep=True)
                found = [x for x in report.problems if x.kind == "damaged-file"]
                assert all(x.path == f.path for x in found)
                outcomes["flips"] += 1
                outcomes["found"] += bool(found)
                if _answers(reader, table, path) != sound:
                    outcomes["changed or failed"] += 1
                    assert found, (
                        f"{table}: the bit {bit} of byte {pos} changed query answers, and doctor --deep missed it"
                    )
                    assert "--deep --repair" in found[0].fix
            finally:
                Path(path).write_bytes(original)
    # The check has teeth: flips did change answers, and the damage was found far more often still
    # (a flip in a page's checksummed bytes is damage even where the decoded values happen to survive).
    assert outcomes["changed or failed"] >= 10 and outcomes["found"] >= outcomes["changed or failed"]
    assert warehouse.open(url).doctor(deep=True).healthy


def test_a_flip_in_page_data_passes_the_ordinary_doctor_and_fails_the_deep_one(root, wh):
    _campaign(wh)
    [f] = wh.files("executions")
    path = wh.store.full(f.path)
    _, end = _chunks(path)[-1]
    _flip(path, end - 1, 0)  # the last byte of the last column chunk: page data, never a header
    assert wh.doctor().healthy  # size, footer and row count are all intact
    report = wh.doctor(deep=True)
    assert [(x.kind, x.path) for x in report.problems] == [("damaged-file", f.path)]
    assert "CRC" in report.problems[0].message and report.to_json()["deep"] is True


def test_deep_repair_takes_the_damaged_file_out_of_the_snapshot_in_one_repair_commit(root, wh):
    _campaign(wh, n=50)
    [f] = wh.files("messages")
    path = wh.store.full(f.path)
    _, end = _chunks(path)[0]
    _flip(path, end - 1, 3)
    before = wh.version
    report = wh.doctor(deep=True, repair=True)
    assert report.healthy and report.repair_version == before + 1
    assert [(x.kind, x.path, x.repaired) for x in report.findings if x.severity == "error"] == [
        ("damaged-file", f.path, True)
    ]
    wh.refresh()
    assert wh.history(limit=1)[0].operation == "repair" and f.path not in wh.snapshot.files
    assert wh.sql("select count(*) from messages").fetchall() == [(0,)]  # its rows left every view
    assert wh.sql("select count(*) from executions").fetchall() == [(50,)]  # nothing else did
    assert warehouse.open(str(root)).doctor(deep=True).healthy


def test_cli_doctor_deep_reports_the_damaged_file_and_repairs_it(root, wh):
    _campaign(wh, n=30)
    [f] = wh.files("attacks")
    path = wh.store.full(f.path)
    _, end = _chunks(path)[-1]
    _flip(path, end - 1, 5)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "warehouse", "doctor", "--url", str(root), *args],
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "COLUMNS": "400"},
        )

    assert run().returncode == 0
    res = run("--deep", "--format", "json")
    assert res.returncode == 1
    doc = json.loads(res.stdout)
    assert doc["deep"] is True and [(x["kind"], x["path"]) for x in doc["findings"] if x["severity"] == "error"] == [
        ("damaged-file", f.path)
    ]
    res = run("--deep")
    assert res.returncode == 1 and "damaged-file" in res.stdout and "warehouse doctor --deep --repair" in res.stdout
    res = run("--deep", "--repair")
    assert res.returncode == 0, res.stdout + res.stderr
    assert run("--deep").returncode == 0


def _has_page_checksums(path: str) -> bool:
    """Flip the last byte of each column chunk (page data) in a copy: a file with page checksums
    fails pyarrow's verified read with a CRC error for every one."""
    data = Path(path).read_bytes()
    probe = Path(path).with_name(".probe.parquet")
    try:
        for _, end in _chunks(path):
            damaged = bytearray(data)
            damaged[end - 1] ^= 0x10
            probe.write_bytes(bytes(damaged))
            try:
                pq.ParquetFile(str(probe), page_checksum_verification=True).read()
                return False
            except OSError as exc:
                if "CRC" not in str(exc):
                    return False
        return True
    finally:
        probe.unlink(missing_ok=True)


@pytest.mark.slow
def test_every_parquet_file_the_warehouse_writes_has_page_checksums(root, wh, tmp_path):
    _campaign(wh, n=40)
    _campaign(wh, n=40, prefix="run1-")
    written: dict[str, list[DataFile]] = {"writer": list(wh.snapshot.files.values())}
    wh.compact(table="messages")
    written["compaction"] = [f for f in wh.files("messages") if f.path not in {g.path for g in written["writer"]}]
    with wh.writer(
        dataset={"type": "agentdojo", "config": {}},
        agent={"type": "plain", "config": {}},
        attack={"type": "inj", "config": {}},
        flush_interval=None,
    ) as w:
        ex = w.start_execution("live_task")
        ex.log("info", "a log line")
        ex.finish(benign_score=1.0)
    written["live writer"] = [f for f in wh.snapshot.files.values() if f.table in ("executions_live", "events")]
    old = set(wh.snapshot.files)
    # Executions finished before T0 + 19 s go: files holding some of them are rewritten without them.
    wh.expire(timedelta(seconds=1), tables=["executions"], now=T0 + timedelta(seconds=20))
    written["expire"] = [f for p, f in wh.snapshot.files.items() if p not in old]
    exported = tmp_path / "export"
    wh.export("parquet", str(exported))
    copied = warehouse.open(str(tmp_path / "copy"), create=True)
    wh.sync_to(copied)
    checks = {kind: [_has_page_checksums(wh.store.full(f.path)) for f in files] for kind, files in written.items()}
    checks["export parquet"] = [_has_page_checksums(str(p)) for p in exported.rglob("*.parquet")]
    checks["sync"] = [_has_page_checksums(copied.store.full(p)) for p in copied.snapshot.files]
    assert all(checks.values()) and all(all(v) for v in checks.values()), checks
    assert len(checks["expire"]) >= 3  # executions, messages and attacks rewritten


def test_no_rewrite_makes_a_damaged_file_look_sound(root, wh, tmp_path):
    _campaign(wh, n=40)
    _campaign(wh, n=40, prefix="run1-")
    damaged = sorted(wh.files("executions"), key=lambda f: f.path)[0]
    path = wh.store.full(damaged.path)
    _, end = _chunks(path)[-1]
    _flip(path, end - 1, 2)
    version = wh.version
    with pytest.raises(warehouse.CorruptDataFile, match=damaged.path):
        wh.compact(table="executions")
    with pytest.raises(warehouse.CorruptDataFile, match=damaged.path):
        wh.expire(timedelta(seconds=1), tables=["executions"], now=T0 + timedelta(seconds=20))  # a rewrite
    with pytest.raises(warehouse.CorruptDataFile, match=damaged.path):
        wh.export("parquet", str(tmp_path / "export"))
    wh.refresh()
    assert wh.version == version and damaged.path in wh.snapshot.files  # nothing was committed
    assert wh.doctor(deep=True, repair=True).healthy
    assert wh.compact(table="executions").conflicts == []
    assert wh.sql("select count(*) from executions").fetchall() == [(40,)]


def test_deep_doctor_and_compaction_find_a_damaged_page_on_s3(s3_url, s3_options, tmp_path):
    """The same on a real S3-API server: the damaged object is found by `doctor --deep` (pyarrow
    and DuckDB reading it through the store), refused by compaction, and removed by the repair."""
    wh = warehouse.open(s3_url, create=True, storage_options=s3_options)
    _campaign(wh, n=30)
    _campaign(wh, n=30, prefix="run1-")
    damaged = sorted(wh.files("executions"), key=lambda f: f.path)[0]
    local = tmp_path / "file.parquet"
    local.write_bytes(wh.store.read_bytes(damaged.path))
    _, end = _chunks(str(local))[-1]
    _flip(str(local), end - 1, 4)
    wh.store.write_bytes(damaged.path, local.read_bytes())  # same size, same footer
    assert wh.doctor().healthy
    with pytest.raises(warehouse.CorruptDataFile, match=damaged.path):
        wh.compact(table="executions")
    report = wh.doctor(deep=True, repair=True)
    assert [(x.kind, x.path, x.repaired) for x in report.findings if x.severity == "error"] == [
        ("damaged-file", damaged.path, True)
    ]
    assert warehouse.open(s3_url, storage_options=s3_options).doctor(deep=True).healthy
    assert wh.sql("select count(*) from executions").fetchall() == [(30,)]
