"""Import RL trajectory JSONL (rollouts `Trajectory.save_jsonl`: data/train.jsonl, val.jsonl, ...).

Each *.jsonl file is one source; each line one trajectory {completions, messages, rewards, group,
replica, advantages, metadata}, stored as `Writer.add_trajectory` stores it and read back by
`wh.executions.trajectories()`: rewards -> reward, group -> group_id (text), replica -> sample, advantages
(a number or a list) -> advantages (a list), completions -> completions (JSON), metadata ->
metadata, messages -> `messages`; task_id = metadata["task_id"] (else "trajectory"). Keys beyond
those seven are kept in metadata["_extra"] (the trajectories exporter puts them back).

Run configuration: dataset `trajectories` with config {split: the file name without .jsonl} (so
train/val/test land in partitions of their own), agent `rollouts`. A trajectory's execution_id is
derived from its split and its line's content (and its occurrence among identical lines of the
file), so a file that grew since it was imported (appended to, as the rollouts docs suggest for
incremental saves) adds only its new lines, and a copy of a file elsewhere holds the same ids.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path
from typing import Any

from warehouse.core.errors import ImportFailed, InvalidRecord
from warehouse.interop.importers.base import FileImporter, Source, SourceRecorder
from warehouse.interop.importers.session_dirs import _loads, tag, untag
from warehouse.write.writer import trajectory_execution

FIELDS = ("completions", "messages", "rewards", "group", "replica", "advantages", "metadata")
#: metadata key holding a line's keys beyond FIELDS.
EXTRA = "_extra"
DATASET_TYPE = "trajectories"
AGENT = {"type": "rollouts", "config": {}}


def trajectory_fields(t: dict[str, Any]) -> dict[str, Any]:
    """The `add_execution` arguments of one trajectory line (`writer.trajectory_execution`, as
    `Writer.add_trajectory` maps them; keys outside the format are kept in metadata).
    Raises InvalidRecord naming a bad field."""
    metadata = t.get("metadata")
    extra = {k: v for k, v in t.items() if k not in FIELDS}
    if extra:
        if metadata is not None and not isinstance(metadata, dict):
            raise InvalidRecord(
                f"metadata must be an object to keep the extra key(s) {sorted(extra)}, got {type(metadata).__name__}"
            )
        metadata = {**(metadata or {}), EXTRA: extra}
    group = t.get("group", 0)
    if group is None or isinstance(group, (bool, dict, list)):
        raise InvalidRecord(f"group must be an integer or a string, got {group!r:.80}")
    return trajectory_execution(
        messages=t.get("messages"),
        completions=t.get("completions"),
        rewards=t.get("rewards", 0.0),
        group=group,
        replica=t.get("replica", 0),
        advantages=t.get("advantages", 0.0),
        metadata=metadata,
        task_id=None,
    )


def split_of(source: Source) -> str:
    """The split a trajectory file holds: its name without .jsonl (train, val, test)."""
    name = Path(source.key).name
    return name[: -len(".jsonl")] if name.endswith(".jsonl") else Path(name).stem


class TrajectoryFileImporter(FileImporter):
    """Sources: every *.jsonl file under the path (or the path itself)."""

    kind = "trajectories"
    patterns = ("**/*.jsonl",)

    def load(self, source: Source) -> bytes:
        """The file's content, tagged with its split (the same lines in train.jsonl and val.jsonl
        are two sources)."""
        return tag(split_of(source), super().load(source))

    def read(self, source: Source, data: bytes, out: SourceRecorder) -> None:
        """Every trajectory line of the file not already in the warehouse."""
        split, data = untag(data)
        w = out.writer({"type": DATASET_TYPE, "config": {"split": split}}, AGENT)
        seen: Counter = Counter()
        staged = []
        for n, line in enumerate(data.split(b"\n"), 1):
            if not line.strip():
                continue
            t = _loads(line, f"line {n}")
            if not isinstance(t, dict):
                raise ImportFailed(f"line {n}: a trajectory must be a JSON object, got {type(t).__name__} {t!r:.80}")
            digest = hashlib.sha256(line.strip()).hexdigest()
            seen[digest] += 1
            eid = out.stable_id(split, digest, seen[digest])
            try:
                fields = trajectory_fields(t)
            except InvalidRecord as exc:
                raise InvalidRecord(f"line {n}: {exc}") from None
            staged.append((n, eid, fields))
        known = _existing(out, [eid for _, eid, _ in staged]) if out.changed else set()
        for n, eid, fields in staged:
            if eid in known:
                continue
            try:
                out.execution(w, execution_id=eid, **fields)
            except InvalidRecord as exc:
                raise InvalidRecord(f"line {n}: {exc}") from None


def _existing(out: SourceRecorder, ids: list[str]) -> set[str]:
    """Which of `ids` the warehouse holds already (asked only for a file that changed since imported)."""
    if not ids:
        return set()
    wh = out.warehouse  # the warehouse being imported into (read-only use)
    wh.refresh()
    rows = wh.sql(
        "select execution_id from executions where dataset = ? and list_contains(?, execution_id)", [DATASET_TYPE, ids]
    ).fetchall()
    return {r[0] for r in rows}


IMPORTER = TrajectoryFileImporter()
