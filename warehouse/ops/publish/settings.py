"""The publication setting, `_manifest/_publish.json`: the open formats whose logs this warehouse keeps
current after every commit (`warehouse.open(url, publish=["delta"])`, `warehouse publish delta --auto`),
and `_manifest/_iceberg.json`: the Iceberg catalog it was last published to (vacuum keeps the files
its tables name).

A small object beside the commits (like the vacuum hint), read once when a warehouse is opened for
writing; every process that opens the warehouse afterwards publishes after its own commits.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from warehouse.core.errors import InvalidArgument, InvalidArgumentType
from warehouse.core.storage import Store
from warehouse.manifest.model import MANIFEST_DIR

SETTINGS = f"{MANIFEST_DIR}/_publish.json"
#: The Iceberg catalog the warehouse was last published to (a file of its own: `_publish.json` exists
#: only while automatic publication is on, so that its absence needs no request).
ICEBERG = f"{MANIFEST_DIR}/_iceberg.json"
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
        if f == "iceberg":
            raise InvalidArgument(
                "iceberg is published on demand only: wh.publish('iceberg', catalog=...) or "
                f"`warehouse publish iceberg --catalog URI`; kept current automatically: {', '.join(FORMATS)}"
            )
        if f not in FORMATS:
            raise InvalidArgument(f"unknown publication format {f!r}; known: {', '.join(FORMATS)}")
    return out


def _doc(store: Store) -> dict[str, Any]:
    try:
        doc = json.loads(store.read_bytes(SETTINGS))
    except (FileNotFoundError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def read(store: Store) -> list[str]:
    """The formats kept current automatically ([] if none, or if the setting does not parse)."""
    formats = _doc(store).get("formats")
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


def _iceberg_doc(store: Store) -> dict[str, Any]:
    try:
        doc = json.loads(store.read_bytes(ICEBERG))
    except (FileNotFoundError, ValueError):
        return {}
    return doc if isinstance(doc, dict) else {}


def iceberg_catalog(store: Store) -> str | None:
    """The Iceberg catalog URI the warehouse was last published to (None: never)."""
    uri = _iceberg_doc(store).get("iceberg_catalog")
    return uri if isinstance(uri, str) else None


def set_iceberg_catalog(store: Store, uri: str) -> None:
    """Record the Iceberg catalog URI the warehouse was published to (`_manifest/_iceberg.json`)."""
    with store.errors():
        store.write_bytes(ICEBERG, json.dumps({"iceberg_catalog": uri}).encode("utf-8"))


def present(names: Iterable[str] | None) -> bool | None:
    """Whether a listing of `_manifest/` (its names) shows the setting; None if there was no listing."""
    return None if names is None else SETTINGS.rsplit("/", 1)[-1] in set(names)
