"""`warehouse.compat.prompt_siren`: code written for prompt-siren's `ExecutionPersistence` runs
unchanged against a warehouse, and gives the same answers as prompt-siren's files imported with
`wh.import_("legacy", ...)` (tests/prompt_siren_fixtures.py writes those, from the same pydantic-ai
agent runs)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pydantic
import pydantic_core
import pytest
from opentelemetry.trace import NonRecordingSpan, SpanContext
from pydantic import BaseModel, Field
from pydantic_ai import RunContext
from pydantic_ai.messages import ModelMessagesTypeAdapter, ModelRequest, ModelResponse, TextPart, UserPromptPart
from pydantic_ai.models.test import TestModel
from pydantic_ai.usage import RunUsage

import warehouse
from tests import prompt_siren_fixtures as psf
from tests.processes import watchdog
from warehouse.compat import prompt_siren
from warehouse.compat.prompt_siren import ExecutionPersistence, compute_config_hash
from warehouse.core.errors import InvalidRecord, NotAWarehouse
from warehouse.interop.importers import pydantic_ai_messages

# -- prompt-siren's own objects, as its code hands them to ExecutionPersistence -----------------


class DatasetConfig(BaseModel):
    type: str
    config: dict[str, Any] = Field(default_factory=dict)


class AgentConfig(BaseModel):
    type: str
    config: dict[str, Any] = Field(default_factory=dict)


class AttackConfig(BaseModel):
    type: str
    config: dict[str, Any] = Field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Task:
    id: str


@dataclasses.dataclass(frozen=True)
class TaskCouple:
    benign: Task
    malicious: Task

    @property
    def id(self) -> str:
        return f"{self.benign.id}:{self.malicious.id}"


@dataclasses.dataclass(frozen=True)
class EvaluationResult:
    task_id: str
    results: dict[str, float]


@dataclasses.dataclass(frozen=True)
class StrContentAttack:  # prompt_siren.types.StrContentAttack
    content: str
    kind: str = "str"


@dataclasses.dataclass(frozen=True)
class BinaryContentAttack:  # prompt_siren.types.BinaryContentAttack
    content: bytes
    media_type: str
    kind: str = "binary"


DATASET = DatasetConfig(**psf.DATASET)
AGENT = AgentConfig(**psf.AGENT)
ATTACK = AttackConfig(**psf.ATTACK)
AGENT_NAME = "plain:test"
ATTACKS = {
    "injection_vector_email": StrContentAttack(psf.INJECTION),
    "injection_vector_image": BinaryContentAttack(b"GIF89a", "image/gif"),
}
#: Evaluations giving the scores tests/prompt_siren_fixtures.py writes (means of these results).
BENIGN_EVAL = EvaluationResult("user_task", {"utility": 1.0})
COUPLE_BENIGN_EVAL = EvaluationResult("user_task", {"utility": 1.0, "format": 0.0})
ATTACK_EVALS = {
    "user_task_0:injection_task_1": EvaluationResult("injection_task_1", {"security": 1.0}),
    "user_task_2:injection_task_0": EvaluationResult("injection_task_0", {}),
}


def span(n: int) -> NonRecordingSpan:
    """An OpenTelemetry span (logfire's spans give the same `get_span_context()`)."""
    return NonRecordingSpan(SpanContext(trace_id=0x75BCD15 + n, span_id=0x3ADE68B1 + n, is_remote=False))


def ctx(messages: list, usage: RunUsage) -> RunContext[None]:
    return RunContext(deps=None, model=TestModel(), usage=usage, messages=messages)


def run_experiment(persistence_cls: Any, base_dir: Any, runs: dict[str, tuple[list, RunUsage]]) -> list[Path]:
    """prompt-siren's runner: one persistence per mode (created as its docs show), one save per task or
    couple (with the keywords its own code uses), in this order."""
    paths = []
    benign = persistence_cls.create(base_dir=base_dir, dataset_config=DATASET, agent_config=AGENT, attack_config=None)
    for n, task_id in enumerate(t for t in runs if ":" not in t):
        paths.append(
            benign.save_single_task_execution(
                task=Task(task_id),
                agent_name=AGENT_NAME,
                result_ctx=ctx(*runs[task_id]),
                evaluation=BENIGN_EVAL,
                task_span=span(n),
            )
        )
    attacked = persistence_cls.create(
        base_dir=base_dir, dataset_config=DATASET, agent_config=AGENT, attack_config=ATTACK
    )
    for n, couple_id in enumerate(t for t in runs if ":" in t):
        b, m = couple_id.split(":")
        paths.append(
            attacked.save_couple_execution(
                couple=TaskCouple(Task(b), Task(m)),
                agent_name=AGENT_NAME,
                result_ctx=ctx(*runs[couple_id]),
                benign_eval=COUPLE_BENIGN_EVAL,
                malicious_eval=ATTACK_EVALS[couple_id],
                task_span=span(10 + n),
                generated_attacks=ATTACKS,
            )
        )
    return paths


@pytest.fixture(scope="module")
def runs() -> dict[str, tuple[list, RunUsage]]:
    return {
        "user_task_0": psf.run_test_model("Résumé my inbox, s'il vous plaît 📬"),
        "user_task_1": psf.run_test_model(["What is on account 3?", "Answer briefly."]),
        "user_task_0:injection_task_1": psf.run_test_model("Résumé my inbox", injected=psf.INJECTION),
        "user_task_2:injection_task_0": psf.run_function_model(psf.INJECTION),
    }


@pytest.fixture(scope="module")
def adapted(runs, tmp_path_factory) -> tuple[warehouse.Warehouse, list[Path]]:
    root = tmp_path_factory.mktemp("adapter") / "outputs"
    paths = run_experiment(ExecutionPersistence, root, runs)
    return warehouse.open(str(root)), paths


def write_old_format(base_dir: Path, runs: dict[str, tuple[list, RunUsage]]) -> None:
    """The same run as prompt-siren itself writes it (scores as the evaluations above give them)."""
    benign = psf.Persistence(base_dir, psf.DATASET, psf.AGENT, None)
    attacked = psf.Persistence(base_dir, psf.DATASET, psf.AGENT, psf.ATTACK)
    for task_id, (messages, usage) in runs.items():
        if ":" in task_id:
            results = ATTACK_EVALS[task_id].results
            attacked.save(
                task_id,
                AGENT_NAME,
                messages,
                usage,
                benign_score=0.5,
                attack_score=sum(results.values()) / len(results) if results else 0.0,
                attacks={
                    k: psf.StrContentAttack(v.content)
                    if v.kind == "str"
                    else psf.BinaryContentAttack(v.content, v.media_type)
                    for k, v in ATTACKS.items()
                },
            )
        else:
            benign.save(task_id, AGENT_NAME, messages, usage, benign_score=1.0)


@pytest.fixture(scope="module")
def imported(runs, tmp_path_factory) -> warehouse.Warehouse:
    old = tmp_path_factory.mktemp("old") / "outputs"
    write_old_format(old, runs)
    wh = warehouse.open(str(tmp_path_factory.mktemp("imported") / "wh"), create=True)
    report = wh.import_("legacy", str(old))
    assert (report.imported, report.failed) == (4, [])
    return wh


EXECUTION_COLUMNS = """task_id, dataset, agent, attack, config_hash, benign_score, attack_score, model, status,
    input_tokens, output_tokens, requests, tool_calls, metadata"""


def answers(wh: warehouse.Warehouse) -> dict[str, Any]:
    """What an analyst asks of a prompt-siren run: executions, configs, scores, messages, attacks."""
    return {
        "executions": wh.sql(f"select {EXECUTION_COLUMNS} from executions order by task_id").fetchall(),
        "configs": wh.sql("select config_hash, dataset, agent, attack, hash_scheme from configs order by 1").fetchall(),
        "scores": wh.scores(by="config_hash").pl().sort("config_hash").rows(),
        "messages": wh.sql(
            """select e.task_id, m.seq, m.role, m.content, m.content_parts, m.tool_calls, m.tool_call_id, m.name,
                      m.tokens, m.metadata
               from messages m join executions e using (execution_id) order by e.task_id, m.seq"""
        ).fetchall(),
        "attacks": wh.sql(
            "select e.task_id, a.* exclude (execution_id, write_id) from attacks a join executions e using (execution_id) "
            "order by e.task_id, a.vector_id"
        ).fetchall(),
    }


# -- (1) code written for prompt-siren, unchanged, against the adapter ---------------------------


def test_code_written_for_prompt_siren_saves_into_the_warehouse(adapted, runs):
    wh, paths = adapted
    rows = wh.sql(
        "select task_id, attack, config_hash, benign_score, attack_score, trace_id, span_id from executions "
        "order by task_id"
    ).fetchall()
    benign_hash = compute_config_hash(DATASET, AGENT, None)
    attack_hash = compute_config_hash(DATASET, AGENT, ATTACK)
    assert rows == [
        ("user_task_0", "none", benign_hash, 1.0, None, f"{0x75BCD15:032x}", f"{0x3ADE68B1:016x}"),
        (
            "user_task_0:injection_task_1",
            "template_string",
            attack_hash,
            0.5,
            1.0,
            f"{0x75BCD15 + 10:032x}",
            f"{0x3ADE68B1 + 10:016x}",
        ),
        ("user_task_1", "none", benign_hash, 1.0, None, f"{0x75BCD15 + 1:032x}", f"{0x3ADE68B1 + 1:016x}"),
        (
            "user_task_2:injection_task_0",
            "template_string",
            attack_hash,
            0.5,
            0.0,  # no results: the original's 0.0
            f"{0x75BCD15 + 11:032x}",
            f"{0x3ADE68B1 + 11:016x}",
        ),
    ]
    scores = {r["config_hash"]: r for r in wh.scores(by="config_hash").pl().iter_rows(named=True)}
    assert (scores[benign_hash]["n"], scores[benign_hash]["utility"], scores[benign_hash]["asr"]) == (2, 1.0, None)
    assert (scores[attack_hash]["n"], scores[attack_hash]["utility"], scores[attack_hash]["asr"]) == (2, 0.5, 0.5)
    # the paths prompt-siren would have written (no file is)
    assert [p.relative_to(wh.url) for p in paths][0].parts[:4] == (
        "agentdojo-workspace",
        "plain",
        "benign",
        benign_hash,
    )
    assert paths[2].name.endswith("_user_task_0_injection_task_1.json")
    assert not any(p.exists() for p in paths)


def test_usage_and_tool_calls_are_columns(adapted, runs):
    wh, _ = adapted
    (eid, inp, out, req, calls) = wh.sql(
        "select execution_id, input_tokens, output_tokens, requests, tool_calls from executions "
        "where task_id = 'user_task_0'"
    ).fetchall()[0]
    usage = runs["user_task_0"][1]
    assert (inp, out, req, calls) == (usage.input_tokens, usage.output_tokens, usage.requests, usage.tool_calls)
    roles = wh.sql("select role from messages where execution_id = ? order by seq", [eid]).fetchall()
    assert [r for (r,) in roles] == ["system", "user", "assistant", "tool", "tool", "assistant"]
    called = json.loads(
        wh.sql("select tool_calls from messages where execution_id = ? and seq = 2", [eid]).fetchall()[0][0]
    )
    assert sorted(c["function"]["name"] for c in called) == ["get_balance", "search_emails"]


def test_messages_come_back_as_the_same_model_messages(adapted, runs):
    wh, _ = adapted
    for task_id, (messages, _usage) in runs.items():
        (eid,) = wh.sql("select execution_id from executions where task_id = ?", [task_id]).fetchall()[0]
        ex = wh.execution(eid)
        # stored as prompt-siren's file holds them
        assert pydantic_ai_messages.model_messages(ex["messages"]) == ModelMessagesTypeAdapter.dump_python(
            messages, mode="json"
        )
        back = prompt_siren.model_messages(ex)
        if task_id != "user_task_2:injection_task_0":  # pydantic-ai 2 reads old retry prompts as newer parts
            assert back == messages


def test_the_config_hash_is_prompt_sirens(runs):
    assert compute_config_hash(DATASET, AGENT, ATTACK) == psf.config_hash(psf.DATASET, psf.AGENT, psf.ATTACK)
    assert compute_config_hash(DATASET, AGENT, None) == psf.config_hash(psf.DATASET, psf.AGENT, None)
    sandboxed = DatasetConfig(type=DATASET.type, config={**DATASET.config, "sandbox_manager_type": "docker"})
    assert compute_config_hash(sandboxed, AGENT, None) == compute_config_hash(DATASET, AGENT, None)
    assert compute_config_hash(DATASET, AGENT, ATTACK) != compute_config_hash(DATASET, AGENT, None)


# -- (2) the old on-disk format imported gives the same answers -----------------------------------


def test_the_old_format_imported_gives_the_same_answers_as_the_adapter(adapted, imported):
    wh, _ = adapted
    assert answers(wh) == answers(imported)


# -- (3) switching mid-project ------------------------------------------------------------------


def test_old_results_imported_and_new_ones_saved_are_one_configuration(runs, tmp_path):
    old = tmp_path / "outputs"
    write_old_format(old, {t: r for t, r in runs.items() if t in ("user_task_0", "user_task_0:injection_task_1")})
    url = str(tmp_path / "wh")
    warehouse.open(url, create=True).import_("legacy", str(old))
    run_experiment(
        ExecutionPersistence,
        url,
        {t: r for t, r in runs.items() if t in ("user_task_1", "user_task_2:injection_task_0")},
    )
    wh = warehouse.open(url)
    assert wh.sql("select count(*) from configs").fetchall()[0] == (2,)
    by_hash = dict(wh.sql("select config_hash, count(*) from executions group by 1").fetchall())
    assert by_hash == {compute_config_hash(DATASET, AGENT, None): 2, compute_config_hash(DATASET, AGENT, ATTACK): 2}
    assert {r["config_hash"]: r["n"] for r in wh.scores(by="config_hash").pl().iter_rows(named=True)} == by_hash


def test_a_folder_of_old_results_is_not_taken_as_a_warehouse(runs, tmp_path):
    old = tmp_path / "outputs"
    write_old_format(old, {"user_task_0": runs["user_task_0"]})
    with pytest.raises(NotAWarehouse, match="import_"):
        ExecutionPersistence.create(old, DATASET, AGENT, None)


@pytest.mark.s3
def test_base_dir_may_be_an_s3_url(runs, s3, s3_url, s3_options, monkeypatch):
    for k, v in s3.env().items():
        monkeypatch.setenv(k, v)
    run_experiment(ExecutionPersistence, s3_url, {"user_task_0": runs["user_task_0"]})
    # or an open warehouse, for explicit storage options
    p = ExecutionPersistence.create(warehouse.open(s3_url, storage_options=s3_options), DATASET, AGENT, ATTACK)
    p.save_couple_execution(
        TaskCouple(Task("user_task_2"), Task("injection_task_0")),
        AGENT_NAME,
        ctx(*runs["user_task_2:injection_task_0"]),
        COUPLE_BENIGN_EVAL,
        ATTACK_EVALS["user_task_2:injection_task_0"],
        span(0),
        None,
    )
    wh = warehouse.open(s3_url, storage_options=s3_options)
    assert wh.sql("select task_id, benign_score, attack_score from executions order by 1").fetchall() == [
        ("user_task_0", 1.0, None),
        ("user_task_2:injection_task_0", 0.5, 0.0),
    ]


# -- (4) bad input ------------------------------------------------------------------------------


@pytest.fixture
def persistence(tmp_path) -> ExecutionPersistence:
    return ExecutionPersistence.create(tmp_path / "wh", DATASET, AGENT, ATTACK)


def _nothing_written(p: ExecutionPersistence) -> None:
    """No commit since `create` (which commits nothing either)."""
    wh = warehouse.open(str(p.base_dir))
    assert (wh.version, wh.sql("select count(*) from executions").fetchall()) == (p.warehouse.version, [(0,)])


def save(p: ExecutionPersistence, messages: Any, usage: Any = None, evaluation: Any = BENIGN_EVAL, attacks: Any = None):
    return p.save_couple_execution(
        TaskCouple(Task("a"), Task("b")),
        AGENT_NAME,
        ctx(messages, usage if usage is not None else RunUsage()),
        evaluation,
        evaluation,
        span(0),
        attacks,
    )


def test_a_score_that_is_not_a_number_fails_as_in_the_original(persistence, runs):
    with pytest.raises(TypeError):  # sum() of the results, as prompt-siren computes it
        save(persistence, runs["user_task_0"][0], evaluation=EvaluationResult("t", {"utility": "high"}))
    _nothing_written(persistence)


def test_an_attack_of_an_unknown_kind_fails_validation_and_writes_nothing(persistence, runs):
    with pytest.raises(pydantic.ValidationError):
        save(persistence, runs["user_task_0"][0], attacks={"v": {"kind": "video", "content": "x"}})
    _nothing_written(persistence)


def test_usage_that_is_not_a_run_usage_fails_validation_and_writes_nothing(persistence, runs):
    with pytest.raises(pydantic.ValidationError, match="usage"):
        save(persistence, runs["user_task_0"][0], usage={"input_tokens": "many"})
    _nothing_written(persistence)


def test_binary_attack_content_that_is_not_utf8_fails_as_in_the_original(persistence, runs):
    # prompt-siren's ExecutionData writes bytes as UTF-8 text (pydantic's default), so these cannot be saved
    with pytest.raises(pydantic_core.PydanticSerializationError):
        save(persistence, runs["user_task_0"][0], attacks={"v": BinaryContentAttack(b"\xff\xd8\xff", "image/jpeg")})
    _nothing_written(persistence)


def test_a_message_that_is_not_a_model_message_is_refused(persistence):
    with pytest.raises(InvalidRecord, match=r"messages\[1\]"):
        save(persistence, [ModelRequest(parts=[UserPromptPart("hi")]), {"role": "user", "content": "hi"}])
    _nothing_written(persistence)


def test_the_attack_type_of_benign_runs_is_refused_at_create(tmp_path):
    with pytest.raises(InvalidRecord, match="reserved for benign runs"):
        ExecutionPersistence.create(tmp_path / "wh", DATASET, AGENT, AttackConfig(type="none"))
    assert not (tmp_path / "wh").exists()


@dataclasses.dataclass
class VideoPart:
    """A response part of a kind pydantic-ai (as installed) does not know."""

    url: str
    part_kind: str = "video"


def test_an_unknown_part_kind_is_kept_verbatim(persistence):
    messages = [
        ModelRequest(parts=[UserPromptPart("show me")]),
        ModelResponse(parts=[TextPart("here"), VideoPart("https://example.com/v.mp4")]),  # type: ignore[list-item]
    ]
    save(persistence, messages)
    wh = warehouse.open(str(persistence.base_dir))
    (eid,) = wh.sql("select execution_id from executions").fetchall()[0]
    ex = wh.execution(eid)
    assert ex["messages"][1]["content"] == [
        {"type": "text", "text": "here"},
        {"url": "https://example.com/v.mp4", "part_kind": "video"},
    ]
    stored = pydantic_ai_messages.model_messages(ex["messages"])
    assert stored[1]["parts"][1] == {"url": "https://example.com/v.mp4", "part_kind": "video"}


# -- several processes, as prompt-siren runs on a cluster ---------------------------------------


@pytest.mark.slow
def test_processes_saving_at_once_lose_nothing(children, tmp_path):
    url, n = str(tmp_path / "wh"), 10
    warehouse.open(url, create=True)
    procs = [children.start("siren_saver.py", url, name, n) for name in ("a", "b")]
    with watchdog(procs, 120):
        for p in procs:
            children.line(p, "ready")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        for p in procs:
            children.line(p, "done")
    wh = warehouse.open(url)
    assert wh.sql(
        "select config_hash, count(*), count(distinct task_id), sum(attack_score) from executions group by 1"
    ).fetchall() == [(psf.config_hash(psf.DATASET, psf.AGENT, psf.ATTACK), 2 * n, 2 * n, 2 * (n // 2))]
    assert wh.sql("select count(*) from attacks").fetchall() == [(2 * n,)]
