"""Terminal output of the CLI: every value printed is literal text.

Rich reads `[...]` in a string as markup (`[/x]` raises, `[link=...]` makes a hyperlink) and
`:name:` as an emoji, and passes escape sequences through to the terminal. The consoles here never
parse markup or emoji and escape control characters (`warehouse.literal`) in every string they
render: a table cell, a title, a line. Styling is applied with `Text` objects (`styled`), whose
text is escaped the same way. Panel titles and progress-bar columns parse markup on their own, so
the CLI gives them `Text` too.
"""

from __future__ import annotations

import logging
import sys
import traceback
from types import TracebackType
from typing import IO, Any

from rich.console import Console
from rich.style import Style
from rich.text import Text

from warehouse.core.literal import escape_controls, literal_str


class LiteralConsole(Console):
    """A rich Console that prints every string as literal text: no markup, no emoji, no
    highlighting, control characters escaped (newlines kept)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.update(markup=False, emoji=False, highlight=False)
        super().__init__(**kwargs)

    def render_str(self, text: str, **kwargs: Any) -> Text:
        # Every plain string rich renders (print arguments, table cells, titles) passes here.
        kwargs.update(markup=False, emoji=False)
        return super().render_str(escape_controls(text), **kwargs)


def make_console(*, stderr: bool = False, file: IO[str] | None = None) -> LiteralConsole:
    """A LiteralConsole for stdout (or stderr). Its width is the terminal's (COLUMNS, else the
    terminal's size); output to a pipe or a file is 200 columns wide, so that tables are not squeezed
    (COLUMNS is not a sign of a narrow reader there: GNU readline exports it, e.g. under pytest)."""
    console = LiteralConsole(stderr=stderr, file=file)
    if not console.is_terminal:
        console = LiteralConsole(stderr=stderr, file=file, width=200)
    return console


def styled(value: Any, style: str | Style = "", *, newlines: bool = True) -> Text:
    """`value` as a Text in `style`: literal, control characters escaped (newlines too with
    `newlines=False`)."""
    return Text(literal_str(value, newlines=newlines), style=style)


def line(*parts: str | tuple[Any, str] | Any) -> Text:
    """One line from parts: values, or `(value, style)` pairs (the style is the program's, never a
    stored value); every value literal, newlines escaped too."""
    out = Text()
    for part in parts:
        value, style = part if isinstance(part, tuple) and len(part) == 2 and isinstance(part[1], str) else (part, "")
        out.append(literal_str(value, newlines=False), style=style)
    return out


class LiteralLogFormatter(logging.Formatter):
    """A logging formatter whose output holds no control character but newline and tab: log
    messages quote stored values (paths, ids, error texts)."""

    def format(self, record: logging.LogRecord) -> str:
        return escape_controls(super().format(record))


def install_log_handler(stream: IO[str] | None = None) -> logging.Handler | None:
    """Show the `warehouse` logger's warnings, and Python warnings (which quote a library's view of
    stored values, e.g. a glyph a font lacks), on stderr through `LiteralLogFormatter`; unless the
    application configured logging itself (a handler on the root logger or on `warehouse`)."""
    names = ("warehouse", "py.warnings")
    if logging.getLogger().handlers or logging.getLogger("warehouse").handlers:
        return None
    handler = logging.StreamHandler(stream)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(LiteralLogFormatter("%(message)s"))
    for name in names:
        logging.getLogger(name).addHandler(handler)
    logging.captureWarnings(True)
    return handler


def literal_excepthook(kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
    """Print an unexpected error's traceback (`sys.excepthook`'s signature) with control characters
    escaped: its message may quote a stored value."""
    sys.stderr.write(escape_controls("".join(traceback.format_exception(kind, exc, tb))))
    sys.stderr.flush()
