"""Groupings and selection of the analytics queries: the keys results may be grouped by (`groups`),
the executions a query aggregates (`_source`, `_filter`: finished ones, checks optionally left out,
the caller's `where`), and the check that a JSON-path grouping names a key some execution has
(`check_keys`). See `warehouse.read.analytics` for the grouping keys users can give.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from warehouse.core.condition import condition
from warehouse.core.errors import InvalidArgument
from warehouse.core.schemas import catalog
from warehouse.engine.engine import HasEngine, of

#: Columns of the `executions` view that results may be grouped by.
EXECUTION_GROUPS = ("dataset", "agent", "attack", "config_hash", "model", "run_id", "task_id", "status")
#: Named groupings taken from the configuration (a join with `configs`): the macros of
#: schemas/views/00_macros.sql, which the `scores` view uses too.
CONFIG_GROUPS = {
    "suite": "config_suite(dataset_config)",
    "agent_model": "config_agent_model(agent_config)",
}
#: Prefixes of JSON-path groupings: `metadata.KEY` (the execution's) and `<part>_config.KEY` (the configuration's).
JSON_PREFIXES = ("metadata", "dataset_config", "agent_config", "attack_config")
_KEY = re.compile(r"^[A-Za-z0-9_\-]+(\.[A-Za-z0-9_\-]+)*$")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass(frozen=True)
class Group:
    """One grouping key: its output column `name`, its SQL expression, whether it needs `configs`."""

    name: str
    expr: str
    from_config: bool = False


def groups(by: str | Sequence[str] | None) -> list[Group]:
    """Parse a grouping (`"agent,attack"`, `["suite", "metadata.difficulty"]`, `"all"`, `()`).

    Raises InvalidArgument naming a key that is not a grouping.
    """
    if by is None:
        return []
    names = by.split(",") if isinstance(by, str) else list(by)
    out: list[Group] = []
    for raw in names:
        name = str(raw).strip()
        if not name or name == "all":
            continue
        if name in EXECUTION_GROUPS:
            g = Group(name, name)
        elif name in CONFIG_GROUPS:
            g = Group(name, _quote(name), from_config=True)
        elif "." in name and name.split(".", 1)[0] in JSON_PREFIXES:
            prefix, key = name.split(".", 1)
            if not _KEY.match(key):
                raise InvalidArgument(
                    f"cannot group by {name!r}: a JSON key is letters, digits, '_' or '-', nested keys separated by '.'"
                )
            if prefix == "metadata":
                g = Group(name, f"json_extract_string(metadata, {_json_path(key)})")
            else:
                g = Group(name, _quote(name), from_config=True)
        else:
            raise InvalidArgument(
                f"cannot group by {name!r}; choose from {', '.join(EXECUTION_GROUPS)}, "
                f"{', '.join(CONFIG_GROUPS)}, metadata.KEY, dataset_config.KEY, agent_config.KEY, "
                "attack_config.KEY or 'all'"
            )
        if g.name not in {x.name for x in out}:
            out.append(g)
    return out


def _json_path(key: str) -> str:
    return "'$." + ".".join(f'"{seg}"' for seg in key.split(".")) + "'"


def _where(where: str | None) -> str | None:
    """`where` checked as one boolean SQL expression over the columns of `executions` (and the
    configuration's `suite` and `agent_model`), as it is run; None when no condition is given.
    Raises InvalidCondition naming the text (see `warehouse.condition`)."""
    if where is None or where == "":
        return None
    columns = {c.name: c.duckdb_type for c in catalog().table("executions").columns}
    columns.update((name, "VARCHAR") for name in CONFIG_GROUPS)
    return condition(where, columns, over="executions")


def _source(gs: Sequence[Group], where: str | None) -> str:
    """The executions to aggregate: the `executions` view, joined with the configuration's derived
    columns only when a grouping (or the `where` condition) uses them."""
    where = _where(where)
    derived = dict(CONFIG_GROUPS)
    for g in gs:
        if g.from_config and g.name not in derived:
            prefix, key = g.name.split(".", 1)
            derived[g.name] = f"json_extract_string({prefix}, {_json_path(key)})"
    mentioned = where is not None and any(re.search(rf"\b{re.escape(n)}\b", where) for n in CONFIG_GROUPS)
    if not any(g.from_config for g in gs) and not mentioned:
        return "executions"
    cols = ", ".join(f"{expr} as {_quote(name)}" for name, expr in derived.items())
    # Joined on every partition column, so that a partition filter on the executions prunes the
    # configs' files too (the `configs` view's window would stop it); one row per config_hash.
    pcols = ", ".join(catalog().partition_columns)
    configs = (
        f"select {pcols}, arg_min(dataset_config, created_at) as dataset_config, "
        f"arg_min(agent_config, created_at) as agent_config, arg_min(attack_config, created_at) as attack_config "
        f"from raw_configs group by {pcols}"
    )
    return (
        f"(select * from executions left join (select {pcols}, {cols} from ({configs}) as c0) as c "
        f"using ({pcols})) as executions"
    )


#: Suffix of the datasets whose executions are checks, not measurements (see the module docstring).
CHECKS_SUFFIX = ".checks"


def _filter(where: str | None, checks: bool = True) -> str:
    """Finished executions (and, unless `checks`, no checks), and the caller's condition."""
    where = _where(where)
    return (
        "where status <> 'running'"
        + ("" if checks else " and not is_check(dataset)")
        + (f" and {where}" if where else "")
    )


def check_keys(wh: HasEngine, by: str | Sequence[str] | None, where: str | None = None) -> None:
    """Raise InvalidArgument when a `metadata.KEY` or `<part>_config.KEY` grouping names a key that none
    of the finished executions `where` selects has (in its metadata, or its configuration), listing
    the keys there are: a typo would otherwise give one row of NULLs. One query per such grouping,
    over the partitions `where` selects, stopping at the first row that has the key; no query for
    the other groupings; no error when no execution is selected at all."""
    from warehouse.core.errors import InvalidArgument

    eng = of(wh)
    for g in groups(by):
        prefix, _, key = g.name.partition(".")
        if not key or prefix not in JSON_PREFIXES:
            continue
        rows = f"select 1 from {_source([g], where)} {_filter(where)}"
        has = f"json_exists(metadata, {_json_path(key)})" if prefix == "metadata" else f"{_quote(g.name)} is not null"
        # (two plain `limit 1` queries, the second only on a miss: ~7 ms at 300k executions, where one
        # query of two EXISTS took twice that)
        if (
            eng.sql_sandboxed(f"{rows} and {has} limit 1").fetchall()
            or not eng.sql_sandboxed(f"{rows} limit 1").fetchall()
        ):
            continue
        parent, _, leaf = key.rpartition(".")
        at = _json_path(parent) if parent else "'$'"
        source = f"{_source([], where)} {_filter(where)}" if prefix == "metadata" else "raw_configs where true"
        keys = [
            r[0]
            for r in eng.sql_sandboxed(
                f"select distinct unnest(json_keys({prefix}, {at})) as k from {source} "
                f"and json_type({prefix}, {at}) = 'OBJECT' order by k limit 51"
            ).fetchall()
        ]
        path = f"{prefix}.{parent}" if parent else prefix
        listed = ", ".join(f"{path}.{k}" for k in keys[:50]) + (", ..." if len(keys) > 50 else "")
        owner = "execution's metadata" if prefix == "metadata" else f"configuration's {prefix}"
        raise InvalidArgument(
            f"cannot group by {g.name!r}: no {owner} has the key {leaf!r}"
            + (f" in {path}" if parent else "")
            + (" (of the executions `where` selects)" if where else "")
            + (f"; the keys there are {listed}" if keys else f"; no {path} is an object with keys")
        )


def _checks_keys(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Run `check_keys` on the function's `wh`, `by` and `where` before it."""
    signature = inspect.signature(fn)

    @functools.wraps(fn)
    def checked(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        check_keys(bound.arguments["wh"], bound.arguments["by"], bound.arguments["where"])
        return fn(*args, **kwargs)

    return checked
