"""Inspect AI live capture, end to end: `python examples/inspect_live.py [FOLDER]` (default: a temporary folder).

Runs a three-sample eval on Inspect's offline `mockllm/model` with WAREHOUSE_INSPECT_URL set, shows the
executions that landed while it ran, then imports the eval's log and shows that nothing was added.
"""

import os
import sys
import tempfile
from pathlib import Path

root = Path(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="inspect-live-"))
os.environ["WAREHOUSE_INSPECT_URL"] = str(root / "warehouse")  # set before the eval: the hook reads it
os.environ["WAREHOUSE_INSPECT_WAL"] = str(root / "wal")

from inspect_ai import Task, eval  # noqa: E402
from inspect_ai.dataset import Sample  # noqa: E402
from inspect_ai.model import ModelOutput, ModelUsage, get_model  # noqa: E402
from inspect_ai.scorer import includes  # noqa: E402

import warehouse  # noqa: E402


def reply(text: str) -> ModelOutput:
    """A fixed model answer with its token counts (mockllm would count them with a downloaded tokenizer)."""
    out = ModelOutput.from_content("mockllm/model", text)
    out.usage = ModelUsage(input_tokens=20, output_tokens=len(text.split()), total_tokens=20 + len(text.split()))
    return out


dataset = [Sample(input=f"What is {i} + {i}?", target=str(2 * i)) for i in range(3)]
# (an iterator, not a list: Inspect fills in the outputs of a list in place, which changes the eval's
# configuration between the start of the run and its log; see docs/compat-inspect.md)
model = get_model("mockllm/model", custom_outputs=iter([reply("0"), reply("2"), reply("five")]))
task = Task(dataset=dataset, scorer=includes())
[log] = eval(task, model=model, display="none", log_dir=str(root / "logs"), max_samples=1)

wh = warehouse.open(str(root / "warehouse"))
query = "select task_id, status, benign_score, input_tokens, result from executions order by task_id"
print("captured live:")
for row in wh.sql(query).fetchall():
    print("  ", row)
report = wh.import_("inspect", log.location)
print(f"importing the log afterwards: {report.summary()}")
print(f"executions now: {wh.sql('select count(*) from executions').fetchall()[0][0]}")
