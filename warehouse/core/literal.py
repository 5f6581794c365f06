"""Stored values as literal text: what a terminal or a page shows of any value is its characters,
never an instruction to the device that shows them.

A message written by a tool an attacker controls can hold ANSI/OSC escape sequences (colours,
cursor moves, hyperlinks, window titles), carriage returns that overwrite what came before, and
Unicode bidirectional overrides that make text read differently from what it is. `escape_controls`
turns every such character into a visible escape; the CLI (`warehouse.terminal`) and the HTML
report pass every stored or user-supplied value through it.
"""

from __future__ import annotations

import re
from typing import Any

#: Characters shown escaped: C0 controls except tab and newline, DEL, C1 controls (0x80-0x9f: some
#: terminals take 0x9b as CSI), the Unicode bidirectional controls (LRM, RLM, ALM, the embeddings,
#: overrides and isolates), the line and paragraph separators, and lone surrogates (undecodable bytes
#: of a command-line argument, which no terminal encoding can write).
CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]"
)
#: The same, and newline: for values that must stay on one line.
CONTROL_OR_NEWLINE = re.compile(
    "[\x00-\x08\n\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029\ud800-\udfff]"
)
_NAMED = {"\n": "\\n", "\r": "\\r"}


def _escape(m: re.Match[str]) -> str:
    c = m.group()
    return _NAMED.get(c) or (f"\\x{ord(c):02x}" if ord(c) < 0x100 else f"\\u{ord(c):04x}")


def escape_controls(text: str, *, newlines: bool = True) -> str:
    """`text` with each control character replaced by its escape as Python writes it (`\\x1b`, `\\r`,
    `\\u202e`); tab is kept, and newline too unless `newlines=False` (then it becomes `\\n`).

    The output holds no character of `CONTROL` (nor newline with `newlines=False`); everything else is
    unchanged. Linear in the length of `text`, and returns `text` itself when there is nothing to escape.
    """
    pattern = CONTROL if newlines else CONTROL_OR_NEWLINE
    if pattern.search(text) is None:
        return text
    return pattern.sub(_escape, text)


def literal_str(value: Any, *, newlines: bool = True) -> str:
    """Any value as literal text: `str(value)` (None as the empty string) with controls escaped."""
    return escape_controls("" if value is None else value if isinstance(value, str) else str(value), newlines=newlines)
