"""The manifest: an append-only log of JSON commits, and the snapshots replayed from it.

One module per concept, lowest first:

- `model`: the commit file format as plain data (`Commit`, `DataFile`, `RemovedFile`), its
  constants, and the clocks that bound how long a data file may wait for its commit;
- `filesets`: the in-memory sets of a snapshot's files (`ArrowFiles` over a checkpoint's columns,
  `DictFiles` over replayed commits);
- `snapshot`: `Snapshot`, its `FileMap`, and `replay`, a pure function from commits to a snapshot;
- `checkpoint`: the on-disk checkpoint, the whole snapshot at one version in one Parquet file;
- `listing`, `reader`, `fold`, `log`: the code that touches `_manifest/`. `Log` lists, reads and
  creates commit files, with create-if-absent so that exactly one writer wins each version, and
  writes the checkpoints that let a reader skip the commits before them. Vacuum may fold the
  commits older than the newest checkpoint away (`Log.fold_commits`); the log then starts at that
  checkpoint, and older versions can no longer be opened;
- `vacuum_hint`: the oldest version whose data files a vacuum kept.

This package re-exports the names its callers use. The tunables (`model.MIN_ORPHAN_WINDOW`,
`model.COMMIT_DEADLINE`, `snapshot.OVERLAY_LIMIT`) are read from their own modules at each use:
change them there, not here.
"""

from warehouse.manifest.listing import Listing
from warehouse.manifest.log import CHECKPOINT_INTERVAL, PROBE_LIMIT, Log
from warehouse.manifest.model import (
    CHECKPOINT_SUFFIX,
    COMMIT_DEADLINE,
    FORMAT_VERSION,
    MANIFEST_DIR,
    MIN_ORPHAN_WINDOW,
    OPERATIONS,
    Commit,
    DataFile,
    RemovedFile,
    Staged,
    commit_name,
    staged_age,
    staging_clock,
    utcnow,
    writer_info,
)
from warehouse.manifest.snapshot import OVERLAY_LIMIT, FileMap, Snapshot, replay

__all__ = [
    "CHECKPOINT_INTERVAL",
    "CHECKPOINT_SUFFIX",
    "COMMIT_DEADLINE",
    "FORMAT_VERSION",
    "MANIFEST_DIR",
    "MIN_ORPHAN_WINDOW",
    "OPERATIONS",
    "OVERLAY_LIMIT",
    "PROBE_LIMIT",
    "Commit",
    "DataFile",
    "FileMap",
    "Listing",
    "Log",
    "RemovedFile",
    "Snapshot",
    "Staged",
    "commit_name",
    "replay",
    "staged_age",
    "staging_clock",
    "utcnow",
    "writer_info",
]
