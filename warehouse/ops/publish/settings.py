"""The publication setting, `_manifest/_publish.json`: the open formats whose logs this warehouse keeps
current after every commit (`warehouse.open(url, publish=["delta"])`, `warehouse publish delta --auto`).

A small object beside the commits (like the vacuum hint), read once when a warehouse is opened for
writing; every process that opens the warehouse afterwards publishes after its own commits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable

from warehouse.core.errors import InvalidArgument, InvalidArgumentType
from warehouse.core.storage import Store
from warehouse.manifest.model import MANIFEST_DIR

SETTINGS = f"{MANIFEST_DIR}/_publish.json"
#: The open formats the warehouse can publish.
FORMATS = ("delta",)


def check_formats(formats: Iterable[str] | str) -> list[str]:
    """`formats` as a sorted list of known format names; InvalidArgument naming an unknown one."""
    if isinstance(formats, str):
        formats = [formats]
    try:
        out = sorted(set(formats))
    except TypeError:
        raise InvalidArgumentType(
            f"publish must be a list of format names such as ['delta'], got {formats!r}"
        ) from None
    for f in out:
        if f not in FORMATS:
            raise InvalidArgument(f"unknown publication format {f!r}; known: {', '.join(FORMATS)}")
    return out


def read(store: Store) -> list[str]:
    """The formats kept current automatically ([] if none, or if the setting does not parse)."""
    try:
        doc = json.loads(store.read_bytes(SETTINGS))
    except FileNotFoundError:
        return []
    except ValueError:
        return []
    formats = doc.get("formats") if isinstance(doc, dict) else None
    return [f for f in formats if f in FORMATS] if isinstance(formats, list) else []


def write(store: Store, formats: Iterable[str]) -> None:
    """Persist the formats to keep current ([] turns automatic publication off and removes the file,
    so that a warehouse without publication costs no request to find that out)."""
    chosen = check_formats(formats)
    with store.errors():
        if chosen:
            store.write_bytes(SETTINGS, json.dumps({"formats": chosen}).encode("utf-8"))
        else:
            store.remove(SETTINGS)


def present(names: Iterable[str] | None) -> bool | None:
    """Whether a listing of `_manifest/` (its names) shows the setting; None if there was no listing."""
    return None if names is None else SETTINGS.rsplit("/", 1)[-1] in set(names)
