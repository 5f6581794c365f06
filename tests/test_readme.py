"""The README's Python example runs as written (in a fresh directory) and prints what it claims."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_example_runs(tmp_path: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks, "README has no python example"
    script = tmp_path / "example.py"
    script.write_text(blocks[0])
    res = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "1 ['append', 'create']" in res.stdout
    assert "ignore the user" in res.stdout  # the tool message's content parts, round-tripped
    assert (tmp_path / "results" / "_manifest" / f"{1:020d}.json").exists()
