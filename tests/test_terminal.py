"""What the command line prints, read as the raw bytes of a real process's stdout and stderr.

Every stored or user-supplied value is literal text: never markup, emoji codes or escape sequences
(control characters are shown escaped); tables fit the terminal and say how to get every column;
`show` folds long messages; and the smaller promises of each command hold.
"""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from rich.cells import cell_len

import warehouse
from warehouse.core.errors import InvalidArgument
from warehouse.core.schemas import catalog
from warehouse.core.terminal import LiteralLogFormatter, literal_excepthook
from warehouse.read import analytics, report

README = Path(__file__).resolve().parent.parent / "README.md"
# An OSC 8 hyperlink, an SGR colour, a carriage return, BEL, an 8-bit CSI (clear screen), a
# right-to-left override; rich markup (a closing tag that matches nothing, a link) and an emoji code.
CONTROLS = "\x1b]8;;http://evil.example\x07X\x1b]8;;\x07 \x1b[31mred\x1b[0m \rover \x9b2J \u202eevil"
MARKUP = "[/oops] [link=http://evil.example]m[/link] :warning:"
HOSTILE = f"{MARKUP} {CONTROLS}"
# Partition values (dataset, agent, attack) are shorter: at most 200 bytes once %-escaped on disk.
PART = "[/oops] [link=http://evil.example]m[/link] \x1b[31mred\x1b[0m \u202eevil"
PART_SHOWN = ["[/oops]", "[link=http://evil.example]m[/link]", "\\x1b[31mred", "\\u202eevil"]
RAW = [b"\x1b", b"\x07", b"\r", "\x9b".encode(), "\u202e".encode()]  # none of these may reach the terminal
SHOWN = [
    "[/oops]",
    "[link=http://evil.example]m[/link]",
    ":warning:",
    "\\x1b]8;;http://evil.example\\x07X",
    "\\x1b[31mred",
    "\\rover",
    "\\x9b2J",
    "\\u202eevil",
]
COMMANDS = [
    "init",
    "demo",
    "ls",
    "show",
    "sql",
    "scores",
    "compare",
    "history",
    "sync",
    "tail",
    "bench",
    "expire",
    "compact",
    "vacuum",
    "doctor",
    "report",
    "import",
    "export",
]


SGR = re.compile(rb"\x1b\[[0-9;]*m")  # the styles (bold, dim) rich writes to a terminal


def run(*args: str, env: dict[str, str] | None = None, width: int | None = None) -> subprocess.CompletedProcess[bytes]:
    """The CLI as a real process; stdout and stderr as bytes, exactly as they leave it. Output goes to a
    pipe (200 columns wide), or with `width` to a terminal that many columns wide (TTY_COMPATIBLE:
    rich then writes as to a terminal, styles included; NO_COLOR: without colours)."""
    base = {
        k: v
        for k, v in os.environ.items()
        if k not in ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")
    }
    if width is not None:
        base.update(TTY_COMPATIBLE="1", TTY_INTERACTIVE="0", NO_COLOR="1", COLUMNS=str(width))
    return subprocess.run(
        [sys.executable, "-m", "warehouse", *args], capture_output=True, env={**base, **(env or {})}, timeout=300
    )


def text(res: subprocess.CompletedProcess[bytes]) -> str:
    """stdout as text, without the terminal styles."""
    return SGR.sub(b"", res.stdout).decode("utf-8")


def assert_literal(res: subprocess.CompletedProcess[bytes], shown: list[str] = SHOWN) -> str:
    """The run printed no control character but newline and tab (and a terminal's styles, SGR
    sequences, none of them a stored value's), no traceback, and the hostile values as text."""
    for stream in (res.stdout, res.stderr):
        for raw in (*RAW[1:], b"\x1b]", b"\x1b[31mred"):
            assert raw not in stream, (raw, stream[:3000])
        assert b"\x1b" not in SGR.sub(b"", stream), stream[:3000]
        assert b"Traceback" not in stream, stream.decode("utf-8", "replace")[-3000:]
    out = text(res) + SGR.sub(b"", res.stderr).decode("utf-8")
    for s in shown:
        assert s in out, (s, out[:3000])
    return out


@pytest.fixture(scope="module")
def hostile(tmp_path_factory) -> dict[str, str]:
    """A warehouse whose every stored string an attacker chose: names, ids, metadata, messages, events."""
    url = str(tmp_path_factory.mktemp("hostile") / "wh")
    wh = warehouse.open(url, create=True)
    ids = {}
    for agent in ("a", "b"):
        with wh.writer(
            dataset="ds" + PART, agent=agent + PART, attack={"type": "inj" + PART, "config": {"k" + HOSTILE: HOSTILE}}
        ) as w:
            for t in range(3):
                w.add_execution(
                    execution_id=f"{agent}{t}-{HOSTILE}-end{agent}{t}",
                    task_id=f"task{t}{HOSTILE}",
                    benign_score=1.0,
                    attack_score=1.0 if agent == "b" else 0.0,
                    model="m" + HOSTILE,
                    metadata={"note": HOSTILE, "k" + MARKUP: 1},
                    error=None,
                    messages=[
                        {"role": "user", "content": HOSTILE},
                        {
                            "role": "assistant",
                            "content": None,
                            "tool_calls": [
                                {
                                    "id": "c" + HOSTILE,
                                    "type": "function",
                                    "function": {"name": "f" + HOSTILE, "arguments": HOSTILE},
                                }
                            ],
                        },
                        {
                            "role": "tool",
                            "tool_call_id": "c" + HOSTILE,
                            "name": "f" + HOSTILE,
                            "content": [{"type": "text", "text": HOSTILE}],
                        },
                    ],
                    attacks=[{"vector_id": "v" + HOSTILE, "type": "t" + HOSTILE, "content": HOSTILE}],
                )
            ids[agent] = w.config_hash
    with wh.writer(dataset="ds" + PART, agent="live" + PART) as w:
        ex = w.start_execution(task_id="live" + HOSTILE)
        ex.log("error", HOSTILE, attrs={"x": HOSTILE})
        with ex.span("tool:" + HOSTILE):
            pass
        ex.finish(benign_score=1.0)
    return {"url": url, "a": ids["a"], "b": ids["b"], "live": ex.execution_id}


@pytest.mark.parametrize(
    "args, shown",
    [
        (["scores"], PART_SHOWN),
        (["scores", "--by", "agent,metadata.note"], SHOWN),
        (["scores", "--k", "1,2"], PART_SHOWN),
        (["sql", "select * from executions"], SHOWN),
        (["sql", "select * from messages"], SHOWN),
        (["sql", "select * from attacks"], SHOWN),
        (["sql", "select * from configs"], PART_SHOWN),
        (["sql", "select * from events"], SHOWN),
        (["show", "enda0"], SHOWN),
        (["show", "enda0", "--full"], SHOWN),
        (["ls", "--partitions"], PART_SHOWN),
        (["tail", "-n", "50"], SHOWN),
        (["compare", "{a}", "{b}"], SHOWN),
    ],
)
def test_stored_values_print_as_literal_text(hostile, args, shown) -> None:
    # to a terminal, wide enough that no value is wrapped inside a table cell; and to a pipe
    res = run(*[a.format(**hostile) for a in args], "--url", hostile["url"], width=200 if args[0] == "show" else 5000)
    assert res.returncode == 0, res.stderr.decode()
    assert_literal(res, shown)
    piped = run(*[a.format(**hostile) for a in args], "--url", hostile["url"])
    assert piped.returncode == 0 and piped.stdout.count(b"\x1b") == piped.stderr.count(b"\x1b") == 0


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_json_and_csv_output_hold_no_control_character(hostile, fmt) -> None:
    for args in (["scores", "--by", "agent,task_id"], ["sql", "select * from messages"], ["ls", "--partitions"]):
        res = run(*args, "--url", hostile["url"], "--format", fmt)
        assert res.returncode == 0, res.stderr.decode()
        assert_literal(res, ["[/oops]", "[link=http://evil.example]m[/link]"])
    rows = json.loads(
        run("sql", "select agent from executions where agent like 'a%'", "--url", hostile["url"], "-f", "json").stdout
    )
    assert {r["agent"] for r in rows} == {"a" + PART}  # JSON escapes controls and keeps the exact value


def test_in_a_colour_terminal_only_the_clis_own_styles_reach_it(hostile) -> None:
    env = {"FORCE_COLOR": "1", "COLUMNS": "200"}
    for args in (["scores"], ["show", "enda0"], ["tail"], ["sql", "select agent, task_id from executions"]):
        res = run(*args, "--url", hostile["url"], env=env)
        assert res.returncode == 0, res.stderr.decode()
        out = res.stdout
        assert b"\x1b[" in out  # styled: the test does look at a colour terminal's bytes
        assert re.sub(rb"\x1b\[[0-9;]*m", b"", out).count(b"\x1b") == 0, out[:2000]  # only SGR styles
        for raw in (b"\x1b]", b"\x07", b"\r", "\x9b".encode(), "\u202e".encode(), b"\x1b[31mred"):
            assert raw not in out
        assert "\\x1b[31mred" in re.sub(r"\x1b\[[0-9;]*m", "", out.decode())


def test_user_supplied_values_in_errors_are_literal(hostile, tmp_path) -> None:
    res = run("show", "[/oops]\x1b[31m", "--url", hostile["url"])
    assert res.returncode == 1
    assert_literal(res, ["[/oops]\\x1b[31m"])
    missing = tmp_path / "[/oops] \x1b[31mred"
    res = run("ls", "--url", str(missing))
    assert res.returncode == 1 and b"no warehouse" in res.stderr
    assert_literal(res, ["[/oops] \\x1b[31mred"])
    res = run("tail", "--url", hostile["url"], "--format", "[/oops]\x1b[31m")
    assert res.returncode == 1
    assert_literal(res, ["[/oops]\\x1b[31m"])
    res = run("ls", "--url", f"{tmp_path}/a\x1b]8;;http://evil.example\x07")  # fsspec reads a protocol in it
    assert res.returncode == 1 and res.stderr.startswith(b"error: cannot open the warehouse URL")
    assert_literal(res, ["\\x1b]8;;http://evil.example\\x07"])


def test_report_export_and_doctor_print_literal_text_and_escape_html(hostile, tmp_path) -> None:
    out = tmp_path / "r[/oops]" / "report.html"
    res = run("report", "--url", hostile["url"], "--out", str(out), "--title", "T" + HOSTILE)
    assert res.returncode == 0, res.stderr.decode()
    assert_literal(res, ["r[/oops]"])  # no raw control either from matplotlib's warnings (missing glyphs)
    page = out.read_text(encoding="utf-8")
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]", page)
    assert "\\x1b[31mred" in page and "[/oops]" in page and "<title>T[/oops]" in page
    res = run("export", "parquet", str(tmp_path / "exp"), "--url", hostile["url"])
    assert res.returncode == 0, res.stderr.decode()
    assert_literal(res, [])
    res = run("doctor", "--url", hostile["url"])
    assert res.returncode == 0, res.stderr.decode()
    assert_literal(res, [])


def test_log_lines_and_tracebacks_show_control_characters_escaped(capsys) -> None:
    record = logging.LogRecord("warehouse", logging.WARNING, __file__, 1, "dropped %s", (HOSTILE,), None)
    line = LiteralLogFormatter("%(message)s").format(record)
    assert "\x1b" not in line and "\u202e" not in line and "\\x1b[31mred" in line and "[/oops]" in line
    try:
        raise KeyError(HOSTILE)
    except KeyError:
        literal_excepthook(*sys.exc_info())
    err = capsys.readouterr().err
    assert "Traceback" in err and "KeyError" in err and "\x1b" not in err and "\\x1b[31mred" in err


# -- tables fit the terminal ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_wh(tmp_path_factory) -> str:
    url = str(tmp_path_factory.mktemp("demo") / "demo-warehouse")
    res = run("demo", "--url", url, "--tasks", "12", "--samples", "2", "--processes", "1")
    assert res.returncode == 0, res.stderr.decode()
    return url


@pytest.mark.parametrize("columns", [80, 120])
@pytest.mark.parametrize(
    "args",
    [
        ["scores", "--k", "1,2"],
        ["scores", "--by", "dataset,agent,attack,model"],
        ["sql", "select * from executions limit 5"],
        ["ls", "--partitions"],
        ["history"],
    ],
)
def test_tables_fit_the_terminal_and_never_cut_a_number(demo_wh, columns, args) -> None:
    res = run(*args, "--url", demo_wh, width=columns)
    assert res.returncode == 0, res.stderr.decode()
    out = text(res)
    assert max(cell_len(line) for line in out.splitlines()) <= columns, out
    assert "…" not in out  # nothing shortened with an ellipsis
    if args[0] == "scores":
        rows = json.loads(run(*args, "--url", demo_wh, "--format", "json").stdout)
        for r in rows:  # every count and every interval whole
            assert re.search(rf"\b{r['n']}\b", out)
            assert f"{100 * r['utility']:.1f} [{100 * r['utility_low']:.0f}–{100 * r['utility_high']:.0f}]" in out
    if "not shown" in out:
        assert "--format csv" in " ".join(out.split())
    wide = run(*args, "--url", demo_wh, width=1000)
    assert "not shown" not in text(wide)  # a wide enough terminal shows every column


# -- grouping keys and pass@k exclusions ---------------------------------------------------------------
def test_grouping_by_a_key_no_execution_has_is_an_error_listing_the_keys(demo_wh) -> None:
    wh = warehouse.open(demo_wh)
    for call in (
        lambda: wh.scores(by="metadata.difficulty_typo"),
        lambda: analytics.attack_success_rates(wh, by=["agent", "metadata.difficulty_typo"]),
        lambda: analytics.pass_at_k(wh, by="metadata.difficulty_typo"),
        lambda: analytics.usage(wh, by="metadata.difficulty_typo"),
    ):
        with pytest.raises(InvalidArgument, match="difficulty_typo") as info:
            call()
        assert isinstance(info.value, ValueError) and "metadata.difficulty" in str(info.value)
    with pytest.raises(InvalidArgument, match="agent_config.model"):
        wh.scores(by="agent_config.modle")
    # keys that exist still group, also with a filter
    assert None not in {r[0] for r in wh.scores(by="metadata.difficulty", where="agent = 'plain'").fetchall()}
    res = run("scores", "--by", "metadata.difficulty_typo", "--url", demo_wh)
    lines = res.stderr.decode().strip().splitlines()
    assert res.returncode == 1 and len(lines) == 1 and "metadata.difficulty," in lines[0] and not res.stdout


def test_pass_at_k_over_too_few_runs_says_why_it_is_empty(demo_wh) -> None:
    res = run("scores", "--by", "agent", "--k", "1,3", "--url", demo_wh)
    out = " ".join(text(res).split())
    rows = json.loads(run("scores", "--by", "agent", "--k", "1,3", "--url", demo_wh, "-f", "json").stdout)
    assert res.returncode == 0 and rows
    for r in rows:  # every task ran twice: none counts at k = 3, and the table says how many were left out
        assert r["pass_at_3"] is None and r["pass_at_3_excluded"] > 0
        assert f"— ({r['pass_at_3_excluded']} excl.)" in out
    assert "fewer than 3 scored runs" in out


# -- README and show -----------------------------------------------------------------------------------
def test_readme_compare_runs_on_the_demo(demo_wh) -> None:
    commands = re.findall(
        r"^warehouse compare ([0-9a-f]{4,8}) ([0-9a-f]{4,8}) --url demo-warehouse", README.read_text(), flags=re.M
    )
    assert commands
    for a, b in commands:
        res = run("compare", a, b, "--url", demo_wh)
        assert res.returncode == 0, res.stderr.decode()
        assert "plain" in text(res) and "tool_filter" in text(res)


def test_an_ambiguous_id_prefix_says_a_suffix_will_do(demo_wh) -> None:
    wh = warehouse.open(demo_wh)
    ids = [r[0] for r in wh.sql("select execution_id from executions order by execution_id").fetchall()]
    res = run("show", ids[0][:4], "--url", demo_wh)
    assert res.returncode == 1
    err = res.stderr.decode()
    assert "ambiguous" in err and "last" in err and ids[0] in err
    assert run("show", ids[0][-8:], "--url", demo_wh).returncode == 0


@pytest.fixture(scope="module")
def long_message(tmp_path_factory) -> tuple[str, str]:
    url = str(tmp_path_factory.mktemp("long") / "wh")
    wh = warehouse.open(url, create=True)
    body = "".join(f"line {i:07d} " + "x" * 40 + "\n" for i in range(40_000))  # 2 MB, 40,000 lines
    with wh.writer(dataset="ds", agent="ag") as w:
        w.add_execution(
            execution_id="long-1",
            task_id="t",
            benign_score=1.0,
            duration_ms=12020.0,
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "tool", "content": body},
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": body}}],
                },
            ],
        )
    return url, body


def test_show_folds_long_messages_and_full_shows_them_whole(long_message) -> None:
    url, body = long_message
    res = run("show", "long-1", "--url", url)
    out = text(res)
    assert res.returncode == 0 and len(res.stdout) < 30_000
    assert "line 0000000" in out and "line 0039999" not in out
    assert out.count("--full shows everything") == 2  # the tool result and the call's arguments
    assert "12,020 ms" in out and "e+0" not in out
    full = run("show", "long-1", "--url", url, "--full")
    assert full.returncode == 0
    assert text(full).count("line 0039999") == 2 and len(full.stdout) > 2 * len(body)


# -- the smaller promises ------------------------------------------------------------------------------
def test_history_limit_zero_prints_no_commit(demo_wh) -> None:
    wh = warehouse.open(demo_wh)
    assert wh.history(0) == [] and len(wh.history(2)) == 2
    with pytest.raises(InvalidArgument, match="-1"):
        wh.history(-1)
    assert json.loads(run("history", "--limit", "0", "--url", demo_wh, "-f", "json").stdout) == []


def test_tail_says_when_there_are_no_events(demo_wh) -> None:
    res = run("tail", "--url", demo_wh)
    assert res.returncode == 0 and "no events" in text(res)
    res = run("tail", "--url", demo_wh, "--format", "jsonl")
    assert res.stdout == b"" and b"no events" in res.stderr


def test_ls_shows_sizes_in_human_units_and_exact_bytes_in_json(demo_wh) -> None:
    out = text(run("ls", "--url", demo_wh))
    assert re.search(r"\d+\.\d (kB|MB)", out) and "size" in out
    rows = json.loads(run("ls", "--url", demo_wh, "-f", "json").stdout)
    assert rows and all(isinstance(r["bytes"], int) and r["bytes"] > 0 for r in rows)


@pytest.mark.parametrize("command", COMMANDS)
def test_help_shows_no_type_on_flags(command) -> None:
    res = run(command, "--help")
    assert res.returncode == 0 and "<bool>" not in text(res)


def test_sql_help_lists_every_view() -> None:
    out = " ".join(text(run("sql", "--help")).split())
    views = [m for _, sql in catalog().views for m in re.findall(r"create or replace view (\w+)", sql)]
    for view in views:
        assert view in out, view
    assert {"pass_at_k", "task_scores", "usage", "events", "imports"} <= set(views)


def test_compare_lists_tasks_in_natural_order(tmp_path) -> None:
    wh = warehouse.open(str(tmp_path / "wh"), create=True)
    hashes = []
    for agent, hit in (("a", 0.0), ("b", 1.0)):
        with wh.writer(dataset="ds", agent=agent, attack={"type": "inj", "config": {}}) as w:
            for t in range(1, 13):
                w.add_execution(task_id=f"task_{t}", attack_score=hit)
            hashes.append(w.config_hash)
    order = [f"task_{t}" for t in range(1, 13)]
    assert list(analytics.compare(wh, *hashes).flipped_up) == order
    out = text(run("compare", *hashes, "--url", str(tmp_path / "wh")))
    assert ", ".join(order) in out


def test_report_tables_scroll_and_the_scatter_axes_fit_the_data(demo_wh) -> None:
    wh = warehouse.open(demo_wh)
    data = report.collect(wh)
    page = report.render(data, url=demo_wh, version=wh.version)
    [svg] = re.findall(r'<section id="utility">.*?(<svg\b.*?</svg>)', page, flags=re.S)
    assert page.count("<table>") == page.count('<div class="table-wrap"><table>') == 5
    css = re.sub(r"\s+", " ", report.CSS)
    assert re.search(r"\.table-wrap \{[^}]*overflow-x: auto", css) and re.search(
        r"\.table-wrap \{[^}]*max-width: 100%", css
    )
    assert re.findall(r"([^{}]+)\{[^}]*white-space: nowrap", css) == [" td.n "]  # only numbers never wrap
    # the demo's attack success rates stay below 70 %: the x axis ends there, not at 100 %
    xticks = [int(t) for t in re.findall(r'id="scatter-xtick_\d+">.*?<text[^>]*>(\d+)%</text>', svg, flags=re.S)]
    assert xticks and max(xticks) < 90, xticks
    lo, hi = report.axis_range([0.1, 0.3])
    assert 0 < lo < 0.1 and 0.3 < hi < 0.5 and report.axis_range([1.0, 1.0]) == pytest.approx((0.82, 1.02))


def test_report_counts_tasks_as_scores_does(demo_wh) -> None:
    wh = warehouse.open(demo_wh)
    n_tasks = wh.scores(by="all").pl()["n_tasks"][0]
    assert report.collect(wh).totals["tasks"] == n_tasks == 12
    assert f"over {n_tasks} tasks" in report.render(report.collect(wh), url=demo_wh, version=wh.version)


def test_demo_again_without_fresh_says_it_added_to_the_warehouse(tmp_path) -> None:
    url = str(tmp_path / "d")
    first = run("demo", "--url", url, "--tasks", "1", "--samples", "1", "--processes", "1")
    assert first.returncode == 0 and "already held" not in text(first)
    second = run("demo", "--url", url, "--tasks", "1", "--samples", "1", "--processes", "1")
    assert second.returncode == 0 and "already held a warehouse at version 18" in " ".join(text(second).split())
    assert "--fresh" in text(second)
