"""Publication on S3: every table's Delta log written with delta-rs to the real S3 test server
(`s3_server.py`), its commits made with a conditional put (`If-None-Match: *`), read back by Polars
and by delta-rs' own query engine (DataFusion), and a lost answer to a Delta commit (the fault
proxy, `faultproxy.py`) that never becomes a second commit of the same warehouse version.

delta-rs holds the GIL while it waits for an answer, so the proxy runs in a process of its own
(`procs/faultproxy_process.py`): an in-process proxy thread could never answer it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from conftest import AGENT, DATASET
from deltalake.exceptions import DeltaError
from s3_server import S3Endpoint
from test_s3 import write_runs

import warehouse
from warehouse.ops.publish import auto
from warehouse.ops.publish.delta import open_table, published_version, storage_options, table_uri

pytestmark = [pytest.mark.s3, pytest.mark.subprocess]

PROCS = Path(__file__).resolve().parent / "procs"
#: The PUT of a Delta commit (a version file of some table's log).
COMMIT = re.compile(r"/_delta_log/\d{20}\.json$")
ASR = (
    "select agent, attack, count(*) as n, round(avg(attack_score), 9) as asr, round(avg(benign_score), 9) as utility "
    "from executions group by agent, attack order by agent, attack nulls last"
)


class ProxyProcess:
    """`procs/faultproxy_process.py` in front of the S3 test server."""

    def __init__(self, upstream: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PROCS / "faultproxy_process.py"), upstream],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        self.url = self.proc.stdout.readline().strip()
        assert self.url.startswith("http://127.0.0.1:"), self.url

    def _ask(self, line: str) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        out: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return out

    def reset(self) -> dict[str, Any]:
        return self._ask("reset")

    def drop(self, regex: str, budget: int) -> None:
        self._ask(f"drop {regex} {budget}")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        assert self.proc.wait(timeout=30) == 0


@pytest.fixture
def proxy(s3: S3Endpoint) -> Iterator[ProxyProcess]:
    p = ProxyProcess(s3.url)
    try:
        yield p
    finally:
        p.close()


def delta_options(wh: warehouse.Warehouse) -> dict[str, str]:
    opts = storage_options(wh._engine.store)
    assert opts is not None
    return opts


def delta_uri(wh: warehouse.Warehouse, table: str) -> str:
    return table_uri(wh._engine.store, table)


def polars_table(wh: warehouse.Warehouse, table: str) -> pl.DataFrame:
    return pl.read_delta(delta_uri(wh, table), storage_options=delta_options(wh))


def delta_sql(wh: warehouse.Warehouse, table: str, sql: str) -> list[tuple[Any, ...]]:
    """`sql` over `table`'s Delta table (registered as `t`), run by delta-rs' DataFusion in-process."""
    from deltalake import QueryBuilder

    dt = open_table(delta_uri(wh, table), delta_options(wh))
    assert dt is not None
    result = pa.table(QueryBuilder().register("t", dt).execute(sql).read_all())  # arro3 -> pyarrow
    return [tuple(r.values()) for r in result.to_pylist()]


def assert_delta_answers_like_the_warehouse(wh: warehouse.Warehouse) -> None:
    for t in ("executions", "messages", "attacks", "configs"):
        [(n,)] = wh.sql(f"select count(*) from {t}").fetchall()
        assert n > 0, t
        assert polars_table(wh, t).height == n, t
        assert delta_sql(wh, t, "select count(*) from t") == [(n,)], t
    expected = wh.sql(ASR).fetchall()
    got_polars = (
        polars_table(wh, "executions")
        .group_by("agent", "attack")
        .agg(
            pl.len().alias("n"),
            pl.col("attack_score").mean().round(9).alias("asr"),
            pl.col("benign_score").mean().round(9).alias("utility"),
        )
        .sort("agent", "attack", nulls_last=True)
        .rows()
    )
    assert got_polars == expected
    assert delta_sql(wh, "executions", ASR.replace("from executions", "from t")) == expected
    ids = sorted(r[0] for r in wh.sql("select execution_id from executions").fetchall())
    assert sorted(polars_table(wh, "executions")["execution_id"].to_list()) == ids


def log_versions(s3: S3Endpoint, wh: warehouse.Warehouse, table: str) -> list[int]:
    root = delta_uri(wh, table).removeprefix("s3://")
    names = [p.rsplit("/", 1)[1] for p in s3.fs().ls(f"{root}/_delta_log", detail=False)]
    return sorted(int(n.removesuffix(".json")) for n in names if re.fullmatch(r"\d{20}\.json", n))


def txn_versions(wh: warehouse.Warehouse, table: str, versions: list[int]) -> list[int | None]:
    """The warehouse version each Delta version of `table` carries."""
    out = []
    for v in versions:
        dt = open_table(delta_uri(wh, table), delta_options(wh), version=v)
        assert dt is not None
        out.append(published_version(dt))
    return out


def add_more(wh: warehouse.Warehouse, prefix: str, n: int = 4) -> None:
    with wh.writer(dataset=DATASET, agent=AGENT, run_id=f"more-{prefix}", flush_interval=None) as w:
        for i in range(n):
            w.add_execution(
                execution_id=f"{prefix}-{i}",
                task_id=f"user_task_{i}",
                benign_score=float(i % 2),
                messages=[{"role": "user", "content": f"more {i}"}],
            )


# -- tests -------------------------------------------------------------------------------------------
def test_a_published_s3_warehouse_reads_in_polars_and_datafusion_like_wh_sql_incrementally(
    s3: S3Endpoint, s3_url: str, s3_options: dict
) -> None:
    wh = warehouse.open(s3_url, storage_options=s3_options, create=True)
    write_runs(wh)
    assert storage_options(wh._engine.store) == {
        "aws_access_key_id": s3.key,
        "aws_secret_access_key": s3.secret,
        "aws_endpoint_url": s3.url,
        "aws_allow_http": "true",
        "aws_region": s3.region,
        "conditional_put": "etag",
    }
    first = wh.publish("delta")
    assert first.version == wh.version and first.commits >= 4 and first.derived_bytes == 0
    assert_delta_answers_like_the_warehouse(wh)

    add_more(wh, "x")
    add_more(wh, "y")
    second = wh.publish("delta")
    assert second.tables["executions"].committed and second.tables["executions"].added == 2
    assert not second.tables["sessions"].committed
    assert_delta_answers_like_the_warehouse(wh)

    wh.maintenance.compact()
    third = wh.publish("delta")
    assert third.tables["executions"].committed and not third.tables["executions"].data_change
    assert third.tables["executions"].removed > third.tables["executions"].added >= 1
    assert_delta_answers_like_the_warehouse(wh)
    assert wh.publish("delta").commits == 0
    executions = log_versions(s3, wh, "executions")
    assert executions == [0, 1, 2]
    assert txn_versions(wh, "executions", executions) == [first.version, second.version, third.version]


def test_delta_commits_on_s3_are_conditional_puts(s3: S3Endpoint, s3_url: str, s3_options: dict) -> None:
    """Through a store that answers a PUT with `If-None-Match` 200 and drops it, a Delta commit never
    lands: so delta-rs sent it as a conditional put (an unconditional one would have been stored;
    no unsafe rename is involved)."""
    wh = warehouse.open(s3_url, storage_options=s3_options, create=True)
    write_runs(wh)
    wh.publish("delta", tables="executions")
    add_more(wh, "x")
    p = subprocess.Popen(
        [sys.executable, str(PROCS / "faultproxy_process.py"), s3.url, "ignore"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert p.stdout is not None
        url = p.stdout.readline().strip()
        through = warehouse.open(s3_url, storage_options=s3.options(url))
        # delta-rs believes its commit landed, then finds no such version when it reads it back
        with pytest.raises(DeltaError, match="version 1 is not available"):
            through.publish("delta", tables="executions")
    finally:
        assert p.stdin is not None
        p.stdin.close()
        assert p.wait(timeout=30) == 0
    assert log_versions(s3, wh, "executions") == [0]
    report = wh.publish("delta", tables="executions")  # directly: it lands
    assert report.tables["executions"].committed and log_versions(s3, wh, "executions") == [0, 1]


@pytest.mark.parametrize("delta_version", [0, 1])
def test_a_lost_answer_to_a_delta_commit_never_makes_a_second_commit_of_the_version(
    s3: S3Endpoint, s3_url: str, s3_options: dict, proxy: ProxyProcess, delta_version: int
) -> None:
    wh = warehouse.open(s3_url, storage_options=s3_options, create=True)
    write_runs(wh)
    if delta_version:
        wh.publish("delta")
        add_more(wh, "x")
    through = warehouse.open(s3_url, storage_options=s3.options(proxy.url))
    proxy.drop(rf"/executions/_delta_log/{delta_version:020d}\.json$", 1)
    proxy.reset()
    report = through.publish("delta")
    stats = proxy.reset()
    assert stats["faults"] == {"drop": 1}
    assert report.tables["executions"].warehouse_version == wh.version
    assert report.tables["executions"].committed and report.tables["executions"].added >= 1
    versions = log_versions(s3, wh, "executions")
    assert versions == list(range(delta_version + 1))
    carried = txn_versions(wh, "executions", versions)
    assert carried.count(wh.version) == 1 and carried[-1] == wh.version
    assert_delta_answers_like_the_warehouse(wh)

    again = through.publish("delta")
    assert again.commits == 0
    log = proxy.reset()["log"]
    assert not [p for m, p in log if m == "PUT"], "a re-run wrote something"
    assert log_versions(s3, wh, "executions") == versions


def test_requests_per_publish_through_the_proxy(
    s3: S3Endpoint, s3_url: str, s3_options: dict, proxy: ProxyProcess
) -> None:
    wh = warehouse.open(s3_url, storage_options=s3_options, create=True)
    write_runs(wh)
    through = warehouse.open(s3_url, storage_options=s3.options(proxy.url))
    proxy.reset()
    first = through.publish("delta")
    log = proxy.reset()["log"]
    commits = [p for m, p in log if m == "PUT" and COMMIT.search(p)]
    assert len(commits) == first.commits
    add_more(wh, "x")
    second = through.publish("delta")
    log2 = proxy.reset()["log"]
    assert len([p for m, p in log2 if m == "PUT" and COMMIT.search(p)]) == second.commits
    through.publish("delta")
    log3 = proxy.reset()["log"]
    assert not [p for m, p in log3 if m == "PUT"]


def test_automatic_publication_on_s3_answers_like_wh_sql(s3_url: str, s3_options: dict) -> None:
    wh = warehouse.open(s3_url, create=True, publish=["delta"], storage_options=s3_options)
    write_runs(wh)
    add_more(wh, "x")
    assert wh.wait_for_publication(60)
    publisher = auto.publisher_of(wh._engine)
    # None: no table's publication failed (a delta-rs call holding the GIL while it waits for S3
    # once made them time out after 180 s, the writer's S3 requests frozen behind it)
    assert publisher is not None and publisher.last_error is None and publisher.published >= 4
    assert_delta_answers_like_the_warehouse(wh)
    dt = open_table(delta_uri(wh, "executions"), delta_options(wh))
    assert dt is not None and published_version(dt) == wh.version
