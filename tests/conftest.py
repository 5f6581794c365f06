"""Shared fixtures: a fresh warehouse in `tmp_path`, writers that are always closed, a realistic
multi-turn conversation with tool calls, and a run configuration (dataset, agent, attack)."""

from __future__ import annotations

import copy
import inspect
import os
import sys
import types
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest

import warehouse

DATASET = {"type": "agentdojo", "config": {"suite": "workspace", "version": "v1.2", "injection_tasks": [0, 1]}}
AGENT = {"type": "tool_agent", "config": {"model": "gpt-4o-2024-08-06", "temperature": 0.0, "max_turns": 8}}
ATTACK = {"type": "important_instructions", "config": {"template": "ignore previous instructions", "position": "end"}}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """Where the test's warehouse lives (a directory that does not exist yet)."""
    return tmp_path / "wh"


@pytest.fixture
def wh(root: Path) -> warehouse.Warehouse:
    """A fresh, empty warehouse (version 0)."""
    return warehouse.open(str(root), create=True)


@pytest.fixture
def config() -> dict[str, Any]:
    """A run configuration triple, as keyword arguments of `Warehouse.writer`."""
    return {"dataset": copy.deepcopy(DATASET), "agent": copy.deepcopy(AGENT), "attack": copy.deepcopy(ATTACK)}


@pytest.fixture
def open_writer() -> Iterator[Callable[..., warehouse.Writer]]:
    """`open_writer(wh, **kwargs)`: a writer without the background flusher, closed at teardown."""
    writers: list[warehouse.Writer] = []

    def make(wh: warehouse.Warehouse, **kwargs: Any) -> warehouse.Writer:
        kwargs.setdefault("flush_interval", None)
        w = wh.writer(**kwargs)
        writers.append(w)
        return w

    yield make
    for w in writers:
        try:
            w.close()
        except Exception:  # a test may leave a writer in a failed state on purpose
            pass


def build_messages(task: str = "Summarise my unread emails", turns: int = 2) -> list[dict[str, Any]]:
    """A realistic chat: system, user, then `turns` rounds of assistant tool calls and tool results,
    and a final assistant answer given as a list of content parts."""
    msgs: list[dict[str, Any]] = [
        {"role": "system", "content": "You are a helpful assistant with access to an email client."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": task},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            ],
        },
    ]
    for t in range(turns):
        call_id = f"call_{t}_Xq9"
        msgs.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": call_id,
                        "type": "function",
                        "function": {"name": "search_emails", "arguments": f'{{"query": "unread", "page": {t}}}'},
                    }
                ],
            }
        )
        msgs.append(
            {
                "role": "tool",
                "tool_call_id": call_id,
                "name": "search_emails",
                "content": f'[{{"from": "bob@example.com", "subject": "Réunion n°{t} 🙂"}}]',
            }
        )
    msgs.append(
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "You have 2 unread emails."},
                {"type": "text", "text": "Both are from Bob — «réunion»."},
            ],
        }
    )
    return msgs


@pytest.fixture
def make_messages() -> Callable[..., list[dict[str, Any]]]:
    """`make_messages(task=..., turns=...)`: a fresh realistic multi-turn conversation with tool calls."""
    return build_messages


def tree(path: Path) -> dict[str, bytes]:
    """Every file under `path` (relative path -> bytes)."""
    out = {}
    for dirpath, _, files in os.walk(path):
        for f in files:
            full = os.path.join(dirpath, f)
            with open(full, "rb") as fh:
                out[os.path.relpath(full, path)] = fh.read()
    return out


@pytest.fixture
def snapshot_tree() -> Callable[[Path], dict[str, bytes]]:
    """`snapshot_tree(path)`: every file under `path` with its bytes, to prove nothing changed."""
    return tree


@pytest.fixture
def children(tmp_path: Path) -> Iterator[Any]:
    """Starts scripts of tests/procs/ as real processes (see processes.py); kills leftovers at teardown."""
    from processes import Children

    logs = tmp_path / "logs"
    logs.mkdir()
    c = Children(logs)
    yield c
    c.kill_all()


# -- markers --------------------------------------------------------------------------------------
# Derived from what a test uses, so that they cannot drift: the fixtures it requests (directly or
# through other fixtures), and whether it, a fixture or a helper it calls starts processes.
MARKER_FIXTURES = {"s3": {"s3"}, "postgres": {"pg_server"}, "subprocess": {"children"}}
REPO = Path(__file__).resolve().parents[1]
#: Names whose use means starting a process; `torture`, `processes` and `warehouse.demo`, which
#: start them, are found through PROCESS_WORDS in their source.
PROCESS_NAMES = frozenset({"subprocess", "Popen", "multiprocessing", "ProcessPoolExecutor", "NotebookClient"})
PROCESS_WORDS = ("subprocess", "Popen(", "ProcessPoolExecutor", "multiprocessing")


def _names(code: types.CodeType) -> set[str]:
    """The global and attribute names `code` and the functions nested in it use."""
    out = set(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            out |= _names(const)
    return out


def _in_repo(path: str | None) -> bool:
    return bool(path) and Path(path).resolve().is_relative_to(REPO) and ".venv" not in Path(path).parts


@cache
def _module_starts_processes(name: str) -> bool:
    module = sys.modules.get(name)
    path = getattr(module, "__file__", None)
    if not _in_repo(path) or Path(path).name == "conftest.py" or Path(path).name.startswith("test_"):
        return False  # (their functions are looked at one by one)
    return any(word in Path(path).read_text(encoding="utf-8") for word in PROCESS_WORDS)


@cache
def _starts_processes(func: Callable[..., Any]) -> bool:
    """Whether `func` (a test, fixture or helper of this repository) may start a process: it uses
    one of PROCESS_NAMES, or calls a helper of tests/ that does, or uses a module of the repository
    (outside the test modules) whose source starts processes."""
    func = inspect.unwrap(func)
    code = getattr(func, "__code__", None)
    if code is None or not _in_repo(code.co_filename):
        return False
    names = _names(code)
    if names & PROCESS_NAMES:
        return True
    scope = getattr(func, "__globals__", {})
    for name in names:
        value = scope.get(name)
        if isinstance(value, types.ModuleType):
            if _module_starts_processes(value.__name__):
                return True
        elif (
            isinstance(value, types.FunctionType)
            and value is not func
            and (_module_starts_processes(value.__module__) or _starts_processes(value))
        ):
            return True
    return False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for marker, fixtures in MARKER_FIXTURES.items():
            if used & fixtures:
                item.add_marker(marker)
        if "subprocess" in item.keywords:
            continue
        defs = getattr(item, "_fixtureinfo", None)
        funcs = [getattr(item, "function", None)]
        if defs is not None:
            funcs += [d.func for name in used for d in defs.name2fixturedefs.get(name, ())]
        if any(f is not None and _starts_processes(f) for f in funcs):
            item.add_marker("subprocess")


# The S3-API server fixtures (a real server process on 127.0.0.1), shared by the S3 and sync tests.
from s3_server import s3, s3_options, s3_url  # noqa: E402,F401
