"""A `where=` filter: one boolean SQL expression over named columns, and nothing else.

Analytics (`Warehouse.scores`, `warehouse.analytics.*`, `compare`), compaction and the exports take a
filter as SQL text, which the warehouse places inside its own query. `condition()` parses that text
with DuckDB's own parser (`json_serialize_sql`), walks the parse tree, binds it against typed
columns, and returns it printed back from the tree (`json_deserialize_sql`): comments dropped, fully
parenthesised. What the warehouse splices into its query is therefore exactly what was checked.

Allowed: references to the given columns (and fields of their structs), literals, comparisons,
AND / OR / NOT, IS [NOT] NULL, IN (a list), BETWEEN, LIKE / ILIKE / GLOB / SIMILAR TO, CASE, CAST and
`::`, COLLATE, and DuckDB's deterministic scalar functions and operators (`lower`, `->>`,
`json_extract_string`, `regexp_matches`, `date_trunc`, `now()`, `list_contains`, ...).

Refused: anything but one expression (a second statement, GROUP BY, ORDER BY, LIMIT, a stray `)`),
subqueries (hence table functions such as `read_text` and other views), aggregates and window
functions, parameters (`?`, `$1`), `*` and `COLUMNS(...)`, lambdas, positional references (`#1`),
functions that read the session's state or have side effects (`current_setting`, `getvariable`,
`random`, `nextval`, `sleep_ms`, ...), and an expression that is not a boolean.

`warehouse sql` and `Warehouse.sql` are not filtered: they run any SQL, as documented.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any

import duckdb

from warehouse.core.errors import InvalidCondition

_TABLE = "__condition"
_PREFIX = f"SELECT 1 FROM {_TABLE} WHERE "
# Expression node classes a condition may contain; every other one (SUBQUERY, WINDOW, STAR,
# PARAMETER, LAMBDA, LAMBDA_REF, POSITIONAL_REFERENCE, DEFAULT, ...) is refused.
_NODES = {
    "BETWEEN",
    "CASE",
    "CAST",
    "COLLATE",
    "COLUMN_REF",
    "COMPARISON",
    "CONJUNCTION",
    "CONSTANT",
    "FUNCTION",
    "OPERATOR",
    "TYPE",
}
_WHY = {
    "SUBQUERY": "a subquery (a condition reads the columns of its own rows only)",
    "WINDOW": "a window function",
    "STAR": "* or COLUMNS(...)",
    "PARAMETER": "a parameter (? or $name): write the value itself",
    "LAMBDA": "a lambda",
    "LAMBDA_REF": "a lambda",
    "POSITIONAL_REFERENCE": "a positional reference (#n)",
}
# Scalar functions that read the session rather than the row (settings, variables, catalog,
# the query text) are not part of a condition, even though they are deterministic.
_DENIED = re.compile(
    r"^(current_(?!date$|time$|timestamp$|localtime$|localtimestamp$)|getvariable$|in_search_path$|"
    r"txid_|pg_|has_|inet_|which_secret|json_(de)?serialize_sql$|json_execute|parse_duckdb_log|"
    r"col_description$|obj_description$|shobj_description$|get_block_size$|session_user$|user$|"
    r"format_pg_type$|format_type$|map_to_pg_oid$|map_type_id_to_pg_oid$|__internal)"
)


@functools.cache
def _parser() -> duckdb.DuckDBPyConnection:
    """An empty in-memory DuckDB without file or network access, used only to parse and bind
    conditions (through a cursor per call). Kept for the process: opening one costs about 25 ms."""
    return duckdb.connect(
        config={
            "enable_external_access": False,
            "autoload_known_extensions": False,
            "autoinstall_known_extensions": False,
        }
    )


@functools.cache
def _functions() -> frozenset[str]:
    """The built-in scalar functions and macros a condition may call: deterministic, without side
    effects, and not reading the session's state."""
    rows = (
        _parser()
        .cursor()
        .execute(
            "select distinct function_name from duckdb_functions() where (function_type = 'scalar' "
            "and stability in ('CONSISTENT', 'CONSISTENT_WITHIN_QUERY') and not has_side_effects) "
            "or function_type = 'macro'"
        )
        .fetchall()
    )
    return frozenset(n for (n,) in rows if not _DENIED.match(n))


def _fail(text: str, over: str, why: str) -> InvalidCondition:
    return InvalidCondition(f"where {text!r} is not a condition over the columns of {over}: {why}")


def _check(node: Any, text: str, over: str, columns: Mapping[str, str]) -> None:
    """Refuse any node of the parse tree `node` that is not part of a plain condition."""
    if isinstance(node, list):
        for item in node:
            _check(item, text, over, columns)
        return
    if not isinstance(node, dict):
        return
    cls = node.get("class")
    if cls is None and ("select_list" in node or "from_table" in node or "node" in node):
        raise _fail(text, over, "it holds a query")
    if cls is not None:
        if cls not in _NODES:
            raise _fail(text, over, f"it holds {_WHY.get(cls, cls.lower().replace('_', ' '))}")
        if cls == "COLUMN_REF":
            names = node.get("column_names") or []
            if not names or names[0].lower() not in columns:
                shown = ".".join(names)
                raise _fail(text, over, f"unknown column {shown!r}; the columns are {', '.join(columns)}")
        elif cls == "FUNCTION":
            name = str(node.get("function_name", ""))
            if node.get("schema") or node.get("catalog") or name.lower() not in _functions():
                raise _fail(
                    text,
                    over,
                    f"function {name!r} cannot be used in a condition (only deterministic "
                    "scalar functions: no aggregates, table functions or session state)",
                )
            if node.get("filter") or node.get("order_bys", {}).get("orders") or node.get("distinct"):
                raise _fail(text, over, f"{name}(...) with FILTER, ORDER BY or DISTINCT is an aggregate")
    for key, value in node.items():
        if key != "class":
            _check(value, text, over, columns)


def condition(text: str, columns: Mapping[str, str], *, over: str = "the table") -> str:
    """Check that `text` is one boolean SQL expression over `columns` (name -> DuckDB type) and
    nothing else; return it as it will be run: printed back from its parse tree, parenthesised.

    `over` names the rows the condition filters, for the error message (e.g. "executions").
    Raises InvalidCondition (a WarehouseError and ValueError) naming `text` and what is wrong
    with it: not a string, empty, not parseable, more than one expression, an unknown column, a
    construct or function a condition may not use, or not a boolean.
    """
    if not isinstance(text, str):
        raise InvalidCondition(
            f"where must be SQL text (a condition such as \"agent = 'plain'\"), got {type(text).__name__} {text!r:.80}"
        )
    if not text.strip():
        raise InvalidCondition("where is empty: give a condition such as \"agent = 'plain'\", or no where")
    return _checked(text, tuple((str(k).lower(), str(v)) for k, v in columns.items()), over)


@functools.lru_cache(maxsize=256)
def _checked(text: str, columns: tuple[tuple[str, str], ...], over: str) -> str:
    """`condition` proper; a pure function of its arguments, so its answers are kept (a query
    builder checks the same condition several times: about 3 ms each)."""
    cols = dict(columns)
    cur = _parser().cursor()
    try:
        tree = json.loads(cur.execute("select json_serialize_sql(?)", [_PREFIX + text]).fetchall()[0][0])
        if tree.get("error"):
            message = str(tree.get("error_message") or "it does not parse").splitlines()[0]
            if "Only SELECT statements" in message:  # a second statement of another kind
                message = "it is more than one statement"
            raise _fail(text, over, message)
        statements = tree.get("statements") or []
        if len(statements) != 1:
            raise _fail(text, over, "it is more than one statement")
        node = statements[0].get("node") or {}
        where = node.get("where_clause")
        # Everything but the WHERE clause must be what the prefix alone gives: nothing was added
        # after the condition (GROUP BY, HAVING, WINDOW, QUALIFY, ORDER BY, LIMIT, ...).
        reference = json.loads(cur.execute("select json_serialize_sql(?)", [_PREFIX + "true"]).fetchall()[0][0])
        expected = dict(reference["statements"][0]["node"], where_clause=None)
        if where is None or dict(node, where_clause=None) != expected:
            raise _fail(text, over, "it is not a single expression (nothing may follow it)")
        _check(where, text, over, cols)
        printed = cur.execute("select json_deserialize_sql(?)", [json.dumps(tree)]).fetchall()[0][0]
        if not printed.startswith(_PREFIX):
            raise _fail(text, over, "it cannot be printed back as a condition")
        canonical = f"({printed[len(_PREFIX) :]})"
        typed = ", ".join(f"cast(null as {t}) as {_quote(name)}" for name, t in cols.items())
        try:
            rel = cur.sql(f"select {canonical} as c from (select {typed}) as {_TABLE}")
            kind = str(rel.types[0])
        except duckdb.Error as exc:
            raise _fail(text, over, str(exc).splitlines()[0]) from None
        if kind != "BOOLEAN":
            raise _fail(text, over, f"it is a {kind}, not a boolean (true or false)")
        return canonical
    finally:
        cur.close()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


__all__ = ["condition"]
