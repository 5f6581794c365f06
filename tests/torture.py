"""Crash torture: writer and maintenance processes killed with `kill -9` at random moments.

    python tests/torture.py [--kills 100] [--seed 1] [--s3] [--workdir DIR]     (`make torture`)

Writers (tests/procs/torture_worker.py) flush batches of executions whose ids name their batch and
its size, and acknowledge each batch once `flush()` has returned; compaction, vacuum, manifest
checkpoint and sync processes run beside them. The harness kills a random process at a random
moment, restarts it (as a new writer, so ids never repeat), and after the last kill checks:

- the warehouse opens, and so does the sync target;
- every acknowledged batch is present exactly once; no batch is partly visible (a batch's rows are
  all there or none); no execution appears twice; every execution has its 2 messages;
- doctor reports nothing but orphans (left by killed writers), which vacuum then removes.

The short-window case (`run(..., short_window=4)`, `--short-window 4`) runs four writers and
compaction beside a vacuum at the shortest orphan window allowed, with the warehouse's time
constants scaled down in every process (the minimum window to that many seconds, the commit
deadline to half of it). Writers and compaction stall before some commits, holding their files in
flight, and are let go only once the vacuum has deleted one of those files; the commit must then
refuse them (StaleDataFile) and the writer write them again: a commit never names a deleted file,
and nothing acknowledged is lost.

The publication case (`run(..., roles=PUBLICATION_ROLES)`, `--publication`): writers of a
warehouse opened with `publish=["delta"]` (each commit published in the background), processes
calling `wh.publish("delta")` in a loop, and compaction, all killed at random moments. Afterwards,
before anything is vacuumed, every Delta version of every table opens and reads with Polars
(`read_delta(version=)`), names exactly the files that the warehouse version its `warehouse`
transaction records should name (`delta.target`, computed without writing), and no transaction
goes back from one Delta version to the next; then one `wh.publish` brings every log to the
latest version.

`run()` is what tests/test_torture.py calls with a smaller number of kills.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "procs" / "torture_worker.py"
sys.path.insert(0, str(REPO))

import warehouse  # noqa: E402

#: Every role the harness can run, with how many processes of it.
ROLES = {"writer": 3, "compact": 1, "vacuum": 1, "checkpoint": 1, "sync": 1}
#: The short-window case: a vacuum at the minimum window beside four writers and compaction.
SHORT_WINDOW_ROLES = {"writer": 4, "compact": 1, "vacuum-short": 1, "checkpoint": 1}
#: The publication case: publishing writers, manual publishers and compaction (no vacuum: every Delta
#: version must stay readable for the checks).
PUBLICATION_ROLES = {"writer-publish": 2, "publish": 2, "compact": 1}


@dataclass
class Worker:
    role: str
    tag: str
    proc: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None
    ready: threading.Event = field(default_factory=threading.Event)  # set when it is at work, or has died
    at_work: bool = False  # it said `ready` (else `ready` was set because its output ended: it died first)

    def stop(self) -> None:
        """Kill -9 a worker at work; one that died before getting to work is only waited for, so
        that its own exit status (not the kill's) is what the checks see."""
        if not self.ready.wait(120):
            raise RuntimeError(f"{self.tag} ({self.role}) never got ready")
        if self.at_work:
            self.proc.kill()
        self.proc.wait()


@dataclass
class Summary:
    kills: int = 0
    kills_by_role: Counter = field(default_factory=Counter)
    acknowledged_batches: int = 0
    rows_checked: int = 0
    lost: int = 0
    duplicated: int = 0
    partial_batches: int = 0
    maintenance_ops: Counter = field(default_factory=Counter)
    orphans_found: int = 0
    stalls: int = 0  # commits held in flight (short-window case)
    stalls_taken_by_vacuum: int = 0  # of those, whose files a vacuum deleted before they went on
    stale_refused: int = 0  # commits that refused files older than the deadline (then written again)
    doctor_problems: list[str] = field(default_factory=list)
    sync_target_rows: int = 0
    delta_versions_checked: int = 0  # publication case: Delta versions opened, read and compared
    delta_rows_read: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicated or self.partial_batches or self.doctor_problems)

    def table(self) -> str:
        rows = [
            ("kills", f"{self.kills} ({', '.join(f'{r} {n}' for r, n in sorted(self.kills_by_role.items()))})"),
            ("acknowledged flushes", self.acknowledged_batches),
            ("rows checked", self.rows_checked),
            ("lost", self.lost),
            ("duplicated", self.duplicated),
            ("partly visible flushes", self.partial_batches),
            (
                "maintenance operations done",
                ", ".join(f"{r} {n}" for r, n in sorted(self.maintenance_ops.items())) or "none",
            ),
            ("orphans found, then vacuumed", self.orphans_found),
            ("commits stalled in flight (taken by vacuum)", f"{self.stalls} ({self.stalls_taken_by_vacuum})"),
            ("commits refusing stale files", self.stale_refused),
            ("doctor problems besides orphans", len(self.doctor_problems)),
            ("rows in the sync target", self.sync_target_rows),
            ("Delta versions checked (rows read)", f"{self.delta_versions_checked} ({self.delta_rows_read})"),
            ("seconds", f"{self.seconds:.1f}"),
        ]
        width = max(len(k) for k, _ in rows)
        return "\n".join(f"| {k:<{width}} | {v} |" for k, v in rows)


class Stalls:
    """Processes stalled before a commit (short-window case): paths in flight -> the process, let go
    (a line on its stdin) once a vacuum reports deleting one of its files, or after `patience`."""

    def __init__(self, patience: float) -> None:
        self.patience = patience
        self.lock = threading.Lock()
        self.waiting: dict[int, tuple[Worker, set[str], float]] = {}  # pid -> (worker, paths, since)
        self.total = self.taken = 0

    def stalled(self, w: Worker, paths: list[str]) -> None:
        with self.lock:
            self.waiting[w.proc.pid] = (w, set(paths), time.monotonic())
            self.total += 1

    def deleted(self, paths: list[str]) -> None:
        gone = set(paths)
        with self.lock:
            for pid, (w, held, _) in list(self.waiting.items()):
                if held & gone:
                    self.taken += 1
                    self._release(pid, w)

    def overdue(self) -> None:
        now = time.monotonic()
        with self.lock:
            for pid, (w, _, since) in list(self.waiting.items()):
                if now - since > self.patience:
                    self._release(pid, w)

    def release_all(self) -> None:
        with self.lock:
            for pid, (w, _, _) in list(self.waiting.items()):
                self._release(pid, w)

    def _release(self, pid: int, w: Worker) -> None:
        del self.waiting[pid]
        try:
            w.proc.stdin.write("go\n")
            w.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            pass  # killed meanwhile


def _start(
    role: str,
    tag: str,
    root: str,
    seed: int,
    dst: str,
    options: dict[str, Any] | None,
    logs: Path,
    short_window: float | None = None,
    stalls: Stalls | None = None,
) -> Worker:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if options:
        env["TORTURE_STORAGE_OPTIONS"] = json.dumps(options)
    if short_window:
        env["TORTURE_SHORT_WINDOW"] = str(short_window)
    with open(logs / f"{tag}.stderr", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), role, root, tag, str(seed), dst],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
            bufsize=1,
            env=env,
        )
    w = Worker(role, tag, proc)

    def read() -> None:
        for line in proc.stdout:
            w.lines.append(line.strip())
            if line.startswith("ready"):
                w.at_work = True
                w.ready.set()
            elif stalls is not None and line.startswith("stalled "):
                stalls.stalled(w, line.split()[1:])
            elif stalls is not None and line.startswith("vacuum-short "):
                stalls.deleted(line.split()[2:])
        w.ready.set()  # it died: nothing to wait for

    w.reader = threading.Thread(target=read, daemon=True)
    w.reader.start()
    return w


def run(
    root: str,
    kills: int,
    *,
    seed: int = 1,
    dst: str | None = None,
    storage_options: dict[str, Any] | None = None,
    logs: Path | None = None,
    roles: dict[str, int] | None = None,
    max_pause: float = 0.4,
    short_window: float | None = None,
) -> Summary:
    """Torture the warehouse at `root` (created if absent) with `kills` kills; returns the summary.
    `short_window` (seconds): the short-window case (see the module docstring)."""
    t0 = time.monotonic()
    rng = random.Random(seed)
    logs = logs or Path(tempfile.mkdtemp(prefix="torture-logs-"))
    logs.mkdir(parents=True, exist_ok=True)
    dst = dst or root.rstrip("/") + "-replica"
    warehouse.open(root, create=True, storage_options=storage_options)
    roles = roles or (SHORT_WINDOW_ROLES if short_window else ROLES)
    stalls = Stalls(patience=6 * short_window) if short_window else None
    summary = Summary()
    done: list[Worker] = []
    live: list[Worker] = []
    counter = 0

    def spawn(role: str) -> None:
        nonlocal counter
        counter += 1
        live.append(
            _start(
                role,
                f"{role[0]}{counter}",
                root,
                rng.randrange(1 << 30),
                dst,
                storage_options,
                logs,
                short_window,
                stalls,
            )
        )

    for role, n in roles.items():
        for _ in range(n):
            spawn(role)
    try:
        while summary.kills < kills:
            # A random moment in the victim's work: once it is at work (it said `ready`, after its
            # start-up), let it run for a random while. The pause only chooses when the kill lands;
            # the checks read what the processes acknowledged on their pipes.
            victim = live.pop(rng.randrange(len(live)))
            if not victim.ready.wait(120):
                raise RuntimeError(f"{victim.tag} ({victim.role}) never got ready; see {logs}")
            time.sleep(rng.uniform(0.0, max_pause))
            if stalls is not None:
                stalls.overdue()
            victim.stop()
            summary.kills += 1
            summary.kills_by_role[victim.role] += 1
            done.append(victim)
            spawn(victim.role)
    finally:
        if stalls is not None:
            stalls.release_all()
        for w in live:
            w.stop()
        done += live
    for w in done:
        if w.reader is not None:
            w.reader.join()
        if w.proc.stdout is not None:
            w.proc.stdout.close()
    if stalls is not None:
        summary.stalls, summary.stalls_taken_by_vacuum = stalls.total, stalls.taken
    _check(root, dst, storage_options, done, summary)
    summary.seconds = time.monotonic() - t0
    return summary


def _check(root: str, dst: str, options: dict[str, Any] | None, workers: list[Worker], s: Summary) -> None:
    acked: dict[tuple[str, int], int] = {}
    for w in workers:
        for line in w.lines:
            parts = line.split()
            if parts and parts[0] == "stale":
                s.stale_refused += 1
            if w.role.startswith("writer") and parts[0] == "ack":
                acked[(w.tag, int(parts[1]))] = int(parts[2])
            elif not w.role.startswith("writer") and parts and parts[0] == w.role:
                s.maintenance_ops[w.role] += 1
    s.acknowledged_batches = len(acked)
    for w in workers:  # every worker ends by the harness's kill -9; any other end is a failure it hit
        if w.proc.returncode != -signal.SIGKILL:
            s.doctor_problems.append(
                f"{w.tag} ({w.role}) exited by itself with status {w.proc.returncode}; see {w.tag}.stderr"
            )
    if any(w.role in ("publish", "writer-publish") for w in workers):
        _check_publication(root, options, s)
    wh = warehouse.open(root, storage_options=options)  # it opens
    try:
        ids = Counter(r[0] for r in wh.sql("select execution_id from executions").fetchall())
    except Exception as exc:  # e.g. a commit names a data file that is gone: count what repair leaves
        s.doctor_problems.append(f"the warehouse cannot be queried ({type(exc).__name__}: {str(exc)[:200]})")
        repaired = wh.doctor(repair=True)
        s.doctor_problems += [f"repaired: {f.kind} {f.path}" for f in repaired.repaired]
        ids = Counter(r[0] for r in wh.sql("select execution_id from executions").fetchall())
    s.rows_checked = sum(ids.values())
    s.duplicated = sum(n - 1 for n in ids.values() if n > 1)
    batches: dict[tuple[str, int], set[int]] = {}
    sizes: dict[tuple[str, int], int] = {}
    for eid in ids:
        tag, n, size, i = eid.split("-")
        batches.setdefault((tag, int(n)), set()).add(int(i))
        sizes[(tag, int(n))] = int(size)
    s.partial_batches = sum(1 for b, got in batches.items() if got != set(range(sizes[b])))
    s.lost = sum(size - len(batches.get(b, ())) for b, size in acked.items())
    msgs = wh.sql("select count(*), count(distinct execution_id) from messages").fetchall()[0]
    if msgs != (2 * len(ids), len(ids)):
        s.doctor_problems.append(f"messages: {msgs[0]} rows for {msgs[1]} executions, expected 2 each of {len(ids)}")
    report = wh.doctor()
    s.doctor_problems += [str(p) for p in report.problems]
    s.orphans_found = len(report.orphans)
    # Every process is dead: no file is in flight, so the minimum window that protects
    # writers' files can be lifted (in this process only) to remove every orphan now.
    minimum = warehouse.manifest.model.MIN_ORPHAN_WINDOW
    warehouse.manifest.model.MIN_ORPHAN_WINDOW = timedelta(0)
    try:
        wh.vacuum(retain=timedelta(0), orphan_window=timedelta(0))
    finally:
        warehouse.manifest.model.MIN_ORPHAN_WINDOW = minimum
    after = wh.doctor()
    s.doctor_problems += [f"after vacuum: {p}" for p in after.problems + after.orphans]
    try:
        replica = warehouse.open(dst, storage_options=options)
        s.sync_target_rows = replica.sql("select count(*) from executions").fetchall()[0][0]
        extra = {r[0] for r in replica.sql("select execution_id from executions").fetchall()} - set(ids)
        if extra:
            s.doctor_problems.append(f"the sync target holds {len(extra)} executions the source does not")
        twice = replica.sql("select count(*) - count(distinct execution_id) from executions").fetchall()[0][0]
        if twice:
            s.doctor_problems.append(f"the sync target counts {twice} executions more than once")
    except warehouse.WarehouseNotFound:
        pass  # no sync finished its first commit


def _check_publication(root: str, options: dict[str, Any] | None, s: Summary) -> None:
    """Every Delta version of every table reads and names what its warehouse version should; no
    transaction goes back; a publish brings every log to the latest version (module docstring)."""
    import polars as pl

    from warehouse.engine import keys
    from warehouse.engine.engine import open_engine
    from warehouse.ops.publish import delta

    engines: dict[int, Any] = {}
    targets: dict[tuple[str, int], set[str]] = {}

    def should(table: str, version: int) -> set[str]:
        if (table, version) not in targets:
            if version not in engines:
                engines[version] = open_engine(root, version=version, storage_options=options)
            e = engines[version]
            hidden = keys.Hidden(e.keys, e.store, e.snapshot)
            report = delta.TablePublication(table, version, None)
            targets[(table, version)] = set(delta.target(e, e.snapshot, table, hidden, report, dry=True))
        return targets[(table, version)]

    wh = warehouse.open(root, storage_options=options)
    store = wh.engine.store
    dopts = delta.storage_options(store)
    for table in delta.tables():
        uri = delta.table_uri(store, table)
        latest = delta.open_table(uri, dopts)
        if latest is None:
            continue
        previous = -1
        for v in range(latest.version() + 1):
            try:
                dt = delta.open_table(uri, dopts, version=v)
                assert dt is not None
                txn = delta.published_version(dt)
                rows = pl.read_delta(uri, version=v, storage_options=dopts).height
            except Exception as exc:
                s.doctor_problems.append(f"Delta {table} v{v} cannot be read: {type(exc).__name__}: {str(exc)[:200]}")
                continue
            s.delta_versions_checked += 1
            s.delta_rows_read += rows
            if txn is None or txn < previous:
                s.doctor_problems.append(f"Delta {table} v{v}: warehouse transaction {txn} after {previous}")
                continue
            previous = txn
            named = delta.delta_files(dt, table)
            if named != should(table, txn):
                s.doctor_problems.append(
                    f"Delta {table} v{v} (warehouse {txn}) names {len(named)} files, not the "
                    f"{len(should(table, txn))} that version should: {sorted(named ^ should(table, txn))[:3]}"
                )
    wh.publish("delta")
    wh.refresh()
    for table in delta.tables():
        dt = delta.open_table(delta.table_uri(store, table), dopts)
        if dt is None or delta.delta_files(dt, table) != should(table, wh.version):
            s.doctor_problems.append(f"after publish, Delta {table} does not name the files of version {wh.version}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workdir", default=None)
    ap.add_argument(
        "--short-window",
        type=float,
        default=4.0,
        help="then run the short-window case with this minimum window, in seconds (0: skip it)",
    )
    ap.add_argument(
        "--publication", type=int, default=None, help="kills of the publication case (default: --kills; 0: skip it)"
    )
    args = ap.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="torture-"))
    ok = True
    print(f"torture: {args.kills} kills, seed {args.seed}, roles {ROLES}, in {work}", flush=True)
    s = run(str(work / "wh"), args.kills, seed=args.seed, logs=work / "logs")
    print(s.table())
    for p in s.doctor_problems:
        print("problem:", p)
    ok = ok and s.ok
    if args.short_window:
        print(
            f"\ntorture, short-window case: {args.kills} kills, vacuum at the minimum orphan window scaled to "
            f"{args.short_window:g} s (commit deadline {args.short_window / 2:g} s), roles {SHORT_WINDOW_ROLES}",
            flush=True,
        )
        s = run(
            str(work / "wh-short"),
            args.kills,
            seed=args.seed,
            logs=work / "logs-short",
            short_window=args.short_window,
            max_pause=1.0,
        )
        print(s.table())
        for p in s.doctor_problems:
            print("problem:", p)
        ok = ok and s.ok
    kills = args.kills if args.publication is None else args.publication
    if kills:
        print(f"\ntorture, publication case: {kills} kills, roles {PUBLICATION_ROLES}", flush=True)
        s = run(str(work / "wh-publish"), kills, seed=args.seed, logs=work / "logs-publish", roles=PUBLICATION_ROLES)
        print(s.table())
        for p in s.doctor_problems:
            print("problem:", p)
        ok = ok and s.ok and s.delta_versions_checked > 0
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
