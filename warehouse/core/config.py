"""Run configurations ({dataset, agent, attack}) and their 8-hex-character hash.

`config_hash` = first 8 hex characters of SHA-256 of the canonical JSON (sorted keys, no
whitespace) of `{"dataset": ..., "agent": ..., "attack": ...}`; `attack` is None for benign runs.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, overload

import yaml

from warehouse.core import records
from warehouse.core.errors import InvalidRecord
from warehouse.core.rows import RowShape

HASH_SCHEME = "sha256-8"
# libyaml's safe loader and dumper when PyYAML was built with it (10x faster), else the Python ones.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
BENIGN = "none"


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, UTF-8 kept as is; NaN/inf refused (they are not JSON)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


@overload
def _component(name: str, value: Any, *, optional: Literal[False]) -> dict[str, Any]: ...
@overload
def _component(name: str, value: Any, *, optional: bool) -> dict[str, Any] | None: ...
def _component(name: str, value: Any, *, optional: bool) -> dict[str, Any] | None:
    if value is None:
        if optional:
            return None
        raise InvalidRecord(f"{name} config is required, got None")
    if isinstance(value, str):
        return {"type": value, "config": {}}
    if not isinstance(value, dict):
        raise InvalidRecord(f"{name} config must be a dict {{'type': ..., 'config': {{...}}}}, got {value!r}")
    unknown = set(value) - {"type", "config"}
    if unknown:
        raise InvalidRecord(f"{name} config has unknown key(s) {sorted(unknown)}; expected 'type' and 'config'")
    typ = value.get("type")
    if not isinstance(typ, str) or not typ:
        raise InvalidRecord(f"{name} config needs a non-empty string 'type', got {typ!r}")
    cfg = value.get("config") or {}
    if not isinstance(cfg, dict):
        raise InvalidRecord(f"{name} 'config' must be a dict, got {cfg!r}")
    return {"type": typ, "config": cfg}


@dataclass(frozen=True)
class RunConfig:
    """One configuration of a run: dataset, agent and (optionally) attack, each {type, config}."""

    dataset: dict[str, Any]
    agent: dict[str, Any]
    attack: dict[str, Any] | None
    #: A hash computed by another scheme, kept as it is (imports of legacy results: the hashes are
    #: cited in papers and file names); None = this package's `sha256-8` of the canonical JSON.
    given_hash: str | None = None

    @classmethod
    def of(cls, dataset: Any, agent: Any, attack: Any = None) -> RunConfig:
        """Normalise user input (a dict or a bare type name per component) and validate it."""
        rc = cls(
            _component("dataset", dataset, optional=False),
            _component("agent", agent, optional=False),
            _component("attack", attack, optional=True),
        )
        for name, comp in (("dataset", rc.dataset), ("agent", rc.agent), ("attack", rc.attack)):
            try:
                canonical_json(comp).encode("utf-8")
            except UnicodeEncodeError as exc:
                raise InvalidRecord(f"{name} config is not valid UTF-8 ({exc.reason}): {comp!r:.120}") from None
            except (TypeError, ValueError) as exc:
                raise InvalidRecord(f"{name} config is not JSON-serialisable: {exc}") from None
        if rc.attack is not None and rc.attack["type"] == BENIGN:
            raise InvalidRecord(f"attack type {BENIGN!r} is reserved for benign runs; pass attack=None instead")
        return rc

    def as_dict(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "agent": self.agent, "attack": self.attack}

    def canonical(self) -> str:
        return canonical_json(self.as_dict())

    @property
    def hash(self) -> str:
        return self.given_hash or config_hash(self.dataset, self.agent, self.attack)

    @property
    def hash_scheme(self) -> str:
        """`sha256-8`, or `legacy` for a given hash that this package's scheme does not reproduce."""
        if self.given_hash and self.given_hash != config_hash(self.dataset, self.agent, self.attack):
            return "legacy"
        return HASH_SCHEME

    def with_hash(self, given: str | None) -> RunConfig:
        """This config under a hash from another scheme (validated as a partition value by the writer)."""
        if given is None:
            return self
        if not isinstance(given, str) or not given:
            raise InvalidRecord(f"config_hash must be a non-empty string, got {given!r}")
        return RunConfig(self.dataset, self.agent, self.attack, given)

    @property
    def partition(self) -> dict[str, str]:
        """Partition values of this config's rows: dataset/agent/attack types and the hash."""
        return {
            "dataset": self.dataset["type"],
            "agent": self.agent["type"],
            "attack": self.attack["type"] if self.attack else BENIGN,
            "config_hash": self.hash,
        }

    def to_yaml(self, created_at: datetime | None = None) -> str:
        """The Hydra-compatible snapshot stored as `configs/<hash>.yaml` (legacy `config.yaml` shape)."""
        created = (created_at or datetime.now(UTC)).isoformat().replace("+00:00", "Z")
        # allow_unicode=False: non-ASCII is written as escapes, so that YAML's own line-break
        # characters (NEL, LS, PS) inside values survive the round trip.
        body = yaml.dump(self.as_dict(), Dumper=_Dumper, sort_keys=False, allow_unicode=False)
        return f"# Config hash: {self.hash}\n# Created: {created}\n\n{body}"

    @classmethod
    def from_yaml(cls, text: str) -> RunConfig:
        data = yaml.load(text, Loader=_Loader) or {}
        return cls.of(data.get("dataset"), data.get("agent"), data.get("attack"))


def config_hash(dataset: dict[str, Any], agent: dict[str, Any], attack: dict[str, Any] | None) -> str:
    """First 8 hex characters of SHA-256 of the canonical JSON of {dataset, agent, attack}."""
    doc = canonical_json({"dataset": dataset, "agent": agent, "attack": attack})
    return hashlib.sha256(doc.encode("utf-8")).hexdigest()[:8]


#: The tuple of `config_row`, by name.
CONFIG_ROW = RowShape(
    "configs",
    (
        "dataset_type",
        "agent_type",
        "attack_type",
        "dataset_config",
        "agent_config",
        "attack_config",
        "config",
        "hash_scheme",
        "created_at",
    ),
)


def config_row(c: RunConfig, created_at: datetime) -> tuple[Any, ...]:
    """The row of table `configs` (non-partition columns) of a run configuration."""
    return (
        c.dataset["type"],
        c.agent["type"],
        c.attack["type"] if c.attack else None,
        records.json_text("dataset", c.dataset["config"]),
        records.json_text("agent", c.agent["config"]),
        records.json_text("attack", c.attack["config"]) if c.attack else None,
        c.canonical(),
        c.hash_scheme,
        created_at,
    )
