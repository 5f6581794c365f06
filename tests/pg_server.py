"""A real PostgreSQL server for the tests, as a session-scoped pytest fixture (`pg_server`).

Debian's `postgresql` package provides the binaries (`.ci/run` installs it): `initdb` creates a
cluster in a fresh temporary directory and `pg_ctl` starts it listening on 127.0.0.1 only, on a free
port, with its socket in that directory; the fixture stops it and removes the directory at the end
of the session. TCP connections authenticate with a password (so that a wrong one can be tested),
the local socket trusts. PostgreSQL refuses to run as root: as root, initdb and pg_ctl run as the
`postgres` user, which then owns the directory. Without the binaries the tests fail, saying so.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

USER = "postgres"
PASSWORD = "s3cr3t-pw"


def find_binary(name: str) -> str | None:
    """`name` from PATH or Debian's /usr/lib/postgresql/<version>/bin (the newest version)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    candidates.sort(key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    return candidates[-1] if candidates else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class PgServer:
    """A running cluster: `url(db)` gives a connection URL (with the password)."""

    host: str
    port: int
    user: str
    password: str
    directory: Path

    def url(self, db: str = "postgres", *, password: str | None = None, port: int | None = None) -> str:
        pw = self.password if password is None else password
        return f"postgresql://{self.user}:{pw}@{self.host}:{port or self.port}/{db}"

    def create_database(self, name: str) -> str:
        """Create database `name` (dropping one of that name first); returns its URL."""
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {}").format(sql.Identifier(name)))
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        return self.url(name)


def _as_postgres(cmd: list[str]) -> list[str]:
    """`cmd` run as the postgres user when we are root (PostgreSQL refuses to run as root)."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser:
        return [runuser, "-u", USER, "--", *cmd]
    return ["su", USER, "-s", "/bin/sh", "-c", " ".join(f"'{c}'" for c in cmd)]


def _run(cmd: list[str], what: str) -> None:
    res = subprocess.run(_as_postgres(cmd), capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {res.returncode}): {res.stderr.strip() or res.stdout.strip()}")


def start_server() -> PgServer:
    """initdb + pg_ctl start in a new temporary directory; fails the test session (not skips) if
    the PostgreSQL binaries are absent."""
    initdb, pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.fail(
            "PostgreSQL server binaries (initdb, pg_ctl) not found on PATH nor in /usr/lib/postgresql/*/bin: "
            "install Debian's postgresql package (apt-get install postgresql; .ci/run does it)",
            pytrace=False,
        )
    # not under pytest's tmp_path: its parents are private to root, and the server runs as postgres
    directory = Path(tempfile.mkdtemp(prefix="warehouse-pg-"))
    if os.geteuid() == 0:
        entry = pwd.getpwnam(USER)
        os.chown(directory, entry.pw_uid, entry.pw_gid)
    pwfile = directory / "pwfile"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        os.chown(pwfile, pwd.getpwnam(USER).pw_uid, -1)
    data = directory / "data"
    _run(
        [
            initdb,
            "-D",
            str(data),
            "-U",
            USER,
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            f"--pwfile={pwfile}",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        ],
        "initdb",
    )
    last_error: Exception | None = None
    for _ in range(3):  # the free port may be taken between our probe and the server's bind
        port = free_port()
        try:
            _run(
                [
                    pg_ctl,
                    "-D",
                    str(data),
                    "-l",
                    str(directory / "server.log"),
                    "-w",
                    "-t",
                    "60",
                    "-o",
                    f"-h 127.0.0.1 -p {port} -k {directory} -c fsync=off -c full_page_writes=off",
                    "start",
                ],
                "pg_ctl start",
            )
            return PgServer("127.0.0.1", port, USER, PASSWORD, directory)
        except RuntimeError as exc:
            last_error = exc
    log = (directory / "server.log").read_text(errors="replace")[-2000:] if (directory / "server.log").exists() else ""
    shutil.rmtree(directory, ignore_errors=True)
    raise RuntimeError(f"PostgreSQL did not start: {last_error}\n{log}")


def stop_server(server: PgServer) -> None:
    """Stop the server (immediate shutdown) and remove its directory."""
    pg_ctl = find_binary("pg_ctl")
    try:
        if pg_ctl:
            _run([pg_ctl, "-D", str(server.directory / "data"), "-m", "immediate", "-w", "stop"], "pg_ctl stop")
    finally:
        shutil.rmtree(server.directory, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server on 127.0.0.1 for the whole session (user postgres, password PASSWORD)."""
    server = start_server()
    try:
        yield server
    finally:
        stop_server(server)
