"""The Python examples of README.md and docs/*.md run as written (each in a fresh directory) and print
what they claim.

An example is a self-contained ```python block: one that starts with an import. Fragments (the S3
`storage_options` call, the PostgreSQL queries that follow an import from a running server) start
otherwise and are not run. A claim is the comment after a `print(...)` on its line, or a `# ...`
line right after a line that starts with `print(`; every claim must appear in what the example printed.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def python_blocks(page: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", page.read_text(), flags=re.S)


def examples(page: Path) -> list[str]:
    return [b for b in python_blocks(page) if b.startswith(("import ", "from "))]


# (id, code): the id is the page's path from the repository root and the example's number on that page,
# counting only runnable examples from 1 (`docs/analytics.md#2`).
EXAMPLES = [(f"{page.relative_to(ROOT)}#{n}", code) for page in PAGES for n, code in enumerate(examples(page), 1)]


def claimed(block: str) -> list[str]:
    """The outputs an example claims in `print(...)  # <output>` comments and `# <output>` lines after a print."""
    out = []
    lines = block.splitlines()
    for j, line in enumerate(lines):
        m = re.match(r"\s*print\(.*\)\s+# (.+)$", line)
        if m:
            out.append(m.group(1).strip())
        elif line.startswith("print(") and j + 1 < len(lines) and lines[j + 1].startswith("# "):
            out.append(lines[j + 1][2:].strip())
    return out


def readme_python_example_commits(tmp_path: Path, out: str) -> None:
    assert "ignore the user" in out  # the tool message's content parts, round-tripped
    assert (tmp_path / "results" / "_manifest" / f"{1:020d}.json").exists()


# What some examples promise beyond their printed claims.
MORE_CHECKS: dict[str, Callable[[Path, str], None]] = {"README.md#1": readme_python_example_commits}


def test_only_the_fragments_that_need_a_server_are_left_unrun() -> None:
    """A block that stops starting with an import would silently stop being run: the fragments are counted."""
    fragments = {str(page.relative_to(ROOT)): len(python_blocks(page)) - len(examples(page)) for page in PAGES}
    # docs/delta-readers.md's snippets read a published table; tests/test_delta_readers.py runs them
    assert {k: v for k, v in fragments.items() if v} == {
        "docs/delta-readers.md": 8,
        "docs/import-export.md": 1,
        "docs/s3-and-sync.md": 1,
    }


def test_every_page_is_found_and_the_readme_has_its_three_examples() -> None:
    ids = [i for i, _ in EXAMPLES]
    assert ids[:3] == ["README.md#1", "README.md#2", "README.md#3"] and "README.md#4" not in ids
    assert len({i.split("#")[0] for i in ids}) >= 6, ids
    assert set(MORE_CHECKS) <= set(ids)


@pytest.mark.parametrize(("example_id", "code"), EXAMPLES, ids=[i for i, _ in EXAMPLES])
def test_example_runs_and_prints_what_it_claims(tmp_path: Path, example_id: str, code: str) -> None:
    claims = claimed(code)
    assert claims, f"{example_id} claims no output"
    script = tmp_path / "example.py"
    script.write_text(code)
    res = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert res.returncode == 0, f"{example_id} failed:\n{res.stderr}"
    for c in claims:
        assert c in res.stdout, f"{example_id} claims {c!r}; it printed:\n{res.stdout}"
    if example_id in MORE_CHECKS:
        MORE_CHECKS[example_id](tmp_path, res.stdout)


def readme_shell_lines(heading: str) -> list[str]:
    """The lines of the first ```bash block after `heading` in README.md."""
    text = (ROOT / "README.md").read_text()
    section = text[text.index(heading) :]
    block = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert block, heading
    return block.group(1).splitlines()


@pytest.mark.slow
@pytest.mark.subprocess
def test_readme_publication_lines_answer_as_shown_on_the_demo(tmp_path: Path) -> None:
    """`make demo`'s warehouse, published with the README's command, reads with Polars and DataFusion
    as the README's comments say."""
    bin_dir = Path(sys.executable).parent
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    demo = subprocess.run(
        [str(bin_dir / "warehouse"), "demo", "--url", "demo-warehouse", "--fresh"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert demo.returncode == 0, demo.stderr
    lines = readme_shell_lines("## Spark, Trino, Databricks, Athena, DataFusion")
    assert lines[0].startswith("warehouse publish delta --url demo-warehouse")
    checked = 0
    for line in lines:
        command, _, claim = line.partition("   # ")
        res = subprocess.run(
            ["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env
        )
        assert res.returncode == 0, f"{command}\n{res.stderr}"
        if command.startswith("python -c"):
            assert claim and claim.strip() in res.stdout, f"{command} claims {claim!r}; it printed:\n{res.stdout}"
            checked += 1
    assert checked == 2
    assert (tmp_path / "demo-warehouse" / "executions" / "_delta_log").is_dir()
