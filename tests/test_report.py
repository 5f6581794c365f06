"""`warehouse report`: one self-contained HTML page whose numbers are the analytics' numbers.

The page is checked as a file: every section has a chart and a table, nothing is fetched from a
network, the HTML is well formed and every inline SVG parses as XML, and the tables' exact values
(`data-value`) equal what `warehouse.analytics` and independent Polars computations over the raw rows give.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import polars as pl
import pytest
from typer.testing import CliRunner

import warehouse
from warehouse.cli import app, demo
from warehouse.read import analytics
from warehouse.read.report import SECTIONS, build_report, shown_ks

SAMPLES = 3
VOID = {"meta", "link", "br", "hr", "img", "input", "col", "area", "base", "wbr", "source", "track", "embed", "param"}


class Page(HTMLParser):
    """The parts of the report the tests read: sections, tables with their cells, every attribute,
    and tag balance (a stray or unclosed tag is recorded in `errors`)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.attrs: list[tuple[str, str, str | None]] = []
        self.tags: list[str] = []
        self.section: str | None = None
        self.tables: dict[str, list[list[dict[str, str | None]]]] = {}
        self.row: list[dict[str, str | None]] | None = None
        self.cell: dict[str, str | None] | None = None
        self.text: dict[str, list[str]] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(tag, k, v) for k, v in attrs]
        a = dict(attrs)
        if tag == "section":
            self.section = a["id"]
        elif tag == "tr" and self.section:
            self.row = []
        elif tag == "td" and self.row is not None:
            self.cell = {"col": a.get("data-col"), "value": a.get("data-value"), "text": ""}
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attrs += [(tag, k, v) for k, v in attrs]

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else None}>")
            return
        self.stack.pop()
        if tag == "td" and self.cell is not None and self.row is not None:
            self.row.append(self.cell)
            self.cell = None
        elif tag == "tr" and self.row is not None:
            if self.row:
                self.tables.setdefault(self.section, []).append(self.row)
            self.row = None
        elif tag == "section":
            self.section = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell["text"] += data
        if self.section:
            self.text.setdefault(self.section, []).append(data)

    def rows(self, section: str) -> list[dict[str, str]]:
        """The table rows of a section as {column: exact value (data-value) or text}."""
        return [
            {c["col"]: (c["value"] if c["value"] is not None else c["text"]) for c in r}
            for r in self.tables.get(section, [])
        ]


def parse(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


@pytest.fixture(scope="module")
def wh(tmp_path_factory) -> warehouse.Warehouse:
    url = str(tmp_path_factory.mktemp("report") / "demo")
    demo.run_campaign(url, tasks=6, samples=SAMPLES, processes=1)
    return warehouse.open(url)


@pytest.fixture(scope="module")
def html(wh, tmp_path_factory) -> str:
    out = build_report(wh, tmp_path_factory.mktemp("out") / "sub" / "report.html", top=5)
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def page(html) -> Page:
    return parse(html)


def svgs(html: str) -> list[str]:
    return re.findall(r"<svg\b.*?</svg>", html, flags=re.S)


def section_html(html: str, anchor: str) -> str:
    return re.search(rf'<section id="{anchor}">.*?</section>', html, flags=re.S).group(0)


def close(a: str, b: float | None) -> bool:
    return b is not None and abs(float(a) - b) < 1e-12


def test_every_section_has_a_chart_and_a_table_and_the_header_names_the_warehouse(wh, html, page) -> None:
    assert [a for a, _ in SECTIONS] == ["asr", "utility", "pass-at-k", "tasks", "cost"]
    for anchor, _ in SECTIONS:
        body = section_html(html, anchor)
        assert body.count("<svg") == 1, anchor
        assert "<table>" in body and page.rows(anchor), anchor
    header = html[: html.index("<main>")]
    assert wh.url in header and f"at version {wh.version}" in header
    assert (
        f"{18 * 6 * SAMPLES:,} finished executions of 18 configurations over 6 tasks" in header
    )  # distinct task ids, as `scores` counts them


def test_report_loads_nothing_from_a_network(html, page) -> None:
    assert not {"script", "link", "img", "iframe", "object", "embed", "image", "audio", "video"} & set(page.tags)
    for tag, name, value in page.attrs:
        if name in {"href", "xlink:href", "src", "srcset", "action", "poster"}:
            assert value and value.startswith("#"), (tag, name, value)  # in-page anchors and SVG <use> only
    assert not re.search(r"url\(\s*['\"]?(?!#)", html)  # CSS/SVG url() only to local ids
    assert "@import" not in html
    # the only http(s) strings are XML namespace names, which browsers never fetch
    assert set(re.findall(r"https?://[^\s\"'<>)]+", html)) <= {
        "http://www.w3.org/2000/svg",
        "http://www.w3.org/1999/xlink",
    }


def test_html_is_well_formed_and_every_chart_is_valid_svg_with_unique_ids(html, page) -> None:
    assert html.startswith("<!DOCTYPE html>")
    assert not page.errors and not page.stack, (page.errors, page.stack)
    charts = svgs(html)
    assert len(charts) == 5
    for svg in charts:
        root = ET.fromstring(svg)  # raises on malformed XML
        assert root.tag == "{http://www.w3.org/2000/svg}svg" and root.get("role") == "img" and root.get("aria-label")
        own = {e.get("id") for e in root.iter() if e.get("id")}
        referenced = re.findall(r'href="#([^"]+)"|url\(#([^)]+)\)', svg)
        assert referenced and {a or b for a, b in referenced} <= own, "a chart refers to an id it does not define"
    ids = [v for _, k, v in page.attrs if k == "id"]  # the sections' and every chart's
    assert len(ids) == len(set(ids)) > 100


def test_asr_table_and_heatmap_show_the_analytics_numbers(wh, html, page) -> None:
    expected = analytics.attack_success_rates(wh, by=("agent", "attack")).filter(pl.col("attack") != "none")
    rows = {(r["agent"], r["attack"]): r for r in page.rows("asr")}
    assert set(rows) == set(zip(expected["agent"], expected["attack"])) and len(rows) == 6
    heatmap = svgs(section_html(html, "asr"))[0]
    for e in expected.iter_rows(named=True):
        r = rows[(e["agent"], e["attack"])]
        assert int(r["n"]) == e["n"] == 6 * SAMPLES * 2  # two datasets
        assert close(r["asr"], e["asr"]) and close(r["utility"], e["utility"])
        assert (
            f"{100 * e['asr']:.0f}%" in heatmap and f"[{100 * e['asr_low']:.0f}, {100 * e['asr_high']:.0f}]" in heatmap
        )
    # independently, from the raw rows
    raw = (
        wh.scan("executions")
        .filter(pl.col("attack") != "none")
        .group_by("agent", "attack")
        .agg(pl.col("attack_score").mean())
        .collect()
    )
    for agent, attack, asr in raw.iter_rows():
        assert close(rows[(agent, attack)]["asr"], asr)


def test_utility_without_attack_is_the_benign_runs_mean(wh, page) -> None:
    rows = {r["agent"]: r for r in page.rows("utility")}
    raw = (
        wh.scan("executions")
        .filter(pl.col("attack") == "none")
        .group_by("agent")
        .agg(pl.col("benign_score").mean(), pl.len())
        .collect()
    )
    assert set(rows) == set(raw["agent"]) == {"plain", "react", "tool_filter"}
    for agent, utility, n in raw.iter_rows():
        assert close(rows[agent]["utility"], utility) and int(rows[agent]["n"]) == n


def test_pass_at_k_table_matches_analytics_and_pass_at_1_is_the_plain_rate(wh, page) -> None:
    rows = {(r["metric"], r["agent"]): r for r in page.rows("pass-at-k")}
    benign = analytics.pass_at_k(wh, by=("agent",), where="attack = 'none'").filter(pl.col("metric") == "benign_score")
    attack = analytics.pass_at_k(wh, by=("agent",), where="attack <> 'none'").filter(pl.col("metric") == "attack_score")
    expected = pl.concat([benign, attack])
    assert set(rows) == set(zip(expected["metric"], expected["agent"])) and len(rows) == 6
    assert sorted(expected["k"].unique()) == [1, 2, 3]
    for e in expected.iter_rows(named=True):
        assert close(rows[(e["metric"], e["agent"])][f"pass_at_{e['k']}"], e["pass_at_k"])
    # pass@1 of a metric is its mean success rate; pass@k never falls as k grows
    asr = analytics.attack_success_rates(wh, by=("agent",), where="attack <> 'none'")
    util = analytics.attack_success_rates(wh, by=("agent",), where="attack = 'none'")
    assert sorted(asr["agent"]) == sorted(util["agent"]) == sorted({agent for _, agent in rows})
    for agent, value in zip(asr["agent"], asr["asr"]):
        assert close(rows[("attack_score", agent)]["pass_at_1"], value)
    for agent, value in zip(util["agent"], util["utility"]):
        assert close(rows[("benign_score", agent)]["pass_at_1"], value)
    for r in rows.values():
        assert float(r["pass_at_1"]) <= float(r["pass_at_2"]) <= float(r["pass_at_3"])
        assert int(r["n_excluded"]) == 0


def test_most_compromised_tasks_are_the_top_of_the_raw_counts(wh, page) -> None:
    rows = page.rows("tasks")
    assert len(rows) == 5
    raw = (
        wh.scan("executions")
        .filter(pl.col("attack") != "none")
        .group_by("dataset", "task_id")
        .agg(
            pl.len().alias("runs"),
            (pl.col("attack_score") >= 1).sum().alias("compromised"),
            pl.col("agent").filter(pl.col("attack_score") >= 1).unique().sort().str.join(", ").alias("agents"),
        )
        .collect()
    )
    by_task = {(d, t): (n, c, a) for d, t, n, c, a in raw.iter_rows()}
    shown = [(r["dataset"], r["task_id"]) for r in rows]
    rates = [float(r["asr"]) for r in rows]
    assert rates == sorted(rates, reverse=True)
    for r in rows:
        n, c, agents = by_task[(r["dataset"], r["task_id"])]
        assert (int(r["runs"]), int(r["compromised"])) == (n, c) == (n, round(float(r["asr"]) * n))
        assert r["agents"] == (agents or "–")
    assert max(c / n for (n, c, _), key in zip(by_task.values(), by_task) if key not in shown) <= min(rates)


def test_cost_table_sums_to_the_raw_cost_of_every_execution(wh, page) -> None:
    rows = page.rows("cost")
    raw = (
        wh.scan("executions")
        .group_by("config_hash")
        .agg(pl.col("cost").sum(), pl.len(), pl.col("total_tokens").sum())
        .collect()
    )
    assert {r["config_hash"] for r in rows} == set(raw["config_hash"]) and len(rows) == 18
    for h, cost, n, tokens in raw.iter_rows():
        r = next(r for r in rows if r["config_hash"] == h)
        assert abs(float(r["cost"]) - cost) < 1e-9 and int(r["n"]) == n and int(r["total_tokens"]) == tokens
        assert r["model"] in {a["model"] for a in demo.AGENTS.values()}


@pytest.mark.slow
def test_names_are_escaped_in_the_page_and_literal_in_the_charts(tmp_path) -> None:
    wh = warehouse.open(str(tmp_path / "w"), create=True)
    agent = '<b>"$x$" & co</b>'
    for attack in (None, {"type": "important_instructions", "config": {}}):
        with wh.writer(
            dataset="agentdojo", agent={"type": agent, "config": {}}, attack=attack, flush_interval=None
        ) as w:
            for task in range(3):
                w.add_execution(
                    task_id=f"t{task}",
                    benign_score=float(task > 0),
                    attack_score=float(task == 0) if attack else None,
                    usage={"input_tokens": 10, "output_tokens": 5, "cost": 0.5},
                )
    html = build_report(wh, tmp_path / "r.html").read_text()
    page = parse(html)
    assert not page.errors and "b" not in page.tags
    assert html.count("&lt;b&gt;&quot;$x$&quot; &amp; co&lt;/b&gt;") >= 4
    assert {r["agent"] for r in page.rows("asr")} == {agent}
    for svg in svgs(html):
        ET.fromstring(svg)
    assert "$x$" in "".join(svgs(html))  # drawn as written, not as TeX
    assert "Every task ran once per configuration here, so only k = 1 exists" in html


def test_empty_warehouse_gives_a_report_that_says_there_is_nothing_yet(tmp_path) -> None:
    wh = warehouse.open(str(tmp_path / "w"), create=True)
    html = build_report(wh, tmp_path / "r.html").read_text()
    page = parse(html)
    assert not page.errors and "svg" not in page.tags
    assert "0 finished executions of 0 configurations over 0 tasks" in html
    assert html.count("No attacked executions yet.") == 2 and "No attacked executions with both scores yet." in html
    assert "No scored executions yet." in html and "No executions yet." in html
    assert all(page.rows(a) == [{None: "no rows"}] for a, _ in SECTIONS)


def test_shown_ks_keep_small_k_every_decade_and_the_largest() -> None:
    assert shown_ks(0) == [] and shown_ks(4) == [1, 2, 3, 4] and shown_ks(8) == list(range(1, 9))
    assert shown_ks(9) == [1, 2, 3, 5, 9]
    assert shown_ks(100) == [1, 2, 3, 5, 10, 20, 50, 100]
    assert shown_ks(64) == [1, 2, 3, 5, 10, 20, 50, 64]


def test_cli_report_writes_the_file_and_bad_input_is_a_one_line_error(wh, tmp_path) -> None:
    out = tmp_path / "nested" / "r.html"
    result = CliRunner().invoke(app, ["report", "--url", wh.url, "--out", str(out), "--top", "3"])
    assert result.exit_code == 0, result.output
    assert str(out) in result.output.replace("\n", "")
    assert len(parse(out.read_text()).rows("tasks")) == 3
    missing = CliRunner().invoke(app, ["report", "--url", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x.html")])
    assert missing.exit_code == 1 and "no warehouse at" in missing.output and "Traceback" not in missing.output
    assert not (tmp_path / "x.html").exists()
    bad = CliRunner().invoke(app, ["report", "--url", wh.url, "--top", "0"])
    assert bad.exit_code == 2 and "--top" in bad.output
