"""S3 benchmarks, to be run against a loopback S3-API server (e.g. `python -m moto.server`):

- commit latency: one small append (one data file + one manifest commit) through the warehouse,
  against `deltalake.write_deltalake(..., mode="append")` of the same Arrow table to the same
  server with `conditional_put=etag`;
- sync throughput: `warehouse.sync` of a local warehouse of N data files to S3, against
  `s3fs.put(..., recursive=True)` of the same directory.

    python -m benchmarks.s3 [--endpoint http://127.0.0.1:PORT --bucket BUCKET] [--commits 50] [--files 10000] [--out FILE]

Without --endpoint it starts its own moto server process on a free loopback port (as the tests
do) and creates a bucket. Prints one JSON document (and writes it to --out). `deltalake` is
optional; without it that line is skipped.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa

from warehouse.core.schemas import catalog
from warehouse.manifest import writer_info

from .harness import ms, publish


def _options(endpoint: str, key: str, secret: str, region: str) -> dict[str, Any]:
    return {"endpoint_url": endpoint, "key": key, "secret": secret, "client_kwargs": {"region_name": region}}


def _executions(n: int, seed: int) -> pa.Table:
    """`n` rows of the executions table (partition columns included), all else default/null."""
    schema = catalog().table("executions").arrow
    cols = {}
    for f in schema:
        if f.name in ("dataset", "agent", "attack", "config_hash"):
            cols[f.name] = pa.array([{"config_hash": "0000beef"}.get(f.name, "bench")] * n, f.type)
        elif f.name == "execution_id":
            cols[f.name] = pa.array([f"{seed}-{i}" for i in range(n)], f.type)
        elif f.name == "task_id":
            cols[f.name] = pa.array([f"task-{i}" for i in range(n)], f.type)
        elif f.name == "status":
            cols[f.name] = pa.array(["completed"] * n, f.type)
        elif f.name == "revision":
            cols[f.name] = pa.array([0] * n, f.type)
        else:
            cols[f.name] = pa.nulls(n, f.type)
    return pa.table(cols, schema=schema)


def _p50_ms(xs: list[float]) -> float:
    return ms(statistics.median(xs), 2)


def warehouse_commit_latency(
    url: str, storage_options: dict[str, Any], commits: int, rows: int = 100
) -> dict[str, Any]:
    """p50 of (write one data file + commit it), and of the manifest commit alone, in ms."""
    import warehouse
    from warehouse.engine.datafiles import write_data_file

    wh = warehouse.open(url, storage_options=storage_options, create=True)
    partition = {"dataset": "bench", "agent": "bench", "attack": "bench", "config_hash": "0000beef"}
    total, commit_only = [], []
    for i in range(commits):
        table = _executions(rows, i)
        t0 = time.perf_counter()
        f = write_data_file(wh, "executions", partition, table)
        t1 = time.perf_counter()
        wh.engine.commit(operation="append", writer=writer_info("bench"), token=f"bench:{i}", add=[f])
        t2 = time.perf_counter()
        total.append(t2 - t0)
        commit_only.append(t2 - t1)
    return {"append_p50_ms": _p50_ms(total), "commit_p50_ms": _p50_ms(commit_only), "n": commits}


def delta_commit_latency(
    endpoint: str, key: str, secret: str, region: str, uri: str, commits: int, rows: int = 100
) -> dict[str, Any] | None:
    """p50 of `write_deltalake(mode="append")` of the same table, in ms; None without deltalake."""
    try:
        from deltalake import write_deltalake
    except ImportError:
        return None
    opts = {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": key,
        "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_REGION": region,
        "AWS_ALLOW_HTTP": "true",
        "conditional_put": "etag",
    }
    times = []
    for i in range(commits + 1):
        table = _executions(rows, i)
        t0 = time.perf_counter()
        write_deltalake(uri, table, mode="append", storage_options=opts)
        if i:  # the first write creates the table
            times.append(time.perf_counter() - t0)
    return {"append_p50_ms": _p50_ms(times), "n": commits}


def sync_throughput(
    endpoint: str, key: str, secret: str, region: str, bucket: str, files: int, workers: int = 16
) -> dict[str, Any]:
    """Seconds and files/s of `warehouse sync` local -> S3 of `files` small data files, against
    `s3fs.put` of the same directory."""
    import s3fs

    import warehouse
    from warehouse.engine.datafiles import write_data_file

    options = _options(endpoint, key, secret, region)
    with tempfile.TemporaryDirectory() as tmp:
        src = warehouse.open(str(Path(tmp) / "src"), create=True)
        partition = {"dataset": "bench", "agent": "bench", "attack": "bench", "config_hash": "0000beef"}
        table = _executions(10, 0)
        batch = []
        for i in range(files):
            batch.append(write_data_file(src, "executions", partition, table))
            if len(batch) == 1000 or i == files - 1:
                src.engine.commit(operation="append", writer=writer_info("bench"), token=None, add=batch)
                batch = []
        size = sum(f.bytes for f in src.snapshot.files.values())
        run = uuid.uuid4().hex[:8]
        t0 = time.perf_counter()
        result = src.sync_to(f"s3://{bucket}/sync-{run}/wh", storage_options=options, workers=workers)
        sync_s = time.perf_counter() - t0
        fs = s3fs.S3FileSystem(skip_instance_cache=True, **options)
        t0 = time.perf_counter()
        fs.put(str(Path(tmp) / "src") + "/", f"{bucket}/put-{run}/wh", recursive=True)
        put_s = time.perf_counter() - t0
    return {
        "files": result.files,
        "bytes": size,
        "commits": len(result.commits),
        "sync_s": round(sync_s, 2),
        "sync_files_per_s": round(files / sync_s, 1),
        "s3fs_put_s": round(put_s, 2),
        "s3fs_put_files_per_s": round(files / put_s, 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--endpoint", help="an S3-API endpoint (default: start a moto server on loopback)")
    ap.add_argument("--bucket", default=None)
    ap.add_argument("--key", default="testing")
    ap.add_argument("--secret", default="testing")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--commits", type=int, default=50)
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--out", default=None, help="also write the JSON here")
    a = ap.parse_args()
    run = uuid.uuid4().hex[:8]
    server = None
    if a.endpoint is None:
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
        from s3_server import start_moto, stop  # the tests' launcher: same server, same settings

        server, a.endpoint = start_moto()
    try:
        _run(a, run)
    finally:
        if server is not None:
            stop(server)


def _run(a: argparse.Namespace, run: str) -> None:
    if a.bucket is None:
        import s3fs

        a.bucket = f"bench-{run}"
        s3fs.S3FileSystem(skip_instance_cache=True, **_options(a.endpoint, a.key, a.secret, a.region)).call_s3(
            "create_bucket", Bucket=a.bucket
        )
    out = {
        "warehouse_commit": warehouse_commit_latency(
            f"s3://{a.bucket}/commit-{run}", _options(a.endpoint, a.key, a.secret, a.region), a.commits
        ),
        "deltalake_commit": delta_commit_latency(
            a.endpoint, a.key, a.secret, a.region, f"s3://{a.bucket}/delta-{run}", a.commits
        ),
        "sync": sync_throughput(a.endpoint, a.key, a.secret, a.region, a.bucket, a.files) if a.files else None,
    }
    out["endpoint"] = a.endpoint
    publish("benchmarks.s3", out, None, a.out)


if __name__ == "__main__":
    main()
