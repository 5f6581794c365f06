"""`warehouse import postgres URL`: the results service's database, read from a real PostgreSQL
server (tests/pg_server.py) holding the service's four tables, created as its Prisma migration
creates them and filled with realistic rows: multi-turn results with tool calls (OpenAI-style and
LangChain-serialised), a failed and a running result, logs, nested trace spans, several checkpoints
per execution, unicode and long texts, and one row that cannot be mapped."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from pg_server import PgServer, free_port, pg_server  # noqa: F401  (the session fixture)
from psycopg.types.json import Jsonb

import warehouse
from warehouse.core.errors import ImportFailed
from warehouse.interop.importers import postgres as pgi

# The tables as the service's migration (`prisma migrate dev` of prisma/schema.prisma) creates them.
DDL = """
CREATE TABLE "AgentResult" (
    "id" TEXT NOT NULL,
    "agentId" TEXT NOT NULL,
    "checkpointId" TEXT,
    "questId" TEXT,
    "result" TEXT NOT NULL,
    "metadata" JSONB NOT NULL,
    "status" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "completedAt" TIMESTAMP(3),
    CONSTRAINT "AgentResult_pkey" PRIMARY KEY ("id")
);
CREATE TABLE "ExecutionLog" (
    "id" TEXT NOT NULL,
    "agentId" TEXT NOT NULL,
    "executionId" TEXT NOT NULL,
    "level" TEXT NOT NULL,
    "message" TEXT NOT NULL,
    "source" TEXT,
    "timestamp" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "ExecutionLog_pkey" PRIMARY KEY ("id")
);
CREATE TABLE "CheckpointState" (
    "id" TEXT NOT NULL,
    "agentId" TEXT NOT NULL,
    "checkpointId" TEXT NOT NULL,
    "state" JSONB NOT NULL,
    "threadId" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "CheckpointState_pkey" PRIMARY KEY ("id")
);
CREATE TABLE "AgentTrace" (
    "id" TEXT NOT NULL,
    "agentId" TEXT NOT NULL,
    "executionId" TEXT NOT NULL,
    "type" TEXT NOT NULL,
    "content" TEXT NOT NULL,
    "metadata" JSONB,
    "timestamp" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "duration" INTEGER,
    CONSTRAINT "AgentTrace_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "AgentResult_agentId_idx" ON "AgentResult"("agentId");
CREATE INDEX "AgentResult_checkpointId_idx" ON "AgentResult"("checkpointId");
CREATE INDEX "AgentResult_questId_idx" ON "AgentResult"("questId");
CREATE INDEX "ExecutionLog_agentId_idx" ON "ExecutionLog"("agentId");
CREATE INDEX "ExecutionLog_executionId_idx" ON "ExecutionLog"("executionId");
CREATE UNIQUE INDEX "CheckpointState_checkpointId_key" ON "CheckpointState"("checkpointId");
CREATE INDEX "CheckpointState_agentId_idx" ON "CheckpointState"("agentId");
CREATE INDEX "CheckpointState_threadId_idx" ON "CheckpointState"("threadId");
CREATE INDEX "AgentTrace_agentId_idx" ON "AgentTrace"("agentId");
CREATE INDEX "AgentTrace_executionId_idx" ON "AgentTrace"("executionId");
"""

T0 = datetime(2026, 2, 12, 8, 41, 58, 123000)  # Prisma's timestamp(3): UTC, no zone
EXEC_DONE = "exec_1770885718123_k3j9x"
EXEC_FAILED = "exec_1770885900456_p0q7z"
EXEC_RESUMED = "resume_1770886000789_a1b2c"
EXEC_RUNNING = "exec_1770886100001_zz9y8"
TASK = "Trouve la dernière version de PostgreSQL et résume ses nouveautés 🐘"
LONG_RESULT = "## PostgreSQL 18 — résumé\n" + "".join(
    f"- Point {i}: asynchronous I/O, uuidv7(), virtual generated columns, OAuth… ✓\n" for i in range(400)
)
STACK = "Error: ECONNRESET\n" + "".join(f"    at fetchPage (/app/lib/tools/fetch.ts:{40 + i}:13)\n" for i in range(60))

MESSAGES = [
    {
        "role": "system",
        "content": "You are an AI agent executing a software development task. Be concise and practical.",
    },
    {"role": "user", "content": TASK},
    {
        "role": "assistant",
        "content": "Je cherche d'abord les notes de version.",
        "tool_calls": [
            {
                "id": "call_8fK2",
                "type": "function",
                "function": {
                    "name": "tavily_search_results_json",
                    "arguments": '{"query": "PostgreSQL 18 release notes"}',
                },
            }
        ],
    },
    {
        "role": "tool",
        "tool_call_id": "call_8fK2",
        "name": "tavily_search_results_json",
        "content": '[{"url": "https://www.postgresql.org/about/news/", "content": "PostgreSQL 18 Released! — «asynchronous I/O»"}]',
    },
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [
            {
                "id": "call_9xQ1",
                "type": "function",
                "function": {
                    "name": "fetch_page",
                    "arguments": '{"url": "https://www.postgresql.org/docs/18/release-18.html"}',
                },
            }
        ],
    },
    {"role": "tool", "tool_call_id": "call_9xQ1", "name": "fetch_page", "content": "E.1. Release 18 … " * 200},
    {"role": "assistant", "content": LONG_RESULT},
]
LC_MESSAGES = [
    {
        "lc": 1,
        "type": "constructor",
        "id": ["langchain_core", "messages", "HumanMessage"],
        "kwargs": {"content": "Resume: add the changelog link 🔗", "additional_kwargs": {}, "response_metadata": {}},
    },
    {
        "lc": 1,
        "type": "constructor",
        "id": ["langchain_core", "messages", "AIMessage"],
        "kwargs": {
            "content": "",
            "tool_calls": [
                {
                    "name": "tavily_search_results_json",
                    "args": {"query": "pg 18 changelog"},
                    "id": "toolu_01",
                    "type": "tool_call",
                }
            ],
            "invalid_tool_calls": [],
            "additional_kwargs": {},
            "usage_metadata": {"input_tokens": 812, "output_tokens": 41, "total_tokens": 853},
            "response_metadata": {"model": "glm-4.6", "stop_reason": "tool_use"},
            "id": "msg_01",
        },
    },
    {
        "lc": 1,
        "type": "constructor",
        "id": ["langchain_core", "messages", "ToolMessage"],
        "kwargs": {
            "content": "https://www.postgresql.org/docs/release/18.0/",
            "tool_call_id": "toolu_01",
            "name": "tavily_search_results_json",
            "additional_kwargs": {},
            "response_metadata": {},
        },
    },
    {
        "lc": 1,
        "type": "constructor",
        "id": ["langchain_core", "messages", "AIMessage"],
        "kwargs": {
            "content": [{"type": "text", "text": "Lien ajouté : https://www.postgresql.org/docs/release/18.0/"}],
            "tool_calls": [],
            "invalid_tool_calls": [],
            "additional_kwargs": {},
            "response_metadata": {},
        },
    },
]


def _t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC)


def _result(
    id: str,
    status: str,
    metadata: dict[str, Any],
    *,
    result: str = "",
    agent: str = "agent-001",
    checkpoint: str | None = "quest-3/checkpoint-2",
    quest: str | None = "quest-3",
    at: float = 0,
    done: float | None = None,
) -> tuple:
    return (id, agent, checkpoint, quest, result, Jsonb(metadata), status, _t(at), None if done is None else _t(done))


RESULTS = [
    _result(
        "3f9c1a52-7d1e-4c55-9a8e-0b6f2e1d4c01",
        "completed",
        {
            "task": TASK,
            "estimatedTokens": 1800,
            "recursionLimit": 100,
            "executionId": EXEC_DONE,
            "iterationCount": 2,
            "todos": [{"content": "Lire les notes de version", "status": "completed"}],
            "messages": MESSAGES,
        },
        result=LONG_RESULT,
        at=0,
        done=42.5,
    ),
    _result(
        "8a2b3c4d-0000-4e5f-8a9b-1c2d3e4f5a02",
        "failed",
        {
            "task": "Deploy the castle 🏰 to production",
            "executionId": EXEC_FAILED,
            "error": "Recursion limit of 100 reached without hitting a stop condition.",
            "errorType": "recursion_limit",
            "isRecoverable": False,
            "checkpointSaved": False,
            "stepsCompleted": 100,
        },
        agent="agent-007",
        checkpoint="quest-9/checkpoint-1",
        quest="quest-9",
        at=100,
        done=160,
    ),
    _result(
        "c0ffee00-1111-4222-8333-444455556603",
        "completed",
        {
            "resumedFrom": "quest-3/checkpoint-2",
            "originalTask": TASK,
            "additionalInstructions": None,
            "executionId": EXEC_RESUMED,
            "previousSteps": 2,
            "newSteps": 1,
            "totalSteps": 3,
            "messages": LC_MESSAGES,
        },
        result="Lien ajouté : https://www.postgresql.org/docs/release/18.0/",
        checkpoint=None,
        quest=None,
        at=200,
        done=215,
    ),
    _result(
        "d1d2d3d4-2222-4333-8444-555566667704",
        "running",
        {"task": "Map the northern forest", "estimatedTokens": 900, "recursionLimit": 50, "executionId": EXEC_RUNNING},
        agent="agent-042",
        checkpoint="quest-1/checkpoint-4",
        quest="quest-1",
        at=300,
    ),
]
BAD_RESULT_ID = "bad00000-3333-4444-8555-666677778805"
BAD_RESULT = _result(
    BAD_RESULT_ID,
    "completed",
    {
        "task": "Scout",
        "executionId": "exec_1770886200000_bad00",
        "messages": [{"role": "user", "content": "Scout the river"}, {"content": "a message without a role"}],
    },
    result="done",
    at=400,
    done=401,
)

LOGS = [
    ("log-0001", "agent-001", EXEC_DONE, "info", f"Execution started: {TASK}", "execute-route", _t(0.01)),
    ("log-0002", "agent-001", EXEC_DONE, "warn", "Approaching iteration limit (80/100)", "agent-callback", _t(20)),
    (
        "log-0003",
        "agent-001",
        EXEC_DONE,
        "error",
        "Tool error: fetch failed — " + "ü" * 12000,
        "agent-callback",
        _t(30),
    ),
    (
        "log-0004",
        "agent-001",
        EXEC_DONE,
        "info",
        "Execution completed successfully (2 iterations)",
        "execute-route",
        _t(42.4),
    ),
    (
        "log-0005",
        "agent-007",
        EXEC_FAILED,
        "error",
        "Execution failed (failed_permanent): Recursion limit of 100 reached without hitting a stop condition.",
        "execute-route",
        _t(160),
    ),
    ("log-0006", "agent-007", EXEC_FAILED, "warn", "Retry attempt 1 after error: 503. Waiting 2000ms", None, _t(120)),
]
TRACES = [  # nested spans: search (run-A) encloses fetch (run-B); then a failing fetch (run-C)
    (
        "tr-01",
        "agent-001",
        EXEC_DONE,
        "tool_start",
        "Tool: tavily_search_results_json",
        {
            "input": '{"query": "PostgreSQL 18 release notes"}',
            "iteration": 1,
            "runId": "run-A",
            "parentRunId": "run-root",
        },
        _t(1),
        None,
    ),
    (
        "tr-02",
        "agent-001",
        EXEC_DONE,
        "tool_start",
        "Tool: fetch_page",
        {
            "input": "https://www.postgresql.org/docs/18/release-18.html",
            "iteration": 2,
            "runId": "run-B",
            "parentRunId": "run-A",
        },
        _t(2),
        None,
    ),
    (
        "tr-03",
        "agent-001",
        EXEC_DONE,
        "tool_end",
        "E.1. Release 18 … " * 55,
        {"runId": "run-B", "parentRunId": "run-A"},
        _t(2.42),
        420,
    ),
    (
        "tr-04",
        "agent-001",
        EXEC_DONE,
        "tool_end",
        '[{"url": "https://www.postgresql.org/about/news/"}]',
        {"runId": "run-A", "parentRunId": "run-root"},
        _t(3.337),
        2337,
    ),
    (
        "tr-05",
        "agent-001",
        EXEC_DONE,
        "tool_start",
        "Tool: fetch_page",
        {"input": "https://example.invalid/ünïcode", "iteration": 3, "runId": "run-C"},
        _t(29),
        None,
    ),
    ("tr-06", "agent-001", EXEC_DONE, "tool_error", "ECONNRESET", {"stack": STACK, "runId": "run-C"}, _t(30), None),
    ("tr-07", "agent-007", EXEC_FAILED, "tool_end", "ok", None, _t(130), 15),
]


def _state(step: int, eid: str | None, outputs: int) -> dict[str, Any]:
    s = {
        "step": step,
        "task": TASK,
        "partialResults": [f"résultat partiel {i}" for i in range(step)],
        "toolOutputs": [
            {
                "toolName": "tavily",
                "input": "",
                "output": "x" * 1000,
                "timestamp": "2026-02-12T08:42:00.000Z",
                "duration": 420 + i,
            }
            for i in range(outputs)
        ],
        "agentState": {"todos": [{"content": "Lire", "status": "in_progress"}]},
        "timestamp": "2026-02-12T08:41:58.123Z",
    }
    if eid is not None:
        s["metadata"] = {"agentId": "agent-001", "checkpointId": "quest-3/checkpoint-2", "executionId": eid}
    return s


CHECKPOINTS = [
    ("cs-01", "agent-001", "cp-done-1", Jsonb(_state(1, EXEC_DONE, 1)), f"thread_{EXEC_DONE}", _t(2.5)),
    ("cs-02", "agent-001", "cp-done-2", Jsonb(_state(2, EXEC_DONE, 2)), f"thread_{EXEC_DONE}", _t(3.4)),
    ("cs-03", "agent-001", "cp-done-3", Jsonb(_state(3, EXEC_DONE, 3)), f"thread_{EXEC_DONE}", _t(30.1)),
    # saved without state.metadata: the execution comes from the thread id
    (
        "cs-04",
        "agent-042",
        "cp-running-1",
        Jsonb({"step": 1, "task": "Map the northern forest"}),
        f"thread_{EXEC_RUNNING}",
        _t(301),
    ),
]


def _insert(conn: psycopg.Connection, table: str, rows: list[tuple]) -> None:
    if rows:
        marks = ", ".join(["%s"] * len(rows[0]))
        with conn.cursor() as cur:
            cur.executemany(f'insert into "{table}" values ({marks})', rows)


@pytest.fixture()
def db(pg_server: PgServer) -> str:
    """A fresh database of the results service holding the fixture rows; its URL."""
    url = pg_server.create_database("results_service")
    with psycopg.connect(url) as conn:
        conn.execute(DDL)
        _insert(conn, "AgentResult", RESULTS + [BAD_RESULT])
        _insert(conn, "ExecutionLog", LOGS)
        _insert(conn, "AgentTrace", [(*r[:5], None if r[5] is None else Jsonb(r[5]), *r[6:]) for r in TRACES])
        _insert(conn, "CheckpointState", CHECKPOINTS)
    return url


@pytest.fixture()
def wh(tmp_path) -> warehouse.Warehouse:
    return warehouse.open(str(tmp_path / "wh"), create=True)


def _execute(url: str, query: str, params: Any = None) -> None:
    with psycopg.connect(url) as conn:
        conn.execute(query, params)


def _rows(wh: warehouse.Warehouse, query: str, params: list | None = None) -> list[dict[str, Any]]:
    return wh.engine.records(query, params)


# -- tests ---------------------------------------------------------------------------------------
def test_every_column_lands_where_it_should(wh, db, pg_server):
    report = wh.import_("postgres", db)
    n = len(RESULTS) + 1 + len(LOGS) + len(TRACES) + len(CHECKPOINTS)
    assert (report.sources, report.imported, report.skipped) == (n, n - 1, 0)
    # the row that cannot be mapped: reported with where it is and why; nothing of it stored
    [failure] = report.failed
    assert failure.source == f"127.0.0.1:{pg_server.port}/results_service AgentResult/{BAD_RESULT_ID}"
    assert "messages[1].role must be a non-empty string" in failure.reason
    assert +report.records == {
        "executions": 3,
        "executions_live": 1,
        "messages": len(MESSAGES) + len(LC_MESSAGES),
        "events": len(LOGS) + len(TRACES),
        "snapshots": len(CHECKPOINTS),
    }
    assert len(report.versions) == 1
    # the ledger and the report never show the password of the connection URL
    assert pg_server.password in db
    assert pg_server.password not in report.path
    assert pg_server.password not in wh.sql("select distinct root from imports").fetchall()[0][0]

    # AgentResult -> executions
    ex = {r["execution_id"]: r for r in _rows(wh, "select * from executions")}
    assert set(ex) == {EXEC_DONE, EXEC_FAILED, EXEC_RESUMED, EXEC_RUNNING}
    done = ex[EXEC_DONE]
    assert (done["task_id"], done["status"], done["owner"], done["result"], done["revision"]) == (
        "quest-3/checkpoint-2",
        "completed",
        "agent-001",
        LONG_RESULT,
        0,
    )
    assert (done["started_at"], done["finished_at"], done["duration_ms"]) == (_utc(T0), _utc(_t(42.5)), 42500.0)
    assert (done["dataset"], done["agent"], done["attack"]) == ("results-service", "results-service", "none")
    meta = json.loads(done["metadata"])
    assert meta == {
        "task": TASK,
        "estimatedTokens": 1800,
        "recursionLimit": 100,
        "iterationCount": 2,
        "todos": [{"content": "Lire les notes de version", "status": "completed"}],
        "results_service": {
            "id": RESULTS[0][0],
            "checkpointId": "quest-3/checkpoint-2",
            "questId": "quest-3",
            "status": "completed",
        },
    }
    assert wh.execution(EXEC_DONE)["messages"] == MESSAGES  # the conversation, as written
    failed = ex[EXEC_FAILED]
    assert (failed["status"], failed["error"], failed["owner"], failed["result"]) == (
        "failed",
        "Recursion limit of 100 reached without hitting a stop condition.",
        "agent-007",
        "",
    )
    assert json.loads(failed["metadata"])["errorType"] == "recursion_limit"
    resumed = ex[EXEC_RESUMED]
    assert resumed["task_id"] == RESULTS[2][0]  # no quest checkpoint: the row id
    lc = wh.execution(EXEC_RESUMED)["messages"]
    assert [m["role"] for m in lc] == ["user", "assistant", "tool", "assistant"]
    assert lc[1]["tool_calls"] == LC_MESSAGES[1]["kwargs"]["tool_calls"]
    assert lc[1]["metadata"]["langchain"]["kwargs"]["usage_metadata"]["output_tokens"] == 41
    assert (lc[2]["tool_call_id"], lc[2]["name"]) == ("toolu_01", "tavily_search_results_json")
    assert lc[3]["content"] == LC_MESSAGES[3]["kwargs"]["content"]
    running = ex[EXEC_RUNNING]
    assert (running["status"], running["revision"], running["finished_at"], running["task_id"]) == (
        "running",
        1,
        None,
        "quest-1/checkpoint-4",
    )

    # ExecutionLog -> events (kind log), AgentTrace -> events (spans)
    events = _rows(wh, "select * from events order by execution_id, timestamp, seq")
    logs = {json.loads(e["attributes"])["results_service"]["id"]: e for e in events if e["kind"] == "log"}
    for id_, agent, eid, level, message, source, at in LOGS:
        e = logs[id_]
        assert (e["execution_id"], e["level"], e["message"], e["source"], e["timestamp"]) == (
            eid,
            level,
            message,
            source,
            _utc(at),
        )
        assert json.loads(e["attributes"]) == {"results_service": {"id": id_, "agentId": agent}}
    assert len(logs["log-0003"]["message"]) == len(LOGS[2][4])  # long messages are kept whole
    spans = [e for e in events if e["kind"] != "log"]
    assert [(e["kind"], e["name"], e["span_id"], e["parent_span_id"], e["duration_ms"]) for e in spans] == [
        ("tool_start", "tavily_search_results_json", "run-A", "run-root", None),
        ("tool_start", "fetch_page", "run-B", "run-A", None),
        ("tool_end", None, "run-B", "run-A", 420.0),
        ("tool_end", None, "run-A", "run-root", 2337.0),
        ("tool_start", "fetch_page", "run-C", None, None),
        ("tool_error", None, "run-C", None, None),
        ("tool_end", None, None, None, 15.0),
    ]
    by_id = {json.loads(e["attributes"])["results_service"]["id"]: e for e in spans}
    for id_, agent, eid, _kind, content, meta, at, _duration in TRACES:
        e = by_id[id_]
        assert (e["execution_id"], e["message"], e["timestamp"], e["source"]) == (eid, content, _utc(at), "AgentTrace")
        expected = {**(meta or {}), "results_service": {"id": id_, "agentId": agent}}
        assert json.loads(e["attributes"]) == expected
    assert by_id["tr-06"]["level"] == "error" and by_id["tr-05"]["level"] == "info"
    # the event stream of an execution, in time order, logs and spans interleaved
    stream = [(e["kind"], e["timestamp"]) for e in wh.follow(EXEC_DONE, follow=False)]
    assert [k for k, _ in stream] == [
        "log",
        "tool_start",
        "tool_start",
        "tool_end",
        "tool_end",
        "log",
        "tool_start",
        "log",
        "tool_error",
        "log",
    ]

    # CheckpointState -> snapshots (kind checkpoint), read back as checkpoints
    cps = wh.checkpoints(EXEC_DONE)
    assert [(c.checkpoint_id, c.step, c.thread_id, c.owner, c.created_at) for c in cps] == [
        (r[2], i + 1, f"thread_{EXEC_DONE}", "agent-001", _utc(r[5])) for i, r in enumerate(CHECKPOINTS[:3])
    ]
    assert cps[2].state == CHECKPOINTS[2][3].obj
    assert cps[0].metadata == {"results_service": {"id": "cs-01", "checkpointId": "cp-done-1"}}
    latest = wh.latest_checkpoint(EXEC_DONE, owner="agent-001")
    assert latest.checkpoint_id == "cp-done-3" and latest.state["step"] == 3
    assert wh.latest_checkpoint(EXEC_RUNNING).checkpoint_id == "cp-running-1"  # execution from the thread id
    assert wh.load_checkpoint("cp-done-2").state["partialResults"] == ["résultat partiel 0", "résultat partiel 1"]


def test_reimport_adds_nothing_and_new_rows_are_imported_incrementally(wh, db):
    first = wh.import_("postgres", db)
    again = wh.import_("postgres", db)
    assert (again.imported, again.skipped, again.versions, again.records) == (0, first.imported, [], {})
    assert len(again.failed) == 1  # the unmappable row is still reported
    version = wh.version
    _execute(
        db,
        'insert into "ExecutionLog" values (%s, %s, %s, %s, %s, %s, %s)',
        ("log-0100", "agent-042", EXEC_RUNNING, "info", "Exploring tile (12, 7) 🌲", "agent-callback", _t(305)),
    )
    _execute(
        db,
        'insert into "AgentResult" values (%s, %s, %s, %s, %s, %s, %s, %s, %s)',
        _result(
            "e5e5e5e5-4444-4555-8666-777788889906",
            "completed",
            {"task": "Gather wood", "executionId": "exec_1770886500000_wood1"},
            result="Gathered 40 wood.",
            agent="agent-042",
            at=500,
            done=530,
        ),
    )
    third = wh.import_("postgres", db)
    assert (third.imported, third.skipped, third.changed) == (2, first.imported, [])
    assert +third.records == {"events": 1, "executions": 1}
    assert wh.version == version + 1
    [(message,)] = wh.sql(
        "select message from events where execution_id = ? and kind = 'log'", [EXEC_RUNNING]
    ).fetchall()
    assert message == "Exploring tile (12, 7) 🌲"
    assert wh.sql("select count(*) from executions").fetchall()[0][0] == 5


def test_a_changed_row_is_imported_again(wh, db):
    wh.import_("postgres", db)
    # the running result finishes; its checkpoint is upserted with a newer state
    _execute(
        db,
        'update "AgentResult" set status = %s, result = %s, "completedAt" = %s, metadata = metadata || %s '
        "where id = %s",
        ("completed", "Forest mapped: 14 tiles 🗺️", _t(360), Jsonb({"iterationCount": 4}), RESULTS[3][0]),
    )
    _execute(
        db,
        'update "CheckpointState" set state = %s where "checkpointId" = %s',
        (Jsonb({"step": 4, "task": "Map the northern forest"}), "cp-running-1"),
    )
    report = wh.import_("postgres", db)
    assert sorted(report.changed) == [f"AgentResult/{RESULTS[3][0]}", "CheckpointState/cs-04"]
    assert report.imported == 2 and +report.records == {"executions": 1, "snapshots": 1}
    [row] = _rows(wh, "select * from executions where execution_id = ?", [EXEC_RUNNING])
    assert (row["status"], row["result"], row["finished_at"]) == (
        "completed",
        "Forest mapped: 14 tiles 🗺️",
        _utc(_t(360)),
    )
    assert json.loads(row["metadata"])["iterationCount"] == 4
    # both versions of the checkpoint are kept; the newer is the latest
    assert [c.step for c in wh.checkpoints(EXEC_RUNNING)] == [1, 4]
    assert wh.latest_checkpoint(EXEC_RUNNING).state == {"step": 4, "task": "Map the northern forest"}
    assert wh.latest_checkpoint(EXEC_RUNNING).checkpoint_id.startswith("cp-running-1@")
    # a finished result that changes afterwards is refused: importing it again would count it twice
    _execute(db, 'update "AgentResult" set result = %s where id = %s', ("edited", RESULTS[0][0]))
    report = wh.import_("postgres", db)
    assert report.imported == 0
    reasons = {f.source.rsplit(" ", 1)[1]: f.reason for f in report.failed}
    assert "was imported as completed before" in reasons[f"AgentResult/{RESULTS[0][0]}"]
    assert wh.sql("select count(*) from executions where execution_id = ?", [EXEC_DONE]).fetchall()[0][0] == 1


def test_a_running_result_updated_while_running_gets_a_newer_revision(wh, db):
    wh.import_("postgres", db)
    _execute(db, 'update "AgentResult" set result = %s where id = %s', ("Mapped 7 tiles so far", RESULTS[3][0]))
    report = wh.import_("postgres", db)
    assert +report.records == {"executions_live": 1}
    [row] = _rows(wh, "select * from executions where execution_id = ?", [EXEC_RUNNING])
    assert (row["status"], row["revision"], row["result"]) == ("running", 2, "Mapped 7 tiles so far")


def test_connection_failures_are_one_clear_error_without_the_password(wh, pg_server, db):
    wrong = pg_server.url("results_service", password="not-the-password")
    with pytest.raises(ImportFailed) as caught:
        wh.import_("postgres", wrong)
    message = str(caught.value)
    assert f"cannot connect to PostgreSQL at 127.0.0.1:{pg_server.port}/results_service" in message
    assert "password authentication failed" in message and "not-the-password" not in message
    closed = free_port()
    with pytest.raises(
        ImportFailed,
        match=rf"cannot connect to PostgreSQL at 127\.0\.0\.1:{closed}/results_service: "
        r".*Connection refused",
    ):
        wh.import_("postgres", pg_server.url("results_service", port=closed))
    with pytest.raises(ImportFailed, match=r'database "no_such_db" does not exist'):
        wh.import_("postgres", pg_server.url("no_such_db"))
    assert wh.version == 0  # nothing committed
    assert pgi.redact(pg_server.url("x")) == f"postgresql://postgres:***@127.0.0.1:{pg_server.port}/x"


def test_a_database_without_the_service_tables_is_refused_and_prisma_schema_urls_work(wh, pg_server):
    url = pg_server.create_database("other_app")
    with pytest.raises(ImportFailed, match=r"schema 'public' holds none of the results service's tables"):
        wh.import_("postgres", url)
    _execute(url, "create schema game; set search_path = game; " + DDL.split("CREATE INDEX")[0])
    _execute(
        url,
        'insert into game."ExecutionLog" values (%s, %s, %s, %s, %s, %s, %s)',
        ("log-x", "agent-001", "exec_x", "info", "hello", None, _t(1)),
    )
    _execute(url, 'alter table game."ExecutionLog" add column "tenant" text default \'guild-7\'')  # a later migration
    report = wh.import_("postgres", f"{url}?schema=game")  # Prisma's DATABASE_URL form
    assert (report.imported, +report.records) == (1, {"events": 1})
    [(attributes,)] = wh.sql("select attributes from events").fetchall()
    assert json.loads(attributes) == {"results_service": {"id": "log-x", "agentId": "agent-001", "tenant": "guild-7"}}
    _execute(url, 'alter table game."AgentTrace" drop column "duration"')
    with pytest.raises(ImportFailed, match=r"table game\.AgentTrace lacks column\(s\) \['duration'\]"):
        wh.import_("postgres", f"{url}?schema=game")


def test_cli_imports_and_exits_1_while_a_row_fails(tmp_path, db):
    root = str(tmp_path / "cli-wh")
    res = subprocess.run(
        [sys.executable, "-m", "warehouse", "import", "postgres", db, "--url", root],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 1, res.stderr
    assert f"AgentResult/{BAD_RESULT_ID}" in res.stderr and "messages[1].role" in res.stderr
    assert "postgres: 22 source(s), 21 imported, 0 already imported, 1 failed" in res.stdout
    wh = warehouse.open(root)
    assert wh.sql("select count(*) from events").fetchall()[0][0] == len(LOGS) + len(TRACES)
    assert wh.sql("select count(*) from imports where kind = 'postgres'").fetchall()[0][0] == 21


def test_without_the_postgresql_binaries_the_tests_fail_saying_what_to_install(monkeypatch):
    import pg_server as server

    monkeypatch.setattr(server, "find_binary", lambda name: None)
    with pytest.raises(pytest.fail.Exception, match=r"initdb, pg_ctl\) not found.*install Debian's postgresql"):
        server.start_server()
