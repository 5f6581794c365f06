"""The vacuum hint, `_manifest/_vacuum.json`: the oldest version whose data files a vacuum kept, so that
time travel to an older one fails at open (VersionNotFound naming the retention) rather than at read."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from warehouse.core.errors import VersionNotFound
from warehouse.core.storage import Store
from warehouse.manifest.model import MANIFEST_DIR

VACUUM_HINT = f"{MANIFEST_DIR}/_vacuum.json"


def read(store: Store) -> dict[str, Any] | None:
    """The hint (readable_from, vacuumed_at, retain), or None if there is none or it does not parse."""
    try:
        doc = json.loads(store.read_bytes(VACUUM_HINT))
    except FileNotFoundError:
        return None
    except ValueError:  # a torn or hand-edited hint: time travel then fails at read time instead
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("readable_from"), int) else None


def check_readable(store: Store, version: int) -> None:
    """Raise VersionNotFound if a vacuum deleted data files that `version` references (it is older
    than the vacuum's retention); one small read of `_manifest/_vacuum.json`, meant for time travel."""
    hint = read(store)
    if hint is not None and version < hint["readable_from"]:
        raise VersionNotFound(
            f"version {version} is no longer readable: vacuum at {hint.get('vacuumed_at')} deleted data files it "
            f"references (files removed from the snapshot more than {hint.get('retain')} before, the retention); "
            f"the oldest readable version is {hint['readable_from']}"
        )


def write(store: Store, readable_from: int, now: datetime, retain: str) -> None:
    """Record that versions before `readable_from` lost data files to a vacuum at `now` that kept
    `retain` (e.g. "7d"); an older hint is kept if it already says as much."""
    old = read(store)
    if old is not None and old["readable_from"] >= readable_from:
        return
    doc = {"readable_from": readable_from, "vacuumed_at": now.isoformat().replace("+00:00", "Z"), "retain": retain}
    with store.errors():
        store.write_bytes(VACUUM_HINT, json.dumps(doc).encode("utf-8"))
