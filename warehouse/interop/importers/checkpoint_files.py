"""Import rollouts' per-turn checkpoint files (`FileCheckpointStore`: `<directory>/turn_<n>.json`).

Each JSON file is one source and one checkpoint; the files of one directory are the checkpoints
of one rollout, which becomes one execution: execution_id = a stable id of the rollout's name
(the directory relative to the import root, or the root's own name when the files lie in it),
task_id = that name. So `wh.executions.checkpoints(execution_id)` lists the turns in order and
`wh.executions.latest_checkpoint(execution_id)` gives the one to resume from; `wh.executions.load_checkpoint("turn_2",
execution_id=...)` finds one by its id.

Mapping: a `snapshots` row of kind `checkpoint` per file: snapshot_id = `_metadata.checkpoint_id`
(else the file name without .json), step = `turn_idx`, state = the file without `_metadata`,
created_at = `_metadata.timestamp` (epoch seconds; else `iso_time`; else the file's mtime),
metadata = `_metadata`. Every checkpoint also records the execution's progress as a revision
(turn_idx + 1): still `running` (table executions_live, as a live execution that was
interrupted, which `wh.executions.resume_plan` offers for resuming), or `completed` once a checkpoint has a
non-null `stop` (its final row). Run configuration: dataset `rollouts` (config {environment:
the environment's class_name}), agent `rollouts`; model = the actor endpoint's model.

The endpoint's `api_key` is a secret, not data: it is stored as "[redacted]" (the metadata lists
what was redacted). A file whose content changed after it was imported (the rollouts default
directory is reused by the next rollout) is imported again as a newer checkpoint, with id
`<checkpoint_id>@<created_at>` so that ids stay unique within the execution.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from warehouse.core import records
from warehouse.core.errors import ImportFailed, InvalidRecord
from warehouse.interop.importers.base import FileImporter, Source, SourceRecorder
from warehouse.interop.importers.session_dirs import _loads, tag, untag
from warehouse.write.live import SNAPSHOT_ROW
from warehouse.write.writer import EXECUTION_LIVE_ROW, EXECUTION_ROW

#: Endpoint keys whose values are secrets, stored as REDACTED.
SECRET_KEYS = frozenset({"api_key", "apikey", "api-key", "authorization", "auth_token", "access_token"})
REDACTED = "[redacted]"
DATASET_TYPE = "rollouts"
AGENT = {"type": "rollouts", "config": {}}


def rollout_name(source: Source) -> str:
    """The rollout a checkpoint file belongs to: its directory relative to the import root, or the
    root directory's name for files directly in it."""
    parent = PurePosixPath(source.key).parent
    if str(parent) != ".":
        return str(parent)
    return Path(source.path).resolve().parent.name  # type: ignore[arg-type]


def _redact(endpoint: Any) -> tuple[Any, list[str]]:
    if not isinstance(endpoint, dict):
        return endpoint, []
    hidden = sorted(k for k, v in endpoint.items() if k.lower() in SECRET_KEYS and v is not None)
    return ({k: (REDACTED if k in hidden else v) for k, v in endpoint.items()}, [f"actor.endpoint.{k}" for k in hidden])


def _created_at(meta: dict[str, Any], path: str) -> datetime:
    for key in ("timestamp", "iso_time"):
        if meta.get(key) is not None:
            try:
                ts = records.timestamp(f"_metadata.{key}", meta[key])
            except InvalidRecord as exc:
                raise ImportFailed(str(exc)) from None
            if ts is not None:
                return ts
    return datetime.fromtimestamp(os.stat(path).st_mtime, UTC)


class CheckpointFileImporter(FileImporter):
    """Sources: every *.json file under the path (or the path itself)."""

    kind = "checkpoints"
    patterns = ("**/*.json",)

    def load(self, source: Source) -> bytes:
        """The file's content, tagged with its rollout (the same turn file in two rollouts is two
        checkpoints)."""
        return tag(rollout_name(source), super().load(source))

    def read(self, source: Source, data: bytes, out: SourceRecorder) -> None:
        """One checkpoint row, and the revision of its rollout's execution."""
        rollout, data = untag(data)
        doc = _loads(data, Path(source.key).name)
        if not isinstance(doc, dict):
            raise ImportFailed(f"a checkpoint must be a JSON object, got {type(doc).__name__}")
        missing = [k for k in ("actor", "turn_idx") if k not in doc]
        if missing:
            raise ImportFailed(f"not a rollouts checkpoint: missing key(s) {missing} (found {sorted(doc)[:12]})")
        actor = doc["actor"]
        if not isinstance(actor, dict):
            raise ImportFailed(f"actor must be a JSON object, got {type(actor).__name__}")
        meta = doc.get("_metadata") or {}
        if not isinstance(meta, dict):
            raise ImportFailed(f"_metadata must be a JSON object, got {type(meta).__name__}")
        turn = records.integer("turn_idx", doc["turn_idx"])
        if turn is None or turn < 0:
            raise InvalidRecord(f"turn_idx must be an integer >= 0, got {doc['turn_idx']!r}")
        endpoint, redacted = _redact(actor.get("endpoint"))
        state = {k: v for k, v in doc.items() if k != "_metadata"}
        if redacted:
            state["actor"] = {**actor, "endpoint": endpoint}
            meta = {**meta, "redacted": redacted}
        created = _created_at(meta, source.path)  # type: ignore[arg-type]
        cid = records.ident("_metadata.checkpoint_id", meta.get("checkpoint_id") or Path(source.key).stem)
        if out.changed:
            cid = f"{cid}@{created.isoformat().replace('+00:00', 'Z')}"
        env = doc.get("environment")
        env_class = env.get("class_name") if isinstance(env, dict) else None
        model = endpoint.get("model") if isinstance(endpoint, dict) else None
        eid = out.stable_id("rollout", rollout)

        w = out.writer({"type": DATASET_TYPE, "config": {"environment": env_class}}, AGENT)
        state_json = records.json_text("state", state)
        assert state_json is not None
        out.rows(
            w,
            SNAPSHOT_ROW,
            [
                (
                    cid,
                    eid,
                    None,
                    "checkpoint",
                    turn,
                    None,
                    None,
                    state_json,
                    created,
                    records.json_text("_metadata", meta),
                )
            ],
            len(state_json),
        )
        stop = doc.get("stop")
        summary = {
            "rollout": rollout,
            "environment": env_class,
            "turn_idx": turn,
            "max_turns": doc.get("max_turns"),
            "stop": stop,
            "checkpoint_id": cid,
        }
        final = stop is not None
        row = w._execution_row(
            eid,
            rollout,
            turn + 1,
            "completed" if final else "running",
            {"model": model if isinstance(model, str) else None, "metadata": summary},
            created if final else None,
        )
        out.rows(w, EXECUTION_ROW if final else EXECUTION_LIVE_ROW, [row])


IMPORTER = CheckpointFileImporter()
