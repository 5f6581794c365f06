"""warehouse.compat.sessions: agent-runner's SessionManager and rollouts' save_trajectory_stream, called
as their documentation calls them, answer through the warehouse as the importers of their own files do."""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pytest

import warehouse
from tests.test_import_agent_state import CONFIG, runner_messages, trajectories_fixture, write_session
from warehouse.compat.sessions import SESSIONS_DIR, SessionManager, save_trajectory_stream
from warehouse.core.errors import InvalidRecord, SessionNotFound, StateError


# -- the originals' own call sequences, unchanged ------------------------------------------------------
async def cli_session(workspace: Any, msg1: Any, msg2: Any, msg3: Any, agent_config: Any) -> tuple:
    """The usage pattern of agent-runner's SessionManager, as its documentation shows it."""
    # Save session
    session_manager = SessionManager(workspace)
    await session_manager.save(
        session_id="abc123",
        messages=[msg1, msg2, msg3],
        config=agent_config,
        meta={"total_tokens": 1542, "total_cost": 0.0234},
    )

    # Load session (resume conversation)
    messages, config, meta = await session_manager.load("abc123")

    # List all sessions
    sessions = await session_manager.list()
    return messages, config, meta, sessions


@dataclass
class Message:
    """agent-runner's Message: `to_dict()` is the messages.jsonl record."""

    id: str
    role: str
    content: str | None
    tool_calls: list[dict[str, Any]] | None = None
    tool_call_id: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Trajectory:
    """rollouts' Trajectory (a JsonSerializable dataclass: `to_json()` is its fields' JSON)."""

    completions: list[Any] = field(default_factory=list)
    messages: list[Any] = field(default_factory=list)
    rewards: float = 0.0
    group: int = 0
    replica: int = 0
    advantages: Any = 0.0
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


def rollout_trajectories() -> list[Trajectory]:
    # the fixture's third line has a key beyond the format: rollouts' Trajectory cannot hold it
    return [Trajectory(**{k: v for k, v in t.items() if k != "episode"}) for t in trajectories_fixture()]


async def generate(prompts: list[Trajectory], output_file: str) -> None:
    """rollouts' streaming pattern: each trajectory saved as soon as it is generated."""

    async def run_agent(prompt: Trajectory) -> Trajectory:
        return prompt

    for prompt in prompts:
        trajectory = await run_agent(prompt)
        await save_trajectory_stream(trajectory, output_file)


# -- SessionManager ------------------------------------------------------------------------------------
def test_session_manager_code_runs_unchanged_and_the_warehouse_holds_the_session(tmp_path: Path) -> None:
    msg1, msg2, msg3 = (Message(**m) for m in runner_messages("Write a function", 1))
    messages, config, meta, sessions = asyncio.run(cli_session(tmp_path / "project", msg1, msg2, msg3, CONFIG))

    assert messages == [msg1.to_dict(), msg2.to_dict(), msg3.to_dict()] == runner_messages("Write a function", 1)
    assert config == CONFIG
    assert {k: meta[k] for k in ("schema_version", "total_tokens", "total_cost", "model")} == {
        "schema_version": 1,
        "total_tokens": 1542,
        "total_cost": 0.0234,
        "model": "gpt-4o",
    }
    assert meta["created_at"] == meta["updated_at"] or meta["created_at"] < meta["updated_at"]
    assert sessions == [
        {
            "id": "abc123",
            "created_at": meta["created_at"],
            "updated_at": meta["updated_at"],
            "model": "gpt-4o",
            "tokens": 1542,
            "cost": 0.0234,
            "message_count": 3,
        }
    ]
    # a plain workspace directory keeps its sessions in a warehouse where agent-runner kept its files
    wh = warehouse.open(str(tmp_path / "project" / SESSIONS_DIR))
    assert wh.sessions.load("abc123") == (messages, config, meta)
    rows = wh.sql(
        "select role, content, tool_calls is not null from messages where execution_id = 'abc123' order by seq"
    )
    assert rows.fetchall() == [
        ("user", "Write a function", False),
        ("assistant", None, True),
        ("tool", "File created", False),
    ]
    assert wh.sql("select session_id, title, message_count from sessions").fetchall() == [
        ("abc123", "Write a function", 3)
    ]


def test_saving_a_grown_conversation_appends_only_the_new_messages(tmp_path: Path) -> None:
    msgs = runner_messages("Write a function", 3)
    sm = SessionManager(str(tmp_path / "wh"))
    asyncio.run(sm.save("s1", msgs[:3], CONFIG, {"total_tokens": 10}))
    first = asyncio.run(sm.load("s1"))[2]
    asyncio.run(sm.save("s1", msgs, {**CONFIG, "temperature": 0.2}, {"total_tokens": 30}))
    messages, config, meta = asyncio.run(sm.load("s1"))
    assert messages == msgs and config == {**CONFIG, "temperature": 0.2}
    assert meta["total_tokens"] == 30 and meta["created_at"] == first["created_at"]
    wh = sm.wh
    # earlier messages are not written again: one row per message, two revisions of the session
    assert wh.sql("select count(*), count(distinct seq) from messages").fetchall() == [(9, 9)]
    assert wh.sql("select revision, message_count from raw_sessions order by revision").fetchall() == [(0, 3), (1, 9)]


def test_a_warehouse_url_or_an_open_warehouse_is_a_workspace(tmp_path: Path) -> None:
    wh = warehouse.open(str(tmp_path / "w"), create=True)
    msgs = runner_messages("Bonjour 👋", 1)
    asyncio.run(cli_session(wh, *msgs, CONFIG))
    asyncio.run(cli_session(f"file://{tmp_path / 'w'}", *msgs[:2], msgs[2], CONFIG))  # the same session, unchanged
    assert wh.refresh() and wh.sessions.load("abc123")[0] == msgs
    # a local path that holds a warehouse is that warehouse (no .agentrunner/ inside it)
    assert asyncio.run(SessionManager(tmp_path / "w").load("abc123"))[0] == msgs
    assert not (tmp_path / "w" / ".agentrunner").exists()
    assert wh.sql("select count(*) from messages").fetchall() == [(3,)]


def test_concurrent_saves_of_one_manager_all_land(tmp_path: Path) -> None:
    sm = SessionManager(str(tmp_path / "wh"))
    conversations = {f"s{i}": runner_messages(f"Tâche {i}", 1 + i % 2) for i in range(6)}

    async def save_all() -> None:
        await asyncio.gather(
            *(sm.save(sid, msgs, CONFIG, {"total_tokens": len(msgs)}) for sid, msgs in conversations.items())
        )

    asyncio.run(save_all())
    listed = asyncio.run(sm.list())
    assert sorted((s["id"], s["message_count"]) for s in listed) == [
        (k, len(v)) for k, v in sorted(conversations.items())
    ]
    assert all(asyncio.run(sm.load(sid))[0] == msgs for sid, msgs in conversations.items())


def test_agent_runner_files_imported_read_like_the_adapters_session(tmp_path: Path) -> None:
    msgs = runner_messages("Résume ce rapport 📄", 4)
    adapter = SessionManager(str(tmp_path / "adapter"))
    asyncio.run(adapter.save("abc123", msgs[:3], CONFIG, {"total_tokens": 100, "total_cost": 0.01}))
    meta1 = asyncio.run(adapter.load("abc123"))[2]
    asyncio.run(adapter.save("abc123", msgs, CONFIG, {"total_tokens": 1542, "total_cost": 0.0234}))
    meta2 = asyncio.run(adapter.load("abc123"))[2]

    # the same run as agent-runner wrote it: messages.jsonl (gzip past 1 KB), config.json, meta.json
    # rewritten at each save; imported after each one (a session imported while in use)
    old = warehouse.open(str(tmp_path / "imported"), create=True)
    session_dir = tmp_path / "sessions" / "abc123"
    for n, meta in ((3, meta1), (len(msgs), meta2)):
        want = {k: meta[k] for k in ("schema_version", "created_at", "updated_at", "model")}
        write_session(
            session_dir,
            msgs[:n],
            CONFIG,
            {**want, "total_tokens": meta["total_tokens"], "total_cost": meta["total_cost"]},
        )
        assert old.import_("sessions", tmp_path / "sessions").failed == []
    assert (session_dir / "messages.jsonl.gz").exists()

    legacy = SessionManager(old)
    assert asyncio.run(legacy.load("abc123")) == asyncio.run(adapter.load("abc123"))
    assert asyncio.run(legacy.list()) == asyncio.run(adapter.list())
    query = "select seq, role, content, tool_calls, tool_call_id, metadata from messages order by seq"
    assert old.sql(query).fetchall() == adapter.wh.sql(query).fetchall()
    query = "select session_id, revision, title, message_count, config, meta from raw_sessions order by revision"
    assert old.sql(query).fetchall() == adapter.wh.sql(query).fetchall()


@pytest.mark.parametrize(
    ("messages", "config", "meta", "error"),
    [
        ("not a list", CONFIG, None, InvalidRecord),
        ([{"role": "user", "content": "hi"}, 42], CONFIG, None, InvalidRecord),
        ([{"role": "user", "content": "hi"}], {"model": object()}, None, InvalidRecord),
        ([{"role": "user", "content": "hi"}], CONFIG, ["not", "a", "dict"], InvalidRecord),
        ([{"role": "user", "content": float("nan")}], CONFIG, None, InvalidRecord),
        ([{"role": "user", "content": "hi"}], CONFIG, {"total_cost": float("inf")}, InvalidRecord),
    ],
)
def test_bad_input_is_refused_and_nothing_is_stored(
    tmp_path: Path, messages: Any, config: Any, meta: Any, error: type[Exception]
) -> None:
    sm = SessionManager(str(tmp_path / "wh"))
    before = sm.wh.refresh()
    with pytest.raises(error):
        asyncio.run(sm.save("s1", messages, config, meta))
    assert sm.wh.refresh() == before and asyncio.run(sm.list()) == []


def test_a_rewritten_conversation_is_refused_and_unknown_sessions_are_not_found(tmp_path: Path) -> None:
    msgs = runner_messages("Write a function", 2)
    sm = SessionManager(str(tmp_path / "wh"))
    asyncio.run(sm.save("s1", msgs, CONFIG, None))
    version = sm.wh.refresh()
    edited = [{**msgs[0], "content": "something else"}, *msgs[1:]]
    with pytest.raises(StateError, match="do not start with them"):
        asyncio.run(sm.save("s1", edited, CONFIG, None))
    with pytest.raises(StateError):
        asyncio.run(sm.save("s1", msgs[:2], CONFIG, None))  # fewer messages than stored: not an extension
    with pytest.raises(InvalidRecord, match="role"):
        asyncio.run(sm.save("s1", [*msgs, {"role": 7, "content": "x"}], CONFIG, None))  # a bad new message
    assert sm.wh.refresh() == version and asyncio.run(sm.load("s1"))[0] == msgs
    with pytest.raises(SessionNotFound):
        asyncio.run(sm.load("nope"))


# -- save_trajectory_stream ----------------------------------------------------------------------------
TRAJECTORY_COLUMNS = "execution_id, config_hash, task_id, group_id, sample, reward, advantages, metadata, completions"


def test_streamed_trajectories_equal_the_imported_jsonl_of_the_same_run(tmp_path: Path) -> None:
    trajectories = rollout_trajectories()
    trajectories.append(trajectories[0])  # the same trajectory twice: two lines, two executions
    asyncio.run(generate(trajectories, str(tmp_path / "data" / "train.jsonl")))
    asyncio.run(generate(trajectories[:1], str(tmp_path / "data" / "val.jsonl")))
    streamed = warehouse.open(str(tmp_path / "data"))

    # the same run saved by rollouts: Trajectory.save_jsonl, one to_json() line per trajectory
    legacy = tmp_path / "legacy" / "data"
    legacy.mkdir(parents=True)
    (legacy / "train.jsonl").write_text("".join(t.to_json() + "\n" for t in trajectories), encoding="utf-8")
    (legacy / "val.jsonl").write_text(trajectories[0].to_json() + "\n", encoding="utf-8")
    imported = warehouse.open(str(tmp_path / "imported"), create=True)
    assert imported.import_("trajectories", legacy).imported == 2

    query = f"select {TRAJECTORY_COLUMNS} from executions order by execution_id"
    got = streamed.sql(query).fetchall()
    assert len(got) == 5 and got == imported.sql(query).fetchall()
    query = "select execution_id, seq, role, content, tool_calls from messages order by execution_id, seq"
    assert streamed.sql(query).fetchall() == imported.sql(query).fetchall()
    a = streamed.trajectories(with_messages=True).collect().sort("execution_id")
    b = imported.trajectories(with_messages=True).collect().sort("execution_id")
    assert a.height == 5 and a.drop("finished_at").equals(b.drop("finished_at"))  # when each was written
    rewards = streamed.sql(
        "select c.dataset_config, sum(e.reward) from executions e join configs c using (config_hash) group by 1 order by 1"
    ).fetchall()
    assert rewards == [('{"split":"train"}', 2.25), ('{"split":"val"}', 1.0)]


@pytest.mark.parametrize(
    "trajectory",
    [
        {"messages": [], "rewards": "high"},
        {"messages": "not a list", "rewards": 1.0},
        {"messages": [{"role": "user", "content": "x"}], "rewards": float("nan")},
        Trajectory(messages=[{"role": "user", "content": "x"}], group=[1]),  # type: ignore[arg-type]
        ["not", "a", "trajectory"],
        object(),
    ],
)
def test_a_bad_trajectory_is_refused_and_nothing_is_stored(tmp_path: Path, trajectory: Any) -> None:
    out = tmp_path / "data" / "train.jsonl"
    asyncio.run(save_trajectory_stream(rollout_trajectories()[0], str(out)))
    wh = warehouse.open(str(out.parent))
    before = wh.version
    with pytest.raises(InvalidRecord):
        asyncio.run(save_trajectory_stream(trajectory, str(out)))
    assert wh.refresh() == before and wh.sql("select count(*) from executions").fetchall() == [(1,)]


def test_sessions_and_trajectories_on_s3(s3: Any, s3_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in s3.env().items():  # as a user's process reaches S3: the AWS environment variables
        monkeypatch.setenv(k, v)
    msgs = runner_messages("Write a function", 1)
    messages, config, meta, sessions = asyncio.run(cli_session(s3_url, *msgs, CONFIG))
    assert messages == msgs and [s["id"] for s in sessions] == ["abc123"]
    asyncio.run(generate(rollout_trajectories(), f"{s3_url}/data/train.jsonl"))
    wh = warehouse.open(f"{s3_url}/data", storage_options=s3.options())
    assert sorted(wh.sql("select reward from executions").fetchall()) == [(0.0,), (0.25,), (1.0,)]
    assert warehouse.open(s3_url, storage_options=s3.options()).sessions.load("abc123") == (messages, config, meta)
