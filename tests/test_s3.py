"""The warehouse on S3: a real S3-API server process on 127.0.0.1 (see `s3_server.py`), reached through
s3fs exactly as a cluster job would, with a fault-injecting proxy (`faultproxy.py`) in front of it where
a test needs failures. Set WAREHOUSE_TEST_S3_ENDPOINT to run these against another S3-compatible server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from botocore.exceptions import BotoCoreError
from conftest import AGENT, ATTACK, DATASET, build_messages
from faultproxy import FaultProxy
from s3_server import S3Endpoint, free_port, start_moto, stop

import warehouse
from warehouse.core.errors import ConditionalWritesUnsupported
from warehouse.manifest import writer_info

PROCS = Path(__file__).resolve().parent / "procs"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
AGENT_B = {"type": "plain_agent", "config": {"model": "gpt-5"}}


def write_runs(wh: warehouse.Warehouse, n: int = 6, flushes: int = 2) -> list[str]:
    """Deterministic executions of two run configurations (two partitions), in `flushes` flushes."""
    ids = []
    for cfg, agent in (("a", AGENT), ("b", AGENT_B)):
        with wh.writer(
            dataset=DATASET,
            agent=agent,
            attack=ATTACK if cfg == "a" else None,
            run_id=f"job-{cfg}",
            flush_interval=None,
        ) as w:
            for i in range(n):
                ids.append(
                    w.add_execution(
                        execution_id=f"{cfg}-{i:03d}",
                        task_id=f"user_task_{i}",
                        messages=build_messages(turns=1 + i % 2),
                        benign_score=float(i % 2),
                        attack_score=float(i % 3 == 0) if cfg == "a" else None,
                        usage={"input_tokens": 100 + i, "output_tokens": 10 * i, "cost": 0.001 * i},
                        started_at=T0 + timedelta(minutes=i),
                        finished_at=T0 + timedelta(minutes=i, seconds=30),
                        metadata={"difficulty": "easy" if i % 2 else "hard"},
                        model="gpt-5",
                        attacks=[{"vector_id": "v0", "type": "str", "content": f"ignore {i}"}] if cfg == "a" else None,
                    )
                )
                if (i + 1) % max(1, n // flushes) == 0:
                    w.flush()
    return ids


QUERIES = [
    "select dataset, agent, attack, n, n_tasks, utility, asr, utility_low, asr_high from scores order by all",
    "select execution_id, task_id, run_id, status, benign_score, attack_score, input_tokens, cost, started_at, "
    "metadata->>'$.difficulty' from executions order by execution_id",
    "select execution_id, seq, role, content, tool_calls, tool_call_id, name from messages order by execution_id, seq",
    "select execution_id, vector_id, type, content from attacks order by all",
    "select config_hash, dataset_type, agent_type, attack_type from configs order by all",
    "select agent, count(*) from messages where agent = 'plain_agent' group by agent",
]


def answers(wh: warehouse.Warehouse) -> list[Any]:
    out: list[Any] = [wh.sql(q).fetchall() for q in QUERIES]
    out.append(
        wh.scan("executions")
        .select("execution_id", "task_id", "benign_score")
        .sort("execution_id")
        .collect()
        .to_dicts()
    )
    out.append(wh.scan("messages", where={"agent": "plain_agent"}).select(pl.len()).collect().item())
    out.append(wh.execution("a-001")["messages"])
    return out


def commit_names(fs: Any, url: str) -> list[str]:
    root = url.removeprefix("s3://")
    return sorted(p.rsplit("/", 1)[1] for p in fs.ls(f"{root}/_manifest", detail=False) if p.endswith(".json"))


# -- every feature, on S3 as on disk ---------------------------------------------------------------
def test_warehouse_on_s3_answers_every_query_like_the_same_warehouse_on_disk(
    s3_url: str, s3_options: dict, tmp_path: Path
) -> None:
    remote = warehouse.open(s3_url, storage_options=s3_options, create=True)
    local = warehouse.open(str(tmp_path / "wh"), create=True)
    ids = write_runs(remote)
    assert write_runs(local) == ids

    assert remote.version == local.version == 4
    assert answers(remote) == answers(local)
    assert answers(remote)[0], "the comparison must not be vacuous"
    assert [c.operation for c in remote.history()] == ["append"] * 4 + ["create"]

    # Files, rows and partitions alike; sizes within a few bytes (the rows hold the time they were
    # written, and zstd does not compress two different times to the same length every time).
    def summary(wh: warehouse.Warehouse) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "bytes"} for r in wh.table_summary()]

    assert summary(remote) == summary(local)
    for r, loc in zip(remote.table_summary(), local.table_summary()):
        assert abs(r["bytes"] - loc["bytes"]) <= 16 * r["files"], (r, loc)

    # A second process-like handle sees the same; time travel works on S3 too.
    again = warehouse.open(s3_url, storage_options=s3_options)
    assert answers(again) == answers(local)
    old = warehouse.open(s3_url, storage_options=s3_options, version=2)
    assert old.read_only and old.sql("select count(*) from executions").fetchall() == [(6,)]
    assert remote.refresh() == 4


def test_duckdb_and_polars_read_only_the_filtered_partitions_files_on_s3(s3: S3Endpoint, s3_url: str) -> None:
    with FaultProxy(s3.url) as proxy:  # no faults: it only counts what is read
        wh = warehouse.open(s3_url, storage_options=s3.options(proxy.url), create=True)
        write_runs(wh, n=4, flushes=2)
        files_a = {f.path for f in wh.files("messages", {"agent": "tool_agent"})}
        files_b = {f.path for f in wh.files("messages", {"agent": "plain_agent"})}
        assert len(files_a) == len(files_b) == 2
        prefix = "/" + s3_url.removeprefix("s3://") + "/"

        def data_files_read() -> set[str]:
            seen = {path.removeprefix(prefix) for _, path in proxy.reset_stats().log}
            return seen & (files_a | files_b)

        proxy.reset_stats()
        assert wh.sql("select count(*) from messages where agent = 'plain_agent'").fetchall() == [(4 * 5 + 2 * 2,)]
        assert data_files_read() == files_b
        n = wh.scan("messages").filter(pl.col("agent") == "plain_agent").select(pl.len()).collect().item()
        assert n == 24
        proxy.reset_stats()
        assert wh.scan("messages", where={"agent": "plain_agent"}).select(pl.len()).collect().item() == 24
        assert data_files_read() == files_b


def run_cli(calls: list[list[str]], env: dict[str, str]) -> list[subprocess.CompletedProcess]:
    """Run several `warehouse ...` command lines at once (each is a process start-up of ~1 s)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "warehouse", *args],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for args in calls
    ]
    out = []
    for args, p in zip(calls, procs):
        stdout, stderr = p.communicate(timeout=120)
        out.append(subprocess.CompletedProcess(args, p.returncode, stdout, stderr))
    return out


def test_cli_works_on_s3_with_the_aws_environment_variables(s3: S3Endpoint, s3_url: str) -> None:
    env = {**os.environ, **s3.env()}
    env.pop("WAREHOUSE_URL", None)
    [r] = run_cli([["init", "--url", s3_url]], env)
    assert r.returncode == 0 and "version 0" in r.stdout, r.stderr
    wh = warehouse.open(s3_url, storage_options=s3.options())
    write_runs(wh, n=3, flushes=1)
    sql, scores, history, ls, show = run_cli(
        [
            ["sql", "--url", s3_url, "--format", "json", "select count(*) as n from executions"],
            ["scores", "--url", s3_url, "--by", "agent", "--format", "csv"],
            ["history", "--url", s3_url, "--format", "json"],
            ["ls", "--url", s3_url, "--format", "json"],
            ["show", "--url", s3_url, "a-002"],
        ],
        env,
    )
    for r in (sql, scores, history, ls, show):
        assert r.returncode == 0, r.stderr
    assert json.loads(sql.stdout) == [{"n": 6}]
    assert scores.stdout.splitlines()[0].startswith("agent,n,")
    assert [c["operation"] for c in json.loads(history.stdout)] == ["append", "append", "create"]
    assert {t["table"]: t["rows"] for t in json.loads(ls.stdout)}["executions"] == 6
    assert "Summarise my unread emails" in show.stdout


# -- commits: create-if-absent, and refusing stores that cannot do it ------------------------------
def test_racing_commits_on_s3_take_consecutive_versions(s3_url: str, s3_options: dict) -> None:
    wh = warehouse.open(s3_url, storage_options=s3_options, create=True)
    stale = wh.snapshot
    first = wh.log.commit(stale, operation="append", writer=writer_info("w1"), token="w1:1")
    # A writer that did not see version 1 asks for it again: the conditional PUT refuses, and it lands on 2.
    second = wh.log.commit(stale, operation="append", writer=writer_info("w2"), token="w2:1")
    assert (first.version, second.version) == (1, 2)
    # The same token again (a retry whose answer was lost) is recognised, not committed twice.
    again = wh.log.commit(stale, operation="append", writer=writer_info("w1"), token="w1:1")
    assert again.version == 1
    assert [c.token for c in wh.log.commits()] == [None, "w1:1", "w2:1"]


@pytest.mark.parametrize("behaviour", ["ignore", "refuse"])
def test_a_store_without_conditional_writes_is_refused_for_writing(s3: S3Endpoint, s3_url: str, behaviour: str) -> None:
    with FaultProxy(s3.url, conditional=behaviour) as proxy:
        with pytest.raises(ConditionalWritesUnsupported) as exc:
            warehouse.open(s3_url, storage_options=s3.options(proxy.url), create=True)
        message = str(exc.value)
        assert s3_url in message and "conditional writes" in message and "\n" not in message
        assert not s3.fs().exists(s3_url.removeprefix("s3://") + "/_manifest/00000000000000000000.json")

        # An existing warehouse can still be read through such a store, but not written.
        warehouse.open(s3_url, storage_options=s3.options(), create=True)
        wh = warehouse.open(s3_url, storage_options=s3.options(proxy.url))
        assert wh.sql("select count(*) from executions").fetchall() == [(0,)]
        with pytest.raises(ConditionalWritesUnsupported):
            wh.writer(dataset=DATASET, agent=AGENT)
        assert commit_names(s3.fs(), s3_url) == ["00000000000000000000.json"]


def test_lost_answers_during_the_conditional_write_probe_are_retried_not_taken_for_refusals(
    s3: S3Endpoint, s3_url: str
) -> None:
    # The answer to the first create of every probe object is lost: the object was created, and
    # the retry is refused because it exists. That is our own create, not a store without
    # conditional writes.
    first_puts: set[str] = set()

    def first_put_of_a_probe(method: str, path: str) -> bool:
        if method == "PUT" and "/.probe-" in path and path not in first_puts:
            first_puts.add(path)
            return True
        return False

    with FaultProxy(s3.url, rate=1.0, faults=("drop",), only=first_put_of_a_probe) as proxy:
        wh = warehouse.open(s3_url, storage_options=s3.options(proxy.url), create=True)
        assert proxy.stats.faults["drop"] >= 1
        with wh.writer(dataset=DATASET, agent=AGENT, flush_interval=None) as w:
            w.add_execution(task_id="t", benign_score=1.0)
    assert warehouse.open(s3_url, storage_options=s3.options()).sql("select count(*) from executions").fetchall() == [
        (1,)
    ]
    assert not [p for p in s3.fs().find(s3_url.removeprefix("s3://")) if "/.probe-" in p]  # probes cleaned up


def test_forty_percent_of_put_answers_lost_never_reads_as_unsupported_conditional_writes(
    s3: S3Endpoint, s3_url: str
) -> None:
    with FaultProxy(s3.url, rate=0.4, faults=("drop",), seed=3) as proxy:
        for i in range(6):  # six fresh stores, each probed once
            wh = warehouse.open(f"{s3_url}/{i}", storage_options=s3.options(proxy.url), create=True)
            with wh.writer(dataset=DATASET, agent=AGENT, flush_interval=None) as w:
                w.add_execution(task_id="t", benign_score=1.0)
        assert proxy.stats.faults["drop"] >= 6
    for i in range(6):
        reader = warehouse.open(f"{s3_url}/{i}", storage_options=s3.options())
        assert reader.sql("select count(*) from executions").fetchall() == [(1,)]


# -- many processes --------------------------------------------------------------------------------
def run_flush_writers(
    url: str, env: dict[str, str], n_procs: int, flushes: int, per_flush: int, timeout: float = 240
) -> list[str]:
    """Start `procs/flush_writer.py` n_procs times against `url`, release them together, return stdout."""
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(PROCS / "flush_writer.py"),
                url,
                str(p),
                str(flushes),
                str(per_flush),
                "2",
                "ab"[p % 2],
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        )
        for p in procs_range(n_procs)
    ]
    try:
        for p in procs:
            line = p.stdout.readline()
            assert line.strip() == "ready", p.stderr.read()
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        deadline = time.monotonic() + timeout
        outs = []
        for p in procs:
            out, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            assert p.returncode == 0, err
            outs.append(out)
        return outs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def procs_range(n: int) -> range:
    return range(n)


def test_four_processes_fifty_flushes_into_one_s3_warehouse_lose_nothing(
    s3: S3Endpoint, s3_url: str, capsys: pytest.CaptureFixture
) -> None:
    n_procs, flushes, per_flush = 4, 50, 5
    warehouse.open(s3_url, storage_options=s3.options(), create=True)
    started = time.perf_counter()
    outs = run_flush_writers(s3_url, s3.env(), n_procs, flushes, per_flush)
    with capsys.disabled():
        print(f"\n[s3] {n_procs} processes x {flushes} flushes: {time.perf_counter() - started:.1f} s")

    acked = [int(line.split()[2]) for out in outs for line in out.splitlines() if line.startswith("committed")]
    twice = sorted(v for v, n in Counter(acked).items() if n > 1)
    assert sorted(acked) == list(range(1, n_procs * flushes + 1)), f"versions acknowledged twice: {twice}"
    assert commit_names(s3.fs(), s3_url) == [f"{v:020d}.json" for v in range(n_procs * flushes + 1)]
    wh = warehouse.open(s3_url, storage_options=s3.options())
    ids = [r[0] for r in wh.sql("select execution_id from executions_all").fetchall()]
    expected = {f"p{p}-f{f}-{i}" for p in range(n_procs) for f in range(flushes) for i in range(per_flush)}
    assert len(ids) == len(expected) and set(ids) == expected, "every row exactly once"
    assert wh.sql("select count(*) from messages").fetchall() == [(2 * len(expected),)]


# -- faults ----------------------------------------------------------------------------------------
def test_a_campaign_through_a_faulty_network_ends_with_exactly_the_rows_written(
    s3: S3Endpoint, s3_url: str, capsys: pytest.CaptureFixture
) -> None:
    n_procs, flushes, per_flush = 2, 20, 5
    warehouse.open(s3_url, storage_options=s3.options(), create=True)
    with FaultProxy(s3.url, rate=0.15, seed=7) as proxy:
        outs = run_flush_writers(s3_url, s3.env(proxy.url), n_procs, flushes, per_flush)
        # Reading through the same faults: the manifest, and DuckDB's reads of the data files.
        through = warehouse.open(s3_url, storage_options=s3.options(proxy.url))
        counted = through.sql("select count(*), count(distinct execution_id) from executions_all").fetchall()
        assert counted == [(n_procs * flushes * per_flush,) * 2]
        assert through.scan("messages").select(pl.len()).collect().item() == 2 * n_procs * flushes * per_flush
        stats = proxy.stats
    with capsys.disabled():
        print(
            f"\n[s3 faults] {stats.requests} requests, {stats.failed} failed on purpose "
            f"({dict(stats.faults)}), {stats.forwarded} reached the server"
        )
    assert stats.failed >= 20 and set(stats.faults) == {"500", "503", "reset", "drop"}

    acked = sorted(int(line.split()[2]) for out in outs for line in out.splitlines() if line.startswith("committed"))
    assert acked == list(range(1, n_procs * flushes + 1))
    wh = warehouse.open(s3_url, storage_options=s3.options())
    commits = wh.log.commits()
    assert [c.version for c in commits] == list(range(n_procs * flushes + 1))
    tokens = [c.token for c in commits[1:]]
    assert len(set(tokens)) == len(tokens), "a commit whose answer was lost was committed twice"
    ids = Counter(r[0] for r in wh.sql("select execution_id from executions_all").fetchall())
    expected = {f"p{p}-f{f}-{i}" for p in range(n_procs) for f in range(flushes) for i in range(per_flush)}
    assert set(ids) == expected and set(ids.values()) == {1}, "rows lost or duplicated"


def test_a_commit_whose_answer_is_lost_is_recognised_by_its_token(s3: S3Endpoint, s3_url: str) -> None:
    is_commit = lambda method, path: method == "PUT" and "/_manifest/0" in path  # noqa: E731
    warehouse.open(s3_url, storage_options=s3.options(), create=True)
    with FaultProxy(s3.url, rate=1.0, faults=("drop",), only=is_commit, budget=2) as proxy:
        wh = warehouse.open(s3_url, storage_options=s3.options(proxy.url))
        with wh.writer(dataset=DATASET, agent=AGENT, flush_interval=None) as w:
            w.add_execution(task_id="t", benign_score=1.0)
            assert w.flush() == 1
        assert proxy.stats.faults["drop"] == 2
    commits = warehouse.open(s3_url, storage_options=s3.options()).log.commits()
    assert [c.version for c in commits] == [0, 1]
    assert commit_names(s3.fs(), s3_url) == ["00000000000000000000.json", "00000000000000000001.json"]


def test_a_re_added_id_whose_commit_answer_was_lost_supersedes_only_the_earlier_add(
    s3: S3Endpoint, s3_url: str
) -> None:
    """Execution ids are keys on S3 too: a flush re-adding known ids whose commit answer is lost is
    recognised by its token on retry, and its own rows are never taken for earlier adds."""
    warehouse.open(s3_url, storage_options=s3.options(), create=True)
    first = warehouse.open(s3_url, storage_options=s3.options())
    with first.writer(dataset=DATASET, agent=AGENT, flush_interval=None) as w:
        for i in range(5):
            w.add_execution(execution_id=f"job-{i}", task_id=f"t{i}", benign_score=0.0)
    is_commit = lambda method, path: method == "PUT" and "/_manifest/0" in path  # noqa: E731
    with FaultProxy(s3.url, rate=1.0, faults=("drop",), only=is_commit, budget=2) as proxy:
        wh = warehouse.open(s3_url, storage_options=s3.options(proxy.url))
        with wh.writer(dataset=DATASET, agent=AGENT, flush_interval=None) as w:
            for i in range(5):
                w.add_execution(
                    execution_id=f"job-{i}",
                    task_id=f"t{i}",
                    benign_score=1.0,
                    messages=[{"role": "user", "content": f"retry {i}"}],
                )
            assert w.flush() == 2
        assert proxy.stats.faults["drop"] == 2
    wh = warehouse.open(s3_url, storage_options=s3.options())
    assert [c.version for c in wh.log.commits()] == [0, 1, 2]
    assert wh.sql("select count(*), min(benign_score) from executions").fetchall() == [(5, 1.0)]
    assert wh.sql("select count(*) from superseded s join executions e using (execution_id, write_id)").fetchall() == [
        (0,)
    ]
    assert wh.sql("select count(*) from superseded").fetchall() == [(5,)]
    assert sorted(m["content"] for i in range(5) for m in wh.execution(f"job-{i}")["messages"]) == [
        f"retry {i}" for i in range(5)
    ]


def test_data_files_of_a_failed_flush_are_never_visible_and_the_batch_commits_once(s3: S3Endpoint, s3_url: str) -> None:
    warehouse.open(s3_url, storage_options=s3.options(), create=True)
    is_commit = lambda method, path: method == "PUT" and "/_manifest/0" in path  # noqa: E731
    with FaultProxy(s3.url, rate=1.0, faults=("500", "503", "reset"), only=is_commit) as proxy:
        wh = warehouse.open(s3_url, storage_options=s3.options(proxy.url))
        wh.store.retries = 2  # fail fast: this flush is meant to fail
        w = wh.writer(dataset=DATASET, agent=AGENT, flush_interval=None)
        w.add_execution(execution_id="x-1", task_id="t", benign_score=1.0)
        # The store's own error once its retries are spent (an HTTP error as OSError, a reset as
        # botocore's), one that the store classifies as a store failure (retries spent, unreachable).
        with pytest.raises((OSError, BotoCoreError)) as err:
            w.flush()
        assert wh.store.storage_error(err.value) is not None, err.value
        # The data files were written, but no reader can see them.
        reader = warehouse.open(s3_url, storage_options=s3.options())
        assert reader.version == 0 and reader.sql("select count(*) from executions").fetchall() == [(0,)]
        assert w.buffered_rows == 1
        proxy.rate = 0.0  # the network heals: the kept batch commits once, with the next rows
        w.add_execution(execution_id="x-2", task_id="t", benign_score=0.0)
        assert w.close() == 2
    reader.refresh()
    assert sorted(r[0] for r in reader.sql("select execution_id from executions_all").fetchall()) == ["x-1", "x-2"]
    assert [c.version for c in reader.log.commits()] == [0, 1, 2]


# -- bad input ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def strict_endpoint(s3: S3Endpoint) -> Any:
    """An endpoint that checks credentials: the session's own if external, else a moto server with auth on."""
    if os.environ.get("WAREHOUSE_TEST_S3_ENDPOINT"):
        yield s3.url
        return
    proc, url = start_moto({"INITIAL_NO_AUTH_ACTION_COUNT": "0"})
    try:
        yield url
    finally:
        stop(proc)


def bad_inputs(s3: S3Endpoint, strict_endpoint: str, tmp_url: str) -> dict[str, tuple[str, dict, str]]:
    """case -> (url, storage_options, words the one-line error must contain)."""
    return {
        "missing bucket": (f"s3://no-such-bucket-{os.getpid()}/results", s3.options(), "does not exist"),
        "wrong credentials": (
            f"s3://{s3.bucket}/results",
            {**s3.options(strict_endpoint), "key": "AKIAWRONGWRONGWRONG", "secret": "wrong"},
            "access denied",
        ),
        "endpoint down": (f"s3://{s3.bucket}/results", s3.options(f"http://127.0.0.1:{free_port()}"), "cannot connect"),
        "not a warehouse": (tmp_url, s3.options(), "no warehouse manifest"),
    }


@pytest.mark.parametrize("case", ["missing bucket", "wrong credentials", "endpoint down", "not a warehouse"])
def test_bad_s3_locations_fail_with_one_line_naming_the_url(
    s3: S3Endpoint, strict_endpoint: str, s3_url: str, case: str
) -> None:
    s3.fs().pipe_file(s3_url.removeprefix("s3://") + "/notes.txt", b"someone else's files")
    url, options, words = bad_inputs(s3, strict_endpoint, s3_url)[case]
    fs = s3.fs()
    touched = [u.removeprefix("s3://") for u in (url, s3_url) if u.startswith(f"s3://{s3.bucket}/")]
    before = [sorted(fs.find(t)) for t in touched]
    started = time.monotonic()
    with pytest.raises(warehouse.WarehouseError) as exc:
        warehouse.open(url, storage_options=options, create=True)
    assert time.monotonic() - started < 20
    message = str(exc.value)
    assert url in message and words in message and "\n" not in message
    assert [sorted(fs.find(t)) for t in touched] == before, "a failed open must write nothing"


def test_bad_s3_locations_on_the_command_line_print_one_line(s3: S3Endpoint, strict_endpoint: str, s3_url: str) -> None:
    s3.fs().pipe_file(s3_url.removeprefix("s3://") + "/notes.txt", b"someone else's files")
    cases = bad_inputs(s3, strict_endpoint, s3_url)
    envs = [
        {
            **os.environ,
            "AWS_ENDPOINT_URL": opts["endpoint_url"],
            "AWS_ACCESS_KEY_ID": opts["key"],
            "AWS_SECRET_ACCESS_KEY": opts["secret"],
            "AWS_DEFAULT_REGION": s3.region,
        }
        for _, opts, _ in cases.values()
    ]
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "warehouse", "init", "--url", url],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for (url, _, _), env in zip(cases.values(), envs)
    ]
    for (case, (url, _, words)), p in zip(cases.items(), procs):
        _, stderr = p.communicate(timeout=60)
        assert p.returncode == 1, (case, stderr)
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and url in lines[0] and words in lines[0], (case, stderr)
