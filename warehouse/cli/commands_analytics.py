"""Commands that compute over the results: scores, compare, report."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated

import typer
from rich import box

from warehouse.cli.app import DEFAULT_URL, UrlOpt, user_errors
from warehouse.cli.output import Col, Format, console, emit, print_scores, print_table, to_json
from warehouse.core.errors import InvalidArgument
from warehouse.core.literal import literal_str
from warehouse.core.terminal import line
from warehouse.warehouse import SCORE_GROUPS
from warehouse.warehouse import open as open_warehouse


def _ks(text: str | None) -> list[int] | None:
    """`--k 1,5` as a list of positive integers."""
    if not text:
        return None
    try:
        ks = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise InvalidArgument(f"--k takes comma-separated positive integers, e.g. 1,5; got {text!r}") from None
    if not ks or min(ks) < 1:
        raise InvalidArgument(f"--k takes comma-separated positive integers, e.g. 1,5; got {text!r}")
    return ks


def scores(
    url: UrlOpt = DEFAULT_URL,
    by: Annotated[
        str,
        typer.Option(
            help=f"Comma-separated grouping: {', '.join(SCORE_GROUPS)}, metadata.KEY, "
            "dataset_config.KEY, agent_config.KEY, attack_config.KEY, or 'all'."
        ),
    ] = "dataset,agent,attack",
    where: Annotated[
        str | None, typer.Option(help="SQL condition over executions, e.g. \"dataset = 'agentdojo'\".")
    ] = None,
    k: Annotated[str | None, typer.Option("--k", help="Also pass@k for these k, comma-separated (e.g. 1,5).")] = None,
    threshold: Annotated[float, typer.Option(help="pass@k: a run succeeds when its score is at least this.")] = 1.0,
    checks: Annotated[
        bool,
        typer.Option(
            "--checks",
            help="Also count checks (datasets named <name>.checks, e.g. "
            "AgentDojo's injection tasks run alone), left out by default.",
        ),
    ] = False,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """Utility and attack success rate per group, with 95% Wilson intervals (and pass@k with --k)."""
    with user_errors():
        print_scores(open_warehouse(url), by.split(","), where, fmt, _ks(k), threshold, checks)


class Metric(str, Enum):
    attack_score = "attack_score"
    benign_score = "benign_score"


def compare(
    config_a: Annotated[str, typer.Argument(help="Configuration A: a config hash or a unique prefix of one.")],
    config_b: Annotated[str, typer.Argument(help="Configuration B: a config hash or a unique prefix of one.")],
    url: UrlOpt = DEFAULT_URL,
    metric: Annotated[Metric, typer.Option(help="The score compared.")] = Metric.attack_score,
    threshold: Annotated[float, typer.Option(help="A run succeeds when its score is at least this.")] = 1.0,
    where: Annotated[str | None, typer.Option(help="SQL condition over executions (both sides).")] = None,
    n_boot: Annotated[int, typer.Option("--n-boot", min=1, help="Bootstrap resamples.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 0,
    fmt: Annotated[Format, typer.Option("--format", "-f")] = Format.table,
) -> None:
    """Compare two configurations task by task: the difference in rate with a bootstrap 95% interval,
    an exact McNemar p-value, and the tasks whose outcome flipped."""
    from warehouse.read import analytics

    with user_errors():
        wh = open_warehouse(url)
        c = analytics.compare(
            wh, config_a, config_b, metric=metric.value, threshold=threshold, n_boot=n_boot, seed=seed, where=where
        )
    if fmt is Format.json:
        out = c.to_frame().to_dicts()[0]
        out.update(
            flipped_up=list(c.flipped_up),
            flipped_down=list(c.flipped_down),
            only_a=list(c.only_a),
            only_b=list(c.only_b),
        )
        sys.stdout.write(to_json(out) + "\n")
        return
    if fmt is Format.csv:
        emit(c.tasks.columns, c.tasks.rows(), fmt)
        return
    name = "ASR" if c.metric == "attack_score" else "utility"

    def pct(p: float | None) -> str:
        return "—" if p is None else f"{100 * p:.1f}%"

    with user_errors():
        described = {
            r[0]: r[1:]
            for r in wh.sql(
                "select config_hash, dataset, agent, attack from configs where config_hash in (?, ?)", [c.a, c.b]
            ).fetchall()
        }
    console.print(f"{name} ({c.metric} ≥ {c.threshold:g}) on the {c.n_pairs} tasks both ran")
    sides = (("A", c.a, c.rate_a), ("B", c.b, c.rate_b))
    print_table(
        [
            Col("", [s for s, _, _ in sides], drop=0),
            Col("config_hash", [literal_str(h) for _, h, _ in sides], drop=0),
            *(
                Col(col, [literal_str((described.get(h) or ("", "", ""))[j]) for _, h, _ in sides], drop=2)
                for j, col in enumerate(("dataset", "agent", "attack"))
            ),
            Col(name, [pct(r) for _, _, r in sides], number=True, drop=0),
        ],
        table_box=box.SIMPLE_HEAD,
    )
    if c.n_pairs == 0:
        console.print(
            f"no task has a {c.metric} in both configurations: nothing to compare "
            f"({len(c.only_a)} only in A, {len(c.only_b)} only in B)"
        )
        return
    assert c.diff is not None and c.diff_low is not None and c.diff_high is not None  # (set when n_pairs > 0)
    console.print(
        f"B − A: {100 * c.diff:+.1f} points, 95% bootstrap interval [{100 * c.diff_low:+.1f}, "
        f"{100 * c.diff_high:+.1f}]; exact McNemar p = {c.p_value:.3g} "
        f"({len(c.flipped_up) + len(c.flipped_down)} of {c.n_pairs} tasks flipped)"
    )
    for label, tasks in (
        ("flipped up (A fails, B succeeds)", c.flipped_up),
        ("flipped down (A succeeds, B fails)", c.flipped_down),
    ):
        console.print(line(f"{label}: {len(tasks)}", ": " if tasks else "", ", ".join(tasks)))
    if c.only_a or c.only_b:
        console.print(f"not paired: {len(c.only_a)} task(s) only in A, {len(c.only_b)} only in B")


def report_cmd(
    url: UrlOpt = DEFAULT_URL,
    out: Annotated[str, typer.Option("--out", "-o", help="The HTML file to write.")] = "report.html",
    title: Annotated[str, typer.Option(help="The page's title.")] = "Evaluation report",
    top: Annotated[int, typer.Option(min=1, help="How many of the most compromised tasks to show.")] = 10,
) -> None:
    """Write one self-contained HTML report: ASR heatmap, utility vs. ASR, pass@k, most compromised tasks, cost."""
    from warehouse.read import report as report_mod  # matplotlib loads only for this command

    with user_errors():
        wh = open_warehouse(url)
        path = report_mod.build_report(wh, out, title=title, top=top)
    console.print(
        line(
            "report of ",
            wh.url,
            f" (version {wh.version}) written to ",
            (str(path), "bold"),
            f" ({path.stat().st_size / 1024:.0f} KiB); open it in any browser, offline.",
        ),
        soft_wrap=True,
    )
