"""The S3-API server the S3 tests talk to, as pytest fixtures.

By default a real moto server process (`python -m moto.server -H 127.0.0.1 -p <free port>`) is
started once per test session and stopped at its end; `moto_atomic/sitecustomize.py` makes it
handle one request at a time, because moto's `If-None-Match: *` check is not atomic across its
request threads (S3's is, and the commit protocol relies on it). Set `WAREHOUSE_TEST_S3_ENDPOINT` to run the
same tests against any S3-compatible endpoint instead (MinIO, AWS, ...); credentials then come from
`WAREHOUSE_TEST_S3_KEY`/`WAREHOUSE_TEST_S3_SECRET` (or the usual `AWS_ACCESS_KEY_ID`/
`AWS_SECRET_ACCESS_KEY`), the region from `WAREHOUSE_TEST_S3_REGION` (default us-east-1), and the
tests use the bucket `WAREHOUSE_TEST_S3_BUCKET` if given, else they create a fresh one.

Every test gets its own prefix (`s3_url`), so tests never see each other's objects.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


@dataclass(frozen=True)
class S3Endpoint:
    url: str
    key: str
    secret: str
    region: str
    bucket: str

    def options(self, endpoint_url: str | None = None) -> dict[str, Any]:
        """storage_options for warehouse.open(); `endpoint_url` overrides the server's (a proxy)."""
        return {
            "endpoint_url": endpoint_url or self.url,
            "key": self.key,
            "secret": self.secret,
            "client_kwargs": {"region_name": self.region},
        }

    def env(self, endpoint_url: str | None = None) -> dict[str, str]:
        """The AWS environment variables a CLI process needs to reach the server."""
        return {
            "AWS_ENDPOINT_URL": endpoint_url or self.url,
            "AWS_ACCESS_KEY_ID": self.key,
            "AWS_SECRET_ACCESS_KEY": self.secret,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def fs(self, endpoint_url: str | None = None):
        """A fresh s3fs filesystem (not shared with the code under test)."""
        import s3fs

        return s3fs.S3FileSystem(skip_instance_cache=True, use_listings_cache=False, **self.options(endpoint_url))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the S3 server exited with code {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"the S3 server did not listen on 127.0.0.1:{port} within {timeout} s")


#: A sitecustomize for the server process only: it makes moto's conditional creates atomic, as
#: they are on S3 (see the module's docstring).
ATOMIC = Path(__file__).resolve().parent / "moto_atomic"


def start_moto(env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """Start `python -m moto.server` on a free loopback port; returns (process, endpoint URL)."""
    port = free_port()
    pythonpath = os.pathsep.join(p for p in (str(ATOMIC), os.environ.get("PYTHONPATH", "")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONPATH": pythonpath, **(env or {})},
    )
    try:
        wait_for_port(port, proc)
    except BaseException:
        proc.kill()
        raise
    return proc, f"http://127.0.0.1:{port}"


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="session")
def s3() -> Iterator[S3Endpoint]:
    """The S3-API server of this test session, with a bucket for the tests."""
    external = os.environ.get("WAREHOUSE_TEST_S3_ENDPOINT")
    proc = None
    if external:
        url = external
        key = os.environ.get("WAREHOUSE_TEST_S3_KEY") or os.environ.get("AWS_ACCESS_KEY_ID", "")
        secret = os.environ.get("WAREHOUSE_TEST_S3_SECRET") or os.environ.get("AWS_SECRET_ACCESS_KEY", "")
    else:
        proc, url = start_moto()
        key, secret = "testing", "testing"
    region = os.environ.get("WAREHOUSE_TEST_S3_REGION", "us-east-1")
    bucket = os.environ.get("WAREHOUSE_TEST_S3_BUCKET") if external else None
    made_bucket = bucket is None
    bucket = bucket or f"warehouse-test-{uuid.uuid4().hex[:12]}"
    ep = S3Endpoint(url, key, secret, region, bucket)
    try:
        if made_bucket:
            where = {} if region == "us-east-1" else {"CreateBucketConfiguration": {"LocationConstraint": region}}
            ep.fs().call_s3("create_bucket", Bucket=bucket, **where)
        yield ep
    finally:
        if proc is not None:
            stop(proc)
        elif made_bucket:
            try:
                ep.fs().rm(bucket, recursive=True)
            except Exception:
                pass


@pytest.fixture
def s3_url(s3: S3Endpoint, request: pytest.FixtureRequest) -> str:
    """A fresh, empty `s3://bucket/prefix` for one test."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]
    return f"s3://{s3.bucket}/{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def s3_options(s3: S3Endpoint) -> dict[str, Any]:
    """storage_options that reach the test server directly."""
    return s3.options()
