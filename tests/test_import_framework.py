"""The import machinery every importer shares (warehouse/importers/base.py), driven by a minimal
importer of one-JSON-object-per-line files: idempotence, incremental imports, per-source failures
that store nothing of the bad source, --strict, one commit per batch, legacy config hashes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import warehouse
from warehouse.core.errors import ImportFailed, WarehouseError
from warehouse.interop.importers import base
from warehouse.manifest import commit_name


class LinesImporter(base.FileImporter):
    """Each line of a *.jsonl file: one execution {task, dataset, agent, score}."""

    kind = "legacy"  # reuses a real kind's ledger rows; the importer object is passed directly
    patterns = ("**/*.jsonl",)

    def read(self, source, data, out):
        for i, line in enumerate(data.decode("utf-8").splitlines()):
            r = json.loads(line)
            w = out.writer(
                {"type": r["dataset"], "config": {}}, {"type": r["agent"], "config": {}}, config_hash=r.get("hash")
            )
            out.execution(
                w,
                task_id=r["task"],
                benign_score=r["score"],
                execution_id=out.stable_id(source.key, i),
                messages=[{"role": "user", "content": r["task"]}],
            )


def _file(root: Path, name: str, rows: list[dict]) -> Path:
    p = root / name
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return p


def _rows(n: int, agent: str = "plain", **extra) -> list[dict]:
    return [{"task": f"t{i}", "dataset": "ds", "agent": agent, "score": float(i % 2), **extra} for i in range(n)]


@pytest.fixture()
def wh(tmp_path):
    return warehouse.open(str(tmp_path / "wh"), create=True)


@pytest.mark.slow
def test_reimport_adds_nothing_and_new_files_only_are_read(wh, tmp_path):
    src = tmp_path / "src"
    _file(src, "a.jsonl", _rows(3))
    _file(src, "sub/b.jsonl", _rows(2, agent="react"))
    r1 = base.run_import(wh, LinesImporter(), src)
    assert (r1.sources, r1.imported, r1.skipped, r1.failed) == (2, 2, 0, [])
    assert r1.records["executions"] == 5 and r1.records["messages"] == 5
    assert len(r1.versions) == 1  # one batch, one commit
    r2 = base.run_import(wh, LinesImporter(), src)
    assert (r2.imported, r2.skipped, r2.versions) == (0, 2, [])
    _file(src, "c.jsonl", _rows(4))
    r3 = base.run_import(wh, LinesImporter(), src)
    assert (r3.imported, r3.skipped) == (1, 2)
    assert wh.sql("select count(*) from executions").fetchall()[0][0] == 9
    ledger = wh.sql("select source, records from imports order by source").fetchall()
    assert ledger == [("a.jsonl", 6), ("c.jsonl", 8), ("sub/b.jsonl", 4)]  # executions + messages


def test_a_copy_of_the_files_elsewhere_is_recognised_by_content(wh, tmp_path):
    _file(tmp_path / "one", "a.jsonl", _rows(3))
    _file(tmp_path / "two" / "moved", "renamed.jsonl", _rows(3))
    base.run_import(wh, LinesImporter(), tmp_path / "one")
    r = base.run_import(wh, LinesImporter(), tmp_path / "two")
    assert (r.imported, r.skipped) == (0, 1)


def test_a_bad_source_is_reported_with_its_path_and_stores_nothing(wh, tmp_path):
    src = tmp_path / "src"
    _file(src, "a.jsonl", _rows(2))
    bad = _file(src, "b.jsonl", _rows(2) + [{"task": "t9", "dataset": "ds", "agent": "plain", "score": float("nan")}])
    (src / "c.jsonl").write_text('{"task": "x", "dataset": "ds"\n')  # truncated JSON
    r = base.run_import(wh, LinesImporter(), src)
    assert r.imported == 1 and len(r.failed) == 2
    reasons = {f.source: f.reason for f in r.failed}
    assert "benign_score" in reasons[str(bad)]  # the field that failed validation
    assert "JSONDecodeError" in reasons[str(src / "c.jsonl")]
    # nothing of b.jsonl (its first two rows were valid) is stored, nor in the ledger
    assert wh.sql("select count(*) from executions").fetchall()[0][0] == 2
    assert [s for (s,) in wh.sql("select source from imports").fetchall()] == ["a.jsonl"]
    # fixed, the bad file imports on the next run
    _file(src, "b.jsonl", _rows(3))
    r2 = base.run_import(wh, LinesImporter(), src)
    assert r2.imported == 1 and r2.changed == [] and len(r2.failed) == 1


def test_strict_stops_at_the_first_bad_source_keeping_what_came_before(wh, tmp_path):
    src = tmp_path / "src"
    _file(src, "a.jsonl", _rows(2))
    (src / "b.jsonl").write_text("not json\n")
    _file(src, "c.jsonl", _rows(2))
    with pytest.raises(ImportFailed, match=r"b\.jsonl: JSONDecodeError"):
        base.run_import(wh, LinesImporter(), src, strict=True)
    assert [s for (s,) in wh.sql("select source from imports").fetchall()] == ["a.jsonl"]


def test_batches_commit_separately_and_a_changed_file_is_reported(wh, tmp_path):
    src = tmp_path / "src"
    for i in range(5):
        _file(src, f"f{i}.jsonl", _rows(1 + i))
    r = base.run_import(wh, LinesImporter(), src, batch_sources=2)
    assert len(r.versions) == 3 and r.imported == 5
    _file(src, "f0.jsonl", _rows(7))
    r2 = base.run_import(wh, LinesImporter(), src)
    assert r2.changed == ["f0.jsonl"] and r2.imported == 1


def test_a_given_config_hash_is_kept_and_marked_legacy(wh, tmp_path):
    src = tmp_path / "src"
    _file(src, "a.jsonl", _rows(2, hash="a1b2c3d4"))
    base.run_import(wh, LinesImporter(), src)
    assert wh.sql("select distinct config_hash from executions").fetchall() == [("a1b2c3d4",)]
    assert wh.sql("select config_hash, hash_scheme from configs").fetchall() == [("a1b2c3d4", "legacy")]


def test_unknown_kind_and_missing_path_are_clear_errors(wh, tmp_path):
    with pytest.raises(WarehouseError, match=r"unknown import kind 'csv'; choose from legacy"):
        wh.import_("csv", tmp_path)
    with pytest.raises(ImportFailed, match=r"nope: no such file or directory"):
        base.run_import(wh, LinesImporter(), tmp_path / "nope")
    assert wh.version == 0


def test_a_config_hash_escaping_its_directory_is_refused(wh, tmp_path):
    src = tmp_path / "src"
    _file(src, "a.jsonl", _rows(1, hash="../../etc"))
    r = base.run_import(wh, LinesImporter(), src)
    assert r.imported == 0 and len(r.failed) == 1
    assert wh.version == 0


class MeddlingImporter(LinesImporter):
    """While reading its second source, another import of the same files (another handle on the
    warehouse, as another process would be) runs to completion."""

    def __init__(self, url: str, root: Path) -> None:
        self.url, self.root, self.reads = url, root, 0

    def read(self, source, data, out):
        self.reads += 1
        if self.reads == 2:
            other = base.run_import(warehouse.open(self.url), LinesImporter(), self.root)
            assert other.imported == 3
        super().read(source, data, out)


def test_two_imports_of_the_same_files_at_once_never_store_a_source_twice(wh, tmp_path):
    src = tmp_path / "src"
    for i in range(3):
        _file(src, f"f{i}.jsonl", _rows(2 + i))
    with pytest.raises(ImportFailed, match=r"another legacy import committed 3 of the 3 sources of this batch"):
        base.run_import(wh, MeddlingImporter(wh.url, src), src)
    assert wh.refresh() == 1  # the other import's commit only
    assert wh.sql("select count(*), count(distinct execution_id) from executions").fetchall() == [(9, 9)]
    again = base.run_import(wh, LinesImporter(), src)
    assert (again.imported, again.skipped) == (0, 3)


def test_a_stale_handle_sees_what_another_import_committed(wh, tmp_path):
    src = tmp_path / "src"
    _file(src, "a.jsonl", _rows(3))
    stale = warehouse.open(wh.url)
    base.run_import(wh, LinesImporter(), src)
    r = base.run_import(stale, LinesImporter(), src)
    assert (r.imported, r.skipped) == (0, 1)


def test_an_import_landing_between_the_check_and_the_commit_is_caught_by_the_commit(wh, tmp_path, monkeypatch):
    """The other import commits right after this one's ledger check (the narrowest race): the
    manifest commit itself finds the other commit's ledger rows and refuses to commit."""
    src = tmp_path / "src"
    for i in range(3):
        _file(src, f"f{i}.jsonl", _rows(2 + i))
    put_if_absent = wh.store.put_if_absent
    raced = []

    def race_then_put(rel: str, data: bytes) -> bool:
        # This import's commit is about to be created: the other import (its own handle and store)
        # commits the same sources first, so the version this commit takes is already there.
        if not raced and rel == commit_name(wh.version + 1):
            raced.append(rel)
            assert base.run_import(warehouse.open(wh.url), LinesImporter(), src).imported == 3
        return put_if_absent(rel, data)

    monkeypatch.setattr(wh.store, "put_if_absent", race_then_put)
    with pytest.raises(ImportFailed, match=r"another legacy import committed 3 of the 3 sources of this batch"):
        base.run_import(wh, LinesImporter(), src)
    assert raced == [commit_name(1)]
    fresh = warehouse.open(wh.url)
    assert fresh.version == 1
    assert fresh.sql("select count(*), count(distinct execution_id) from executions").fetchall() == [(9, 9)]
