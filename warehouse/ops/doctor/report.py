"""What doctor reports: one `Finding` per thing found, gathered in a `DoctorReport`, and the
advice strings findings share."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from warehouse.manifest import MANIFEST_DIR

#: Severities: an `error` is a problem (exit code 1 unless repaired); a `warning` and an `orphan` are not.
SEVERITIES = ("error", "warning", "orphan")
#: Commit files read at a time (concurrently on remote stores).
READ_CHUNK = 256
#: Footers read at a time on remote stores.
FOOTER_WORKERS = 16

#: The fix for a missing or damaged commit.
RESTORE = (
    "restore it from a backup, or copy it from a replica (e.g. the source or target of `warehouse sync`); "
    "a new commit cannot replace it, since every later version builds on it"
)
#: The fix for an orphan.
VACUUM = "`warehouse vacuum` deletes it once older than its orphan window (1 hour by default)"
#: Where `repair` moves stray commit files (under `_manifest/`, where no reader looks).
SET_ASIDE = f"{MANIFEST_DIR}/_set_aside"


@dataclass(frozen=True)
class Finding:
    """One thing doctor found: how bad (`severity`), which check (`kind`), where (`version` of a
    commit or checkpoint, `path` of a file), what (`message`) and what to do (`fix`)."""

    severity: str
    kind: str
    message: str
    fix: str
    path: str | None = None
    version: int | None = None
    repaired: bool = False

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DoctorReport:
    """The result of `Warehouse.doctor()`: findings, what was checked, and what a repair did."""

    url: str
    version: int | None  # the newest version in the log
    commits_checked: int = 0
    files_checked: int = 0
    checkpoints_checked: int = 0
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    repair_version: int | None = None  # the repair commit, if one was written
    seconds: float = 0.0
    deep: bool = False  # every page of every data file was read and checked

    def _of(self, severity: str) -> list[Finding]:
        return [f for f in self.findings if f.severity == severity]

    @property
    def problems(self) -> list[Finding]:
        """Errors a repair did not fix."""
        return [f for f in self._of("error") if not f.repaired]

    @property
    def repaired(self) -> list[Finding]:
        return [f for f in self.findings if f.repaired]

    @property
    def warnings(self) -> list[Finding]:
        return self._of("warning")

    @property
    def orphans(self) -> list[Finding]:
        return self._of("orphan")

    @property
    def healthy(self) -> bool:
        """True if no problem remains (warnings and orphans are not problems)."""
        return not self.problems

    @property
    def exit_code(self) -> int:
        """`warehouse doctor`'s exit code: 0 if healthy (orphans and warnings allowed), else 1."""
        return 0 if self.healthy else 1

    def to_json(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "version": self.version,
            "healthy": self.healthy,
            "commits_checked": self.commits_checked,
            "files_checked": self.files_checked,
            "checkpoints_checked": self.checkpoints_checked,
            "deep": self.deep,
            "problems": len(self.problems),
            "warnings": len(self.warnings),
            "orphans": len(self.orphans),
            "repair_version": self.repair_version,
            "findings": [f.to_json() for f in self.findings],
            "notes": list(self.notes),
            "seconds": round(self.seconds, 3),
        }
