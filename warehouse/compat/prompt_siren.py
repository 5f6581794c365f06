"""prompt-siren's `run_persistence` API, backed by a warehouse: change one import.

    from warehouse.compat.prompt_siren import ExecutionPersistence, compute_config_hash

`ExecutionPersistence.create(base_dir, dataset_config, agent_config, attack_config)`,
`save_single_task_execution(task, agent_name, result_ctx, evaluation, task_span)`,
`save_couple_execution(couple, agent_name, result_ctx, benign_eval, malicious_eval, task_span,
generated_attacks)` and `compute_config_hash(dataset_config, agent_config, attack_config)` keep the
signatures, scores and hash of facebookresearch/prompt-siren `src/prompt_siren/run_persistence.py`:
a score is the mean of `evaluation.results` (0.0 when empty), `attack_score` is None in benign mode,
trace and span ids come from `task_span.get_span_context()` (32 and 16 hex digits), and the config
hash is prompt-siren's (first 8 hex digits of the SHA-256 of the sorted JSON of the three configs,
the dataset's sandbox-manager keys left out). Each saved execution becomes exactly the rows that
`wh.import_("legacy", ...)` makes of the file prompt-siren would have written (the importer's own
`execution_fields` maps it), so results imported from old prompt-siren folders and results saved
through this module are one configuration with the same columns.

prompt-siren is not needed: any objects with the attributes that code reads will do (configs with
`type`, `config` and optionally `model_dump()`; a task or couple with `id`; evaluations with
`results`, a dict of name -> number; `result_ctx` with `messages`, pydantic-ai `ModelMessage`s, and
`usage`, a pydantic-ai `RunUsage`; a span with `get_span_context()`; attacks as prompt-siren's
`StrContentAttack`/`BinaryContentAttack` objects or dicts of their fields).

Where this differs from the original, and why:

- `base_dir` is a warehouse: a local path or any warehouse URL (`s3://bucket/prefix`, credentials
  from the AWS environment as `warehouse.open` reads them), or an open `Warehouse` (for explicit
  `storage_options`). It is created if absent; a folder of old prompt-siren output is refused with
  `NotAWarehouse` (import it into a warehouse with `wh.import_("legacy", folder)` instead).
- Nothing is written to files of prompt-siren's layout: no `config.yaml` (the warehouse keeps it as
  `configs/<hash>.yaml`) and no `index.jsonl` (the `executions` view is the index). The `Path` the
  save methods return is the one the original would have written (`output_dir /
  "{%Y%m%d_%H%M%S}_{task id}.json"`, local time); no file is there, and `output_dir` is not created.
- Each save is one commit, done when the call returns (as the original's file is written): it is
  all-or-nothing, never half-written.
- Execution ids are the warehouse's 32-hex-digit time-ordered ids, not 8 characters of a uuid4:
  an id saved again replaces the earlier execution in the warehouse, and 8 hex digits collide after
  tens of thousands of executions.
- `finished_at` is the time of the save in UTC (the original's file has naive local time, which the
  legacy importer can only read as UTC).
- Message parts that pydantic-ai (or this package's mapping) does not know, e.g. from a newer
  version, are kept verbatim instead of failing validation. An attack type `none` (the warehouse's
  attack of benign runs) is refused by `create` with `InvalidRecord`.
- Like the original, a bad value fails with pydantic's `ValidationError` (scores, usage, attacks
  that do not validate), pydantic's `PydanticSerializationError` (binary attack content that is not
  UTF-8, which the original's JSON file cannot hold), `TypeError` (a non-numeric result, a config
  that is not JSON-serialisable) or `AttributeError`
  (an object without an attribute the original reads); bad messages raise `InvalidRecord`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

import pydantic
import pydantic_core
from pydantic import BaseModel
from pydantic_ai.messages import ModelMessage
from pydantic_ai.usage import RunUsage

import warehouse
from warehouse.core.config import RunConfig
from warehouse.core.errors import InvalidRecord, NotAWarehouse
from warehouse.interop.importers import legacy, pydantic_ai_messages
from warehouse.warehouse import Warehouse

__all__ = ["ExecutionPersistence", "compute_config_hash", "model_messages"]

#: The dataset-config keys prompt-siren leaves out of the hash (the sandbox is not the experiment).
SANDBOX_KEYS = ("sandbox_manager_type", "sandbox_manager_config")


@dataclass(frozen=True)
class StrContentAttack:
    """prompt-siren's text attack (`prompt_siren.types.StrContentAttack`)."""

    content: str
    kind: Literal["str"] = "str"


@dataclass(frozen=True)
class BinaryContentAttack:
    """prompt-siren's binary attack (`prompt_siren.types.BinaryContentAttack`)."""

    content: bytes
    media_type: str
    kind: Literal["binary"] = "binary"


InjectionAttack = Annotated[StrContentAttack | BinaryContentAttack, pydantic.Discriminator("kind")]
_MESSAGE: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(ModelMessage)
_MESSAGES: pydantic.TypeAdapter[list[Any]] = pydantic.TypeAdapter(list[ModelMessage])


class _ResultsData(BaseModel):
    benign_score: float
    attack_score: float | None = None


class _ExecutionData(BaseModel):
    """prompt-siren's `ExecutionData` (the execution file), messages already in their JSON form."""

    execution_id: str
    task_id: str
    dataset_type: str
    dataset_config: dict[str, Any]
    agent: str
    config_hash: str
    timestamp: str
    trace_id: str | None
    span_id: str | None
    messages: list[dict[str, Any]]
    usage: RunUsage
    results: _ResultsData
    attacks: dict[str, InjectionAttack] | None = None


def _component(config: Any) -> dict[str, Any]:
    """A prompt-siren config object as `model_dump()` gives it ({type, config})."""
    if isinstance(config, Mapping):
        return dict(config)
    dump = getattr(config, "model_dump", None)
    if callable(dump):
        out = dump()
        if isinstance(out, dict):
            return out
    return {"type": config.type, "config": config.config}


def _hash(dataset: dict[str, Any], agent: dict[str, Any], attack: dict[str, Any] | None) -> str:
    dataset = dict(dataset)
    if "config" in dataset and isinstance(dataset["config"], dict):
        dataset["config"] = {k: v for k, v in dataset["config"].items() if k not in SANDBOX_KEYS}
    combined = {"dataset": dataset, "agent": agent, "attack": attack}
    return hashlib.sha256(json.dumps(combined, sort_keys=True).encode()).hexdigest()[:8]


def compute_config_hash(dataset_config: Any, agent_config: Any, attack_config: Any | None) -> str:
    """prompt-siren's config hash: the first 8 hex digits of the SHA-256 of the sorted JSON of
    {dataset, agent, attack} (each `model_dump()`, attack None for benign runs), the dataset
    config's `sandbox_manager_type`/`sandbox_manager_config` left out. Raises TypeError for a
    config that is not JSON-serialisable, as the original does."""
    return _hash(
        _component(dataset_config),
        _component(agent_config),
        _component(attack_config) if attack_config is not None else None,
    )


def _score(evaluation: Any) -> float:
    """The original's score: the mean of `evaluation.results`, 0.0 when there are none."""
    results = evaluation.results
    return sum(results.values()) / len(results) if results else 0.0


def _trace(task_span: Any) -> tuple[str | None, str | None]:
    ctx = task_span.get_span_context()
    if ctx is None:
        return None, None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


def _message_json(i: int, m: Any) -> dict[str, Any]:
    """One ModelMessage in the JSON form prompt-siren's file holds. A message pydantic-ai cannot
    validate (a part kind it does not know) is kept verbatim, if it has a message's shape."""
    try:
        out = _MESSAGE.dump_python(_MESSAGE.validate_python(m), mode="json", warnings="error")
    except (pydantic.ValidationError, pydantic_core.PydanticSerializationError):
        try:
            out = pydantic_core.to_jsonable_python(dict(m) if isinstance(m, Mapping) else m)
        except pydantic_core.PydanticSerializationError as exc:
            raise InvalidRecord(f"messages[{i}] cannot be stored as JSON: {exc}") from None
    if not pydantic_ai_messages.is_model_message(out):
        raise InvalidRecord(
            f"messages[{i}] is not a pydantic-ai ModelMessage (a ModelRequest or ModelResponse), got {type(m).__name__}"
        )
    return out


def _attack_value(v: Any) -> Any:
    """A prompt-siren attack object (any class with its fields) as a dict of those fields."""
    if isinstance(v, Mapping):
        return dict(v)
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return {f.name: getattr(v, f.name) for f in dataclasses.fields(v)}
    if isinstance(v, BaseModel):
        return v.model_dump()
    return v


def model_messages(execution: Mapping[str, Any]) -> list[ModelMessage]:
    """The pydantic-ai `ModelMessage`s of an execution (`wh.execution(id)`) saved by this module or
    imported from prompt-siren files, validated by pydantic-ai (equal to those saved). Raises
    InvalidRecord if its messages were not made from pydantic-ai messages."""
    return _MESSAGES.validate_python(pydantic_ai_messages.model_messages(execution.get("messages") or []))


@dataclass(frozen=True)
class ExecutionPersistence:
    """Saves task executions of one configuration into a warehouse, as prompt-siren's class of
    the same name saves them into `{base_dir}/{dataset}/{agent}/{attack}/{config_hash}/`. Fields as
    in the original, plus `warehouse`, the open `Warehouse` the executions go to."""

    base_dir: Path | str | Warehouse
    dataset_config: Any
    agent_config: Any
    attack_config: Any | None
    config_hash: str
    output_dir: Path
    warehouse: Warehouse = field(repr=False, compare=False)

    @classmethod
    def create(
        cls,
        base_dir: Path | str | Warehouse,
        dataset_config: Any,
        agent_config: Any,
        attack_config: Any | None,
    ) -> ExecutionPersistence:
        """Open (or create) the warehouse at `base_dir` and check the configuration.

        Raises NotAWarehouse if `base_dir` holds other files (e.g. old prompt-siren output: import
        it with `wh.import_("legacy", ...)`), InvalidRecord for a config the warehouse refuses,
        TypeError for one that is not JSON-serialisable; see `warehouse.open` for the rest.
        """
        config_hash = compute_config_hash(dataset_config, agent_config, attack_config)
        cfg = cls._config(dataset_config, agent_config, attack_config)
        RunConfig.of(cfg["dataset"], cfg["agent"], cfg["attack"]).with_hash(config_hash)
        if isinstance(base_dir, Warehouse):
            wh = base_dir
            root = Path()
        else:
            url = str(base_dir)
            try:
                wh = warehouse.open(url, create=True)
            except NotAWarehouse as exc:
                raise NotAWarehouse(
                    f"{exc} (a folder of prompt-siren results? import it into a warehouse with "
                    f"wh.import_('legacy', {url!r}) and pass that warehouse's URL)"
                ) from None
            root = Path(url) if "://" not in url else Path()
        attack_dir = cfg["attack"]["type"] if cfg["attack"] else legacy.BENIGN
        output_dir = root / cfg["dataset"]["type"] / cfg["agent"]["type"] / attack_dir / config_hash
        return cls(
            base_dir=base_dir,
            dataset_config=dataset_config,
            agent_config=agent_config,
            attack_config=attack_config,
            config_hash=config_hash,
            output_dir=output_dir,
            warehouse=wh,
        )

    @staticmethod
    def _config(dataset_config: Any, agent_config: Any, attack_config: Any | None) -> dict[str, Any]:
        """{dataset, agent, attack} as prompt-siren's config.yaml holds them."""
        return {
            "dataset": _component(dataset_config),
            "agent": _component(agent_config),
            "attack": _component(attack_config) if attack_config is not None else None,
        }

    def save_single_task_execution(
        self,
        task: Any,
        agent_name: str,
        result_ctx: Any,
        evaluation: Any,
        task_span: Any,
    ) -> Path:
        """Save one benign-mode execution (benign score = mean of `evaluation.results`, no attack
        score, no attacks) in one commit; returns the path prompt-siren would have written."""
        return self._save(task.id, task.id, agent_name, result_ctx, _score(evaluation), None, task_span, None)

    def save_couple_execution(
        self,
        couple: Any,
        agent_name: str,
        result_ctx: Any,
        benign_eval: Any,
        malicious_eval: Any,
        task_span: Any,
        generated_attacks: Mapping[str, Any] | None,
    ) -> Path:
        """Save one attack-mode execution of a task couple (benign and attack scores, the generated
        attack vectors) in one commit; returns the path prompt-siren would have written."""
        return self._save(
            couple.id,
            couple.id.replace(":", "_"),
            agent_name,
            result_ctx,
            _score(benign_eval),
            _score(malicious_eval),
            task_span,
            generated_attacks,
        )

    def _save(
        self,
        task_id: str,
        file_id: str,
        agent_name: str,
        result_ctx: Any,
        benign_score: float,
        attack_score: float | None,
        task_span: Any,
        generated_attacks: Mapping[str, Any] | None,
    ) -> Path:
        now = datetime.now()
        trace_id, span_id = _trace(task_span)
        dataset = _component(self.dataset_config)
        messages = [_message_json(i, m) for i, m in enumerate(result_ctx.messages)]
        data = _ExecutionData(
            # The file's id; the warehouse gives the execution an id of its own (see the docstring).
            execution_id=str(uuid.uuid4())[:8],
            task_id=task_id,
            dataset_type=dataset["type"],
            dataset_config=dataset["config"],
            agent=agent_name,
            config_hash=self.config_hash,
            timestamp=now.isoformat(),
            trace_id=trace_id,
            span_id=span_id,
            messages=messages,
            usage=result_ctx.usage,
            results=_ResultsData(benign_score=benign_score, attack_score=attack_score),
            attacks=({k: _attack_value(v) for k, v in generated_attacks.items()} if generated_attacks else None),
        )
        doc = json.loads(data.model_dump_json())
        config = self._config(self.dataset_config, self.agent_config, self.attack_config)
        fields = legacy.execution_fields(doc, config)
        fields.pop("run_id", None)
        fields["execution_id"] = None
        fields["finished_at"] = datetime.now(UTC)
        with self.warehouse.writer(
            dataset=config["dataset"],
            agent=config["agent"],
            attack=config["attack"],
            config_hash=self.config_hash,
            flush_interval=None,
        ) as w:
            w.add_execution(**fields)  # checks every field before buffering anything
        return self.output_dir / f"{now.strftime('%Y%m%d_%H%M%S')}_{file_id}.json"
