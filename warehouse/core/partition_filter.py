"""Which partitions a `where` selects, for compaction and the Parquet and Delta exports (which work
on whole files, so they filter by partition).

A filter is an SQL condition over the partition columns (dataset, agent, attack, config_hash), in
the grammar of `Warehouse.scores(where=...)` (`warehouse.condition`), evaluated by DuckDB over the
partitions the manifest names: `"dataset = 'agentdojo' and attack <> 'none'"`. Two older forms
are kept as aliases of it:

- a dict, `{"agent": "plain", "attack": "none"}` (the Python API's `partition=` and `where=`);
- text made only of `column=value` pairs separated by commas, with no quote, space, comma,
  parenthesis, `=`, `<`, `>` or `!` in a value: `"agent=plain,attack=none"` means
  `agent = 'plain' and attack = 'none'`. Text of any other shape is read as SQL.

A filter naming a column that is not a partition column, or matching no partition of the
snapshot, is an error (a typo must not export or compact nothing and report success).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import duckdb

from warehouse.core.condition import condition
from warehouse.core.errors import InvalidArgument, InvalidArgumentType, InvalidCondition
from warehouse.core.schemas import catalog

PartitionValues = tuple[str | None, ...]  # the values of the partition columns, in their order

_VALUE = r"[^\s,'\"=()<>!]+"
_PAIR = rf"\s*[A-Za-z_]\w*\s*=\s*{_VALUE}\s*"
_PAIRS = re.compile(rf"^{_PAIR}(,{_PAIR})*$")
_LOOSE_PAIRS = re.compile(r"^\s*[A-Za-z_]\w*\s*=[^=]")
#: Values shown per column when a filter matches nothing.
_SHOWN = 8


def column_value_pairs(text: str) -> dict[str, str] | None:
    """The pairs of a `column=value,column=value` text of the alias shape (see the module
    docstring), unchecked; None for text of any other shape (which is SQL)."""
    if not _PAIRS.match(text):
        return None
    return {k.strip(): v.strip() for k, _, v in (p.partition("=") for p in text.split(","))}


def parse_partition(text: str) -> dict[str, str]:
    """`agent=plain,attack=none` -> {"agent": "plain", "attack": "none"}; keys must be partition
    columns. Raises InvalidCondition naming the bad part."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = part.partition("=")
        if not eq or not key.strip() or not value.strip():
            raise InvalidCondition(
                f"bad partition filter {part!r}: give an SQL condition on the partition columns, "
                "e.g. \"agent = 'tool_agent' and attack = 'none'\" (or column=value pairs "
                "separated by commas, e.g. agent=tool_agent,attack=none)"
            )
        out[key.strip()] = value.strip()
    return check_partition(out) or {}


def check_partition(partition: Mapping[str, str] | None) -> dict[str, str] | None:
    """`partition` checked as a dict of partition column -> value (None stays None).
    Raises InvalidArgument naming a key that is not a partition column, InvalidArgumentType for a
    value that is not text."""
    if partition is None:
        return None
    if not isinstance(partition, Mapping):
        raise InvalidArgumentType(f"partition must be a dict of partition column -> value, got {partition!r}")
    cols = catalog().partition_columns
    for k, v in partition.items():
        if k not in cols:
            raise InvalidArgument(f"cannot filter partitions by {k!r}; partition columns are {', '.join(cols)}")
        if not isinstance(v, str):
            raise InvalidArgumentType(f"partition value of {k} must be a string, got {v!r}")
    return dict(partition)


def values_of(partition: Mapping[str, str]) -> PartitionValues:
    """The values of a partition dict, in partition-column order."""
    return tuple(partition.get(c) for c in catalog().partition_columns)


class PartitionFilter:
    """A partition filter (see the module docstring): `matches(partition)`, `require(partitions)`."""

    def __init__(self, where: str | Mapping[str, str]) -> None:
        self.text = (
            where if isinstance(where, str) else repr(dict(where)) if isinstance(where, Mapping) else repr(where)
        )
        self.pairs: dict[str, str] | None = None
        self.sql: str | None = None
        if isinstance(where, str) and column_value_pairs(where) is not None:
            self.pairs = parse_partition(where)
        elif isinstance(where, str):
            try:
                self.sql = condition(
                    where,
                    {c: "VARCHAR" for c in catalog().partition_columns},
                    over="partitions (dataset, agent, attack, config_hash)",
                )
            except InvalidCondition as exc:
                if _LOOSE_PAIRS.match(where):  # meant as column=value pairs, with a value SQL cannot read bare
                    raise InvalidCondition(
                        f"{exc}. column=value pairs are read as such only when no value holds a "
                        "quote, space, comma, parenthesis, '=', '<', '>' or '!'; otherwise write "
                        "SQL with quoted values: agent = 'my agent' and attack = 'none'"
                    ) from None
                raise
        else:
            self.pairs = check_partition(where)
        self._known: dict[PartitionValues, bool] = {}

    def __repr__(self) -> str:
        return f"PartitionFilter({self.text!r})"

    def evaluate(self, partitions: Iterable[Mapping[str, str]]) -> set[PartitionValues]:
        """The partitions among `partitions` that the filter selects (one query for all of them)."""
        keys = {values_of(p) for p in partitions}
        todo = [k for k in keys if k not in self._known]
        if todo and self.pairs is not None:
            cols = catalog().partition_columns
            for k in todo:
                self._known[k] = all(dict(zip(cols, k)).get(c) == v for c, v in self.pairs.items())
        elif todo:
            cols = catalog().partition_columns
            unnest = ", ".join(f"unnest(?::VARCHAR[]) as {c}" for c in cols)
            # No file, network or setting is reachable from this connection: the condition was
            # checked already, this is the second wall.
            con = duckdb.connect(
                config={
                    "enable_external_access": False,
                    "autoload_known_extensions": False,
                    "autoinstall_known_extensions": False,
                }
            )
            try:
                hits = con.execute(
                    f"select {', '.join(cols)} from (select {unnest}) as partitions where {self.sql}",
                    [[k[i] for k in todo] for i in range(len(cols))],
                ).fetchall()
            except duckdb.Error as exc:
                raise InvalidCondition(f"partition filter {self.text!r}: {str(exc).splitlines()[0]}") from None
            finally:
                con.close()
            selected = set(map(tuple, hits))
            for k in todo:
                self._known[k] = k in selected
        return {k for k in keys if self._known[k]}

    def matches(self, partition: Mapping[str, str]) -> bool:
        """True if the filter selects `partition` (a dict of partition column -> value)."""
        key = values_of(partition)
        if key not in self._known:
            self.evaluate([partition])
        return self._known[key]

    def require(self, partitions: Iterable[Mapping[str, str]]) -> set[PartitionValues]:
        """`evaluate`, raising WarehouseError if the filter selects none of `partitions`, with the
        values the partitions do have."""
        partitions = list(partitions)
        selected = self.evaluate(partitions)
        if selected:
            return selected
        cols = catalog().partition_columns
        have = []
        for i, c in enumerate(cols):
            values = sorted({values_of(p)[i] or "" for p in partitions})
            shown = ", ".join(repr(v) for v in values[:_SHOWN]) + (", ..." if len(values) > _SHOWN else "")
            have.append(f"{c} in ({shown})")
        raise InvalidArgument(
            f"where {self.text!r} matches no partition"
            + (f"; the partitions have {'; '.join(have)}" if partitions else ": the warehouse is empty")
        )


def partition_filter(where: str | Mapping[str, str] | PartitionFilter | None) -> PartitionFilter | None:
    """`where` as a PartitionFilter (None, or an empty dict or text: no filter). Raises
    InvalidCondition for SQL that is not one condition on the partition columns, WarehouseError
    for a bad dict or column=value pair."""
    if where is None or isinstance(where, PartitionFilter):
        return where
    if isinstance(where, (str, Mapping)) and not where:
        return None
    if not isinstance(where, (str, Mapping)):
        raise InvalidArgumentType(
            f"a partition filter is an SQL condition on {', '.join(catalog().partition_columns)} "
            f"or a dict of them, got {type(where).__name__} {where!r:.80}"
        )
    return PartitionFilter(where)


__all__ = [
    "PartitionFilter",
    "partition_filter",
    "column_value_pairs",
    "parse_partition",
    "check_partition",
    "values_of",
]
