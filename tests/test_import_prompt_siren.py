"""`warehouse import legacy` of what prompt-siren's `ExecutionPersistence` really writes: pydantic-ai
ModelMessages, a RunUsage and {vector id: {kind, content}} attacks, from real pydantic-ai agent runs
(tests/prompt_siren_fixtures.py); and the ModelMessage <-> row mapping of
`warehouse.importers.pydantic_ai_messages` on its own."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic_ai.messages import ModelMessagesTypeAdapter
from typer.testing import CliRunner

import warehouse
from tests.prompt_siren_fixtures import INJECTION, write_prompt_siren_tree
from warehouse.cli import app
from warehouse.core.errors import InvalidRecord
from warehouse.interop.importers import pydantic_ai_messages as pam


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> dict:
    return write_prompt_siren_tree(tmp_path_factory.mktemp("siren") / "outputs")


@pytest.fixture(scope="module")
def imported(tree, tmp_path_factory):
    wh = warehouse.open(str(tmp_path_factory.mktemp("wh") / "wh"), create=True)
    return wh, wh.import_("legacy", tree["base_dir"])


def _execution(wh, task_id: str) -> dict:
    (eid,) = wh.sql("select execution_id from executions where task_id = ?", [task_id]).fetchall()[0]
    return wh.execution(eid)


def test_every_prompt_siren_file_imports_with_its_ids_hashes_and_scores(imported, tree):
    wh, report = imported
    assert (report.imported, report.failed) == (4, [])
    docs = {t: json.loads(p.read_text()) for t, p in tree["files"].items()}
    rows = wh.sql(
        "select task_id, execution_id, config_hash, attack, benign_score, attack_score from executions order by task_id"
    ).fetchall()
    assert rows == [
        (
            t,
            d["execution_id"],
            d["config_hash"],
            "template_string" if ":" in t else "none",
            d["results"]["benign_score"],
            d["results"]["attack_score"],
        )
        for t, d in sorted(docs.items())
    ]
    assert {r[2] for r in rows} == set(tree["hashes"].values())


def test_run_usage_fills_the_usage_columns_and_keeps_the_rest(imported, tree):
    wh, _ = imported
    for task_id, (_, usage) in tree["runs"].items():
        ex = _execution(wh, task_id)
        assert (
            ex["input_tokens"],
            ex["output_tokens"],
            ex["total_tokens"],
            ex["requests"],
            ex["tool_calls"],
            ex["cache_read_tokens"],
            ex["cache_write_tokens"],
        ) == (
            usage.input_tokens,
            usage.output_tokens,
            usage.input_tokens + usage.output_tokens,
            usage.requests,
            usage.tool_calls,
            usage.cache_read_tokens,
            usage.cache_write_tokens,
        )
        given = json.loads(tree["files"][task_id].read_text())["usage"]
        kept = json.loads(ex["metadata"])["legacy"]
        assert kept["agent_name"] == "plain:test"
        # every RunUsage key is in a column or kept as it was
        columns = {
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "requests",
            "tool_calls",
            "cost",
            "output_reasoning_tokens",
        }
        assert {k: v for k, v in given.items() if k not in columns} == kept["usage"]
    assert _execution(wh, "user_task_0")["model"] == "test"
    assert _execution(wh, "user_task_2:injection_task_0")["model"] == "function:model:"


def test_model_messages_become_role_rows_with_tool_calls_and_results(imported):
    wh, _ = imported
    msgs = _execution(wh, "user_task_0")["messages"]  # a TestModel run: both tools called at once
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "tool", "tool", "assistant"]
    assert msgs[0]["content"] == "You are a careful email assistant."
    assert msgs[1]["content"] == "Résumé my inbox, s'il vous plaît 📬"
    assert [(c["id"], c["type"], c["function"]["name"]) for c in msgs[2]["tool_calls"]] == [
        ("pyd_ai_tool_call_id__search_emails", "function", "search_emails"),
        ("pyd_ai_tool_call_id__get_balance", "function", "get_balance"),
    ]
    assert [(m["tool_call_id"], m["name"]) for m in msgs[3:5]] == [
        ("pyd_ai_tool_call_id__search_emails", "search_emails"),
        ("pyd_ai_tool_call_id__get_balance", "get_balance"),
    ]
    assert msgs[3]["content"] == "3 unread from Zoë 🙂: 'Lunch?', 'Invoice', 'Re: Résumé'"
    assert json.loads(msgs[4]["content"]) == {"account": 0, "balance": 1250.5, "currency": "EUR"}
    assert isinstance(msgs[5]["content"], str) and msgs[5]["tokens"] > 0
    assert all(m["timestamp"] is not None for m in msgs)
    # a user prompt given as a list of content keeps its items as parts
    listed = _execution(wh, "user_task_1")["messages"][1]
    assert listed["content"] == [
        {"type": "text", "text": "What is on account 3?"},
        {"type": "text", "text": "Answer briefly."},
    ]
    # the injected tool output is searchable
    hits = wh.sql("select count(*) from messages where role = 'tool' and content like '%attacker@example.com%'")
    assert hits.fetchall() == [(2,)]


def test_retry_prompts_thinking_and_instructions_are_mapped(imported):
    wh, _ = imported
    msgs = _execution(wh, "user_task_2:injection_task_0")["messages"]
    roles = [(m["role"], m.get("name")) for m in msgs]
    assert roles == [
        ("user", None),
        ("assistant", None),
        ("tool", "get_balance"),
        ("assistant", None),
        ("user", None),
        ("assistant", None),
        ("system", None),
        ("user", None),
        ("assistant", None),
        ("tool", "get_balance"),
        ("assistant", None),
        ("tool", "get_balance"),
        ("assistant", None),
        ("tool", "get_balance"),
        ("tool", "search_emails"),
        ("assistant", None),
    ]
    assert json.loads(msgs[2]["content"])[0]["input"] == "x"  # retry prompt answering a tool call
    assert (msgs[4]["content"], msgs[4]["tool_call_id"]) == ("Please answer in words", "retry_1")
    assert msgs[6]["content"] == "Never send money without asking."  # once, not once per request
    assert msgs[8]["content"] == [
        {"type": "thinking", "thinking": "The user wants money moved; check the balance."},
        {"type": "text", "text": "Let me look."},
    ]
    assert msgs[8]["tool_calls"][0]["function"] == {"name": "get_balance", "arguments": '{"account": "seven"}'}
    assert msgs[12]["tool_calls"][1]["function"] == {"name": "search_emails", "arguments": {"query": "bank"}}
    assert msgs[14]["content"] == "1 from the bank: " + INJECTION


def test_the_original_model_messages_come_back_exactly(imported, tree):
    wh, _ = imported
    for task_id, path in tree["files"].items():
        ex = _execution(wh, task_id)
        original = json.loads(path.read_text())["messages"]
        back = pam.model_messages(ex["messages"])
        assert back == original
        validated = ModelMessagesTypeAdapter.validate_python(back)
        if task_id != "user_task_2:injection_task_0":  # pydantic-ai 2 reads retry prompts as newer parts
            assert validated == tree["runs"][task_id][0]
        # raw rows of the `messages` table give the same answer
        rows = wh.sql(
            "select role, metadata from messages where execution_id = ? order by seq", [ex["execution_id"]]
        ).fetchall()
        assert pam.model_messages({"role": r, "metadata": m} for r, m in rows) == original


def test_attack_vectors_keep_their_kind_and_media_type(imported):
    wh, _ = imported
    ex = _execution(wh, "user_task_0:injection_task_1")
    assert [(a["vector_id"], a["type"], a["content"], a["metadata"]) for a in ex["attacks"]] == [
        ("injection_vector_email", "str", INJECTION, None),
        ("injection_vector_image", "binary", "GIF89a", json.dumps({"media_type": "image/gif"}, separators=(",", ":"))),
    ]
    assert _execution(wh, "user_task_0")["attacks"] == []


def test_the_cli_imports_a_prompt_siren_folder(tree, tmp_path):
    url = str(tmp_path / "wh")
    res = CliRunner().invoke(app, ["import", "legacy", str(tree["base_dir"]), "--url", url])
    assert res.exit_code == 0 and "4 imported" in res.output and "0 failed" in res.output, res.output
    again = CliRunner().invoke(app, ["import", "legacy", str(tree["base_dir"]), "--url", url])
    assert again.exit_code == 0 and "4 already imported" in again.output, again.output


def test_a_file_mixing_model_messages_and_role_messages_is_reported(tree, tmp_path):
    src = tree["files"]["user_task_0"]
    doc = json.loads(src.read_text())
    doc["messages"].append({"role": "user", "content": "stray"})
    d = tmp_path / "outputs" / Path(*src.parts[-5:-1])
    d.mkdir(parents=True)
    (d / "config.yaml").write_text((src.parent / "config.yaml").read_text())
    (d / src.name).write_text(json.dumps(doc))
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    report = wh.import_("legacy", tmp_path / "outputs")
    assert report.imported == 0 and len(report.failed) == 1
    assert f"messages[{len(doc['messages']) - 1}] is not a pydantic-ai ModelMessage" in report.failed[0].reason


def test_mapping_of_parts_without_an_agent_run():
    messages = [
        {"kind": "request", "parts": [], "instructions": "Be brief.", "timestamp": "2025-01-01T00:00:00Z"},
        {
            "kind": "request",
            "parts": [{"part_kind": "system-prompt", "content": "S"}, {"part_kind": "user-prompt", "content": "U"}],
            "instructions": "Be brief.",
        },
        {
            "kind": "response",
            "parts": [
                {"part_kind": "builtin-tool-call", "tool_name": "web_search", "args": None, "tool_call_id": "b1"},
                {"part_kind": "builtin-tool-return", "tool_name": "web_search", "content": [1], "tool_call_id": "b1"},
                {"part_kind": "text", "content": "A"},
                {"part_kind": "text", "content": "B"},
            ],
            "usage": {"response_tokens": 3},
        },
        {"kind": "request", "parts": [{"part_kind": "something-new", "content": "N"}]},
        {"kind": "response", "parts": []},
    ]
    rows = pam.to_rows(messages)
    assert [(r["role"], r["content"], r["metadata"][pam.KEY].get("part")) for r in rows] == [
        ("system", "Be brief.", "instructions"),
        ("system", "S", 0),
        ("user", "U", 1),
        (
            "assistant",
            [
                {"part_kind": "builtin-tool-return", "tool_name": "web_search", "content": [1], "tool_call_id": "b1"},
                {"type": "text", "text": "A"},
                {"type": "text", "text": "B"},
            ],
            None,
        ),
        ("user", "N", 0),
        ("assistant", None, None),
    ]
    assert rows[3]["tool_calls"] == [
        {"id": "b1", "type": "builtin", "function": {"name": "web_search", "arguments": None}}
    ]
    assert rows[3]["tokens"] == 3
    assert pam.model_messages(rows) == messages
    with pytest.raises(InvalidRecord, match=r"messages\[1\] is not a pydantic-ai ModelMessage"):
        pam.to_rows([messages[0], {"role": "user", "content": "x"}])
    with pytest.raises(InvalidRecord, match=r"message 0 \(role 'user'\) was not made from a pydantic-ai message"):
        pam.model_messages([{"role": "user", "content": "x"}])


def test_older_usage_keys_map_to_the_usage_columns():
    assert pam.run_usage(
        {
            "request_tokens": 10,
            "response_tokens": 4,
            "total_tokens": 14,
            "requests": 1,
            "details": {"reasoning_tokens": 2, "accepted_prediction_tokens": 0},
        }
    ) == (
        {"input_tokens": 10, "output_tokens": 4, "total_tokens": 14, "requests": 1, "reasoning_tokens": 2},
        {"details": {"reasoning_tokens": 2, "accepted_prediction_tokens": 0}},
    )
    assert pam.run_usage({"input_tokens": 5, "request_tokens": 6}) == ({"input_tokens": 5}, {"request_tokens": 6})


@pytest.mark.slow
def test_legacy_export_and_import_keep_the_model_messages(imported, tree, tmp_path):
    wh, _ = imported
    wh.export("legacy", tmp_path / "out")
    wh2 = warehouse.open(str(tmp_path / "wh2"), create=True)
    assert wh2.import_("legacy", tmp_path / "out").imported == 4
    for task_id, path in tree["files"].items():
        assert pam.model_messages(_execution(wh2, task_id)["messages"]) == json.loads(path.read_text())["messages"]


def test_an_index_line_whose_file_is_gone_imports_from_prompt_sirens_index(tree, tmp_path):
    import shutil

    root = tmp_path / "outputs"
    shutil.copytree(tree["base_dir"], root)
    gone = root / tree["files"]["user_task_1"].relative_to(tree["base_dir"])
    gone.unlink()
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    report = wh.import_("legacy", root)
    assert (report.imported, report.failed) == (4, [])
    ex = _execution(wh, "user_task_1")
    assert (ex["attack"], ex["config_hash"], ex["benign_score"], ex["attack_score"], ex["messages"]) == (
        "none",
        tree["hashes"]["benign"],
        1.0,
        None,
        [],
    )
    assert json.loads(ex["metadata"])["legacy"] == {"agent_name": "plain:test", "index_only": True}
