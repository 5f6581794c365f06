"""The README's Python examples run as written (each in a fresh directory) and print what they claim."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
# The self-contained examples: every python block that starts with an import (the S3 fragment does not).
BLOCKS = [b for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S) if b.startswith(("import ", "from "))]


def run_block(tmp_path: Path, i: int) -> str:
    script = tmp_path / "example.py"
    script.write_text(BLOCKS[i])
    res = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return res.stdout


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


def test_readme_first_example_runs(tmp_path: Path) -> None:
    out = run_block(tmp_path, 0)
    assert "1 ['append', 'create']" in out
    assert "ignore the user" in out  # the tool message's content parts, round-tripped
    assert (tmp_path / "results" / "_manifest" / f"{1:020d}.json").exists()


@pytest.mark.parametrize("i", range(1, len(BLOCKS)))
def test_readme_agent_state_examples_print_what_they_claim(tmp_path: Path, i: int) -> None:
    out = run_block(tmp_path, i)
    claims = claimed(BLOCKS[i])
    assert claims, f"README example {i} claims no output"
    for c in claims:
        assert c in out, f"README example {i} claims {c!r}; it printed:\n{out}"
