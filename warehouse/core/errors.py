"""The warehouse's exceptions: one base class, one subclass per kind of failure.

Every message names the offending value and says what to do about it.
"""

from __future__ import annotations


class WarehouseError(Exception):
    """Base class of every error the warehouse raises on purpose."""


class WarehouseNotFound(WarehouseError):
    """The URL holds no warehouse (no `_manifest/`), and `create=True` was not given."""


class NotAWarehouse(WarehouseError):
    """The URL holds files but no warehouse; refusing to create one on top of them."""


class ReadOnlyWarehouse(WarehouseError):
    """A write was attempted on a snapshot opened at an older version or time."""


class InvalidRecord(WarehouseError, ValueError):
    """A record given to a writer is malformed: unknown field, bad type, NaN score, bad UTF-8, ..."""


class InvalidPartitionValue(InvalidRecord):
    """A partition value is empty or too long once escaped."""


class ConfigHashCollision(WarehouseError):
    """Two different configurations map to the same 8-hex-character config hash."""


class SchemaMismatch(WarehouseError):
    """Data does not match the table schema it is written to."""


class CommitConflict(WarehouseError):
    """A commit could not be made after retrying: other writers kept winning, or its inputs vanished."""


class OrphanWindowTooShort(WarehouseError, ValueError):
    """`vacuum` was given an orphan window shorter than `manifest.MIN_ORPHAN_WINDOW`, which would let
    it delete data files that writers are still committing."""


class StaleDataFile(CommitConflict):
    """A commit would add a data file written longer ago than `manifest.COMMIT_DEADLINE`: a vacuum
    (whose orphan window is at least `manifest.MIN_ORPHAN_WINDOW`) may already have taken it as an
    orphan. Nothing was committed; the file must be written again under a new name."""


class SyncDiverged(WarehouseError):
    """`sync` cannot mirror a rewrite (compaction, expire, delete) that SRC made of data files which DST
    had already rewritten or deleted itself, without duplicating rows or bringing deleted rows back
    (and cannot prove which DST files hold exactly those rows). Nothing was committed."""


class CorruptCommit(WarehouseError):
    """A manifest commit file is not valid JSON or lacks required fields."""


class UnsupportedFormatVersion(WarehouseError):
    """The warehouse was written by a newer format version than this library understands."""


class VersionNotFound(WarehouseError):
    """The requested version or timestamp is not in the warehouse's history."""


class ExecutionNotFound(WarehouseError):
    """No execution with the given id (or id prefix) exists in the snapshot."""


class StorageError(WarehouseError):
    """The store behind the URL cannot be used: missing bucket, access denied, endpoint unreachable."""


class ConditionalWritesUnsupported(StorageError):
    """The store ignores or refuses create-if-absent writes, so commits could not be made safely."""


class PermissionDenied(WarehouseError):
    """An owner asked for (or tried to resume) an execution or checkpoint that another owner holds."""


class SessionNotFound(WarehouseError):
    """No conversation session with the given id exists in the snapshot."""


class RunNotFound(WarehouseError):
    """No simulation run with the given id exists in the snapshot."""


class CheckpointNotFound(WarehouseError):
    """No checkpoint with the given id exists (or the id is ambiguous without an execution id)."""


class CorruptCheckpoint(CorruptCommit):
    """A manifest checkpoint file cannot be read (truncated, damaged, or not a checkpoint)."""


class WalError(WarehouseError):
    """The write-ahead log cannot be used: unreadable, or holding records of another warehouse."""


class WalLocked(WalError):
    """Another live writer (in this or another process) uses the same WAL directory."""


class ImportFailed(WarehouseError):
    """A source given to `warehouse import` could not be read or mapped (raised with `strict=True`;
    otherwise the source is reported with its path and reason and the import goes on)."""


class ExportFailed(WarehouseError):
    """`warehouse export` cannot write to the given target (unknown kind, target not empty, ...)."""


class PublishFailed(WarehouseError):
    """`warehouse publish` cannot bring a table's open-format log up to date: a foreign `_delta_log` in
    the table's folder, a damaged log (run `publish --rebuild`), a root path the Delta library cannot
    use, or other publishers that kept committing."""


class InvalidArgument(WarehouseError, ValueError):
    """An argument of a public function or CLI option has a bad value: a negative version, a window
    below its minimum, an unknown option value. The message names the argument and the value."""


class InvalidArgumentType(InvalidArgument, TypeError):
    """An argument of a public function has the wrong type (a string where a version number goes,
    a number where a timedelta goes). Also a ValueError, like every bad-argument error."""


class InvalidCondition(InvalidArgument):
    """A `where` filter is not one boolean SQL expression over the columns it filters: it does not
    parse, adds a statement or clause, reads something else (a subquery, a table function, the
    session), or names an unknown column (see `warehouse.condition`)."""


class CorruptDataFile(WarehouseError):
    """A data file's bytes are damaged: a Parquet page fails its checksum or cannot be decoded, or
    it holds another number of rows than the manifest records. The message names the file;
    `warehouse doctor --deep --repair` takes it out of the snapshot."""


class StateError(WarehouseError, RuntimeError):
    """A call that its object or record is not in a state for: finishing an execution that is
    already finished, resuming one of another configuration, creating a session that exists, a
    writer whose buffer is full because flushes do not keep up. The arguments may be fine; the
    message says what state things are in and what to do instead."""


class WriterClosed(StateError):
    """A writer, async writer or simulation recorder was used after `close()` (or `finish()`); open
    a new one."""
