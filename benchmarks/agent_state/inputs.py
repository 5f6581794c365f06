"""What the three agent-state benchmarks share: the run configuration their warehouses are written
under, and filler text for generated messages and states."""

from __future__ import annotations

import random

DATASET = {"type": "bench_agent_state", "config": {"suite": "workspace"}}
AGENT = {"type": "tool_agent", "config": {"model": "gpt-4o-2024-08-06", "max_turns": 50}}

_WORDS = [
    "the",
    "agent",
    "calls",
    "search_emails",
    "with",
    "query",
    "invoice",
    "and",
    "finds",
    "three",
    "matching",
    "messages",
    "from",
    "accounting",
    "about",
    "the",
    "quarterly",
    "report",
    "which",
    "is",
    "due",
    "on",
    "friday",
    "so",
    "it",
    "drafts",
    "a",
    "reply",
    "asking",
    "for",
    "the",
    "revised",
    "figures",
    "before",
    "scheduling",
    "a",
    "meeting",
    "in",
    "the",
    "shared",
    "calendar",
    "with",
    "alice",
    "and",
    "bob",
    "then",
    "reads",
    "the",
    "attached",
    "spreadsheet",
    "summarises",
    "totals",
    "per",
    "region",
    "flags",
    "an",
    "outlier",
    "in",
    "emea",
    "and",
    "waits",
    "for",
    "the",
    "tool",
    "result",
    "before",
    "deciding",
    "whether",
    "to",
    "send",
    "the",
    "message",
    "or",
    "ask",
    "the",
    "user",
]


def text(rng: random.Random, n_chars: int) -> str:
    """About `n_chars` characters of words from an agent's working day (deterministic in `rng`)."""
    words: list[str] = []
    size = 0
    while size < n_chars:
        w = rng.choice(_WORDS)
        words.append(w)
        size += len(w) + 1
    return " ".join(words)
