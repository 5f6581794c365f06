"""pydantic-ai `ModelMessage`s (their JSON form, as `ModelMessagesTypeAdapter` or a pydantic model
holding `list[ModelMessage]` writes it) to warehouse message rows, and back.

A `ModelMessage` is `{"kind": "request" | "response", "parts": [{"part_kind": ...}, ...], ...}`.
Rows follow the chat-API convention pydantic-ai itself uses when it sends a history to an
OpenAI-style model:

- a request gives one row per part: `system-prompt` -> role `system`; `user-prompt` -> `user`
  (text as `content`; a list of user content keeps its items as content parts, strings as
  `{"type": "text", "text": ...}`); `tool-return` -> `tool` with `tool_call_id` and `name` (the tool),
  its content as text (JSON text when it is not a string); `retry-prompt` (and newer versions'
  `retry-feedback`) -> `tool` when it answers a tool call (`tool_name` set), else `user`, its content
  as text; newer versions' `instruction` -> `system`. A part of another kind becomes a `user` row
  with its `content` when that is a string. The request's `instructions` (not a part) become a
  `system` row before its parts when they differ from the previous request's (pydantic-ai repeats
  them on every request). A request without parts or instructions still gives one row.
- a response gives one `assistant` row: `tool-call` and `builtin-tool-call` parts become
  OpenAI-style `tool_calls` `{"id", "type": "function" | "builtin", "function": {"name",
  "arguments"}}` (arguments as the model gave them: JSON text or an object); text parts become the
  content (one text part: a string; otherwise content parts, text as `{"type": "text", "text"}`,
  thinking as `{"type": "thinking", "thinking"}`, any other part as it is); `tokens` is the
  response's output tokens.
- each row's `timestamp` is its part's (else its message's).

Nothing is lost, and the mapping is reversible: the first row of each ModelMessage holds the
message verbatim in its metadata, `{"pydantic_ai": {"message": <ModelMessage JSON>, ...}}`; every
row records which part it shows (`"part": j`, or `"instructions"`; absent on a response row, which
shows all parts). `model_messages` returns the original list from the rows.

Pure functions over plain JSON values; pydantic-ai itself is not needed here.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from warehouse.core.errors import InvalidRecord
from warehouse.core.records import USAGE_FIELDS

#: The metadata key of rows made from a pydantic-ai message.
KEY = "pydantic_ai"
KINDS = ("request", "response")
#: RunUsage / (older) Usage keys with a warehouse usage column of another name.
USAGE_RENAMES = {
    "request_tokens": "input_tokens",
    "response_tokens": "output_tokens",
    "output_reasoning_tokens": "reasoning_tokens",
}


def is_model_message(m: Any) -> bool:
    """Whether `m` has the JSON shape of a pydantic-ai ModelMessage (and not of a role message)."""
    return isinstance(m, Mapping) and "role" not in m and m.get("kind") in KINDS and isinstance(m.get("parts"), list)


def _text(value: Any) -> str | None:
    """A part's content as text: strings as they are, anything else as compact JSON."""
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _user_content(content: Any) -> Any:
    if isinstance(content, list):
        return [{"type": "text", "text": c} if isinstance(c, str) else c for c in content]
    return content


def _request_row(field: str, part: Mapping[str, Any]) -> dict[str, Any]:
    kind = part.get("part_kind")
    row: dict[str, Any]
    if kind in ("system-prompt", "instruction"):
        row = {"role": "system", "content": _text(part.get("content"))}
    elif kind == "user-prompt":
        row = {"role": "user", "content": _user_content(part.get("content"))}
    elif kind == "tool-return":
        row = {
            "role": "tool",
            "content": _text(part.get("content")),
            "tool_call_id": part.get("tool_call_id"),
            "name": part.get("tool_name"),
        }
    elif kind in ("retry-prompt", "retry-feedback"):
        row = {
            "role": "tool" if part.get("tool_name") else "user",
            "content": _text(part.get("content")),
            "tool_call_id": part.get("tool_call_id"),
            "name": part.get("tool_name"),
        }
    elif isinstance(kind, str):
        content = part.get("content")
        row = {"role": "user", "content": content if isinstance(content, str) else None}
    else:
        raise InvalidRecord(f"{field}.part_kind must be a string, got {kind!r:.80}")
    if part.get("timestamp") is not None:
        row["timestamp"] = part["timestamp"]
    return row


def _response_row(field: str, message: Mapping[str, Any]) -> dict[str, Any]:
    calls: list[dict[str, Any]] = []
    content: list[Any] = []
    for j, part in enumerate(message["parts"]):
        if not isinstance(part, Mapping):
            raise InvalidRecord(f"{field}.parts[{j}] must be an object, got {type(part).__name__}")
        kind = part.get("part_kind")
        if kind in ("tool-call", "builtin-tool-call"):
            calls.append(
                {
                    "id": part.get("tool_call_id"),
                    "type": "function" if kind == "tool-call" else "builtin",
                    "function": {"name": part.get("tool_name"), "arguments": part.get("args")},
                }
            )
        elif kind == "text":
            content.append({"type": "text", "text": part.get("content")})
        elif kind == "thinking":
            content.append({"type": "thinking", "thinking": part.get("content")})
        elif isinstance(kind, str):
            content.append(dict(part))
        else:
            raise InvalidRecord(f"{field}.parts[{j}].part_kind must be a string, got {kind!r:.80}")
    row: dict[str, Any] = {"role": "assistant"}
    if len(content) == 1 and content[0].get("type") == "text" and isinstance(content[0].get("text"), str):
        row["content"] = content[0]["text"]
    else:
        row["content"] = content or None
    if calls:
        row["tool_calls"] = calls
    usage = message.get("usage")
    if isinstance(usage, Mapping):
        tokens = usage.get("output_tokens", usage.get("response_tokens"))
        if isinstance(tokens, int) and not isinstance(tokens, bool):
            row["tokens"] = tokens
    if message.get("timestamp") is not None:
        row["timestamp"] = message["timestamp"]
    return row


def to_rows(messages: Sequence[Any]) -> list[dict[str, Any]]:
    """pydantic-ai ModelMessages (JSON form) -> warehouse message dicts (see the module docstring).

    Raises InvalidRecord naming the message (and part) that is not a ModelMessage.
    """
    out: list[dict[str, Any]] = []
    instructions = None
    for i, m in enumerate(messages):
        field = f"messages[{i}]"
        if not is_model_message(m):
            got = m.get("kind") if isinstance(m, Mapping) else type(m).__name__
            raise InvalidRecord(
                f"{field} is not a pydantic-ai ModelMessage (an object with kind 'request' or "
                f"'response' and a list of parts), got {got!r:.80}"
            )
        verbatim = dict(m)
        rows: list[tuple[dict[str, Any], Any]] = []  # (row, which part it shows)
        if m["kind"] == "response":
            rows.append((_response_row(field, m), None))
        else:
            given = m.get("instructions")
            if isinstance(given, str) and given and given != instructions:
                row: dict[str, Any] = {"role": "system", "content": given}
                if m.get("timestamp") is not None:
                    row["timestamp"] = m["timestamp"]
                rows.append((row, "instructions"))
            instructions = given
            for j, part in enumerate(m["parts"]):
                if not isinstance(part, Mapping):
                    raise InvalidRecord(f"{field}.parts[{j}] must be an object, got {type(part).__name__}")
                rows.append((_request_row(f"{field}.parts[{j}]", part), j))
            if not rows:
                rows.append(
                    (
                        {
                            "role": "user",
                            "content": None,
                            **({"timestamp": m["timestamp"]} if m.get("timestamp") is not None else {}),
                        },
                        None,
                    )
                )
        for n, (row, part_index) in enumerate(rows):
            meta: dict[str, Any] = {"message": verbatim} if n == 0 else {}
            if part_index is not None:
                meta["part"] = part_index
            row["metadata"] = {KEY: meta}
            out.append(row)
    return out


def model_messages(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The pydantic-ai ModelMessages (JSON form) that `to_rows` made `rows` from, in order: the
    inverse of `to_rows`. `rows` are message dicts as `Warehouse.execution()` returns them, or rows
    of the `messages` table (metadata as JSON text), in `seq` order.

    Raises InvalidRecord naming the first row that was not made from a pydantic-ai message.
    """
    out: list[dict[str, Any]] = []
    for i, row in enumerate(rows):
        meta = row.get("metadata")
        if isinstance(meta, str):
            meta = json.loads(meta)
        entry = meta.get(KEY) if isinstance(meta, Mapping) else None
        if not isinstance(entry, Mapping):
            raise InvalidRecord(
                f"message {i} (role {row.get('role')!r}) was not made from a pydantic-ai message: "
                f"its metadata has no {KEY!r} entry"
            )
        if "message" in entry:
            out.append(entry["message"])
    return out


def run_usage(usage: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A pydantic-ai RunUsage (or older Usage) as (warehouse usage columns, every other key).

    Keys that are warehouse usage columns (`input_tokens`, `output_tokens`, `cache_read_tokens`,
    `cache_write_tokens`, `requests`, `tool_calls`, `cost`, ...) keep their names; older Usage's
    `request_tokens` / `response_tokens` and `output_reasoning_tokens` fill `input_tokens` /
    `output_tokens` / `reasoning_tokens` (unless that key is given too: then they stay in the second
    dict), and `details["reasoning_tokens"]` fills `reasoning_tokens` when nothing else does.
    Everything else (audio tokens, `details`, ...) is returned as it is, in the second dict.
    """
    columns: dict[str, Any] = {}
    other: dict[str, Any] = {}
    for k, v in usage.items():
        if k in USAGE_FIELDS:
            columns[k] = v
        elif k in USAGE_RENAMES and USAGE_RENAMES[k] not in usage:
            columns[USAGE_RENAMES[k]] = v
        else:
            other[k] = v
    details = usage.get("details")
    if "reasoning_tokens" not in columns and isinstance(details, Mapping) and "reasoning_tokens" in details:
        columns["reasoning_tokens"] = details["reasoning_tokens"]
    return columns, other


def model_name(messages: Sequence[Mapping[str, Any]]) -> str | None:
    """The `model_name` of the responses, when they all agree on one; else None."""
    names = {m.get("model_name") for m in messages if isinstance(m, Mapping) and m.get("kind") == "response"}
    names.discard(None)
    return names.pop() if len(names) == 1 else None
