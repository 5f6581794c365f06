"""The publication setting, `_manifest/_publish.json`: the open formats whose logs this warehouse keeps
current after every commit (`warehouse.open(url, publish=["delta"])`, `warehouse publish delta --auto`),
and the Iceberg catalog it was last published to (`iceberg_catalog`: vacuum keeps the files its
tables name).

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
    """Persist the formats to keep current ([] turns automatic publication off)."""
    doc = {**_doc(store), "formats": check_formats(formats)}  # keeps the other keys
    with store.errors():
        store.write_bytes(SETTINGS, json.dumps(doc).encode("utf-8"))


def iceberg_catalog(store: Store) -> str | None:
    """The Iceberg catalog URI the warehouse was last published to (None: never)."""
    uri = _doc(store).get("iceberg_catalog")
    return uri if isinstance(uri, str) else None


def set_iceberg_catalog(store: Store, uri: str) -> None:
    """Record the Iceberg catalog URI the warehouse was published to (keeps the other keys)."""
    doc = {**_doc(store), "iceberg_catalog": uri}
    with store.errors():
        store.write_bytes(SETTINGS, json.dumps(doc).encode("utf-8"))
