"""Drop-in for a simulation's `RunPersistence` (`src/persistence.py`), backed by the run recorder.

Change the import and nothing else::

    from warehouse.compat.simulation import RunPersistence

    persistence = RunPersistence(scenario_name, save_frequency)
    for step in range(max_steps):
        ...
        if persistence.should_save(step):
            persistence.save_snapshot(step, game_state, global_vars, agent_vars, messages)
    persistence.save_final(step, game_state, global_vars, agent_vars, messages)

Where the data goes: where the original made `results/` at the project root, the adapter uses
the warehouse at the URL in the environment variable `WAREHOUSE_SIMULATION_URL` (a path, or
`s3://bucket/prefix`, any URL `warehouse.open` takes), by default `results/warehouse` (relative to
the working directory, beside any legacy run directories in `results/`), created on first use.
The keyword-only `url=` overrides both. Each run is a `wh.simulations` run (the rows
`wh.import_("simulation", "results/")` writes for the original's `state.json` files), with the
run id the original would give it: `run_<sanitised scenario>_<YYYY-MM-DD_HH-MM-SS>`, `_1`, `_2`, ...
when taken (the start time in UTC, where the original used local time).

Behaviour that differs from the original, and why:

- Every save is one commit that adds one row, in place of reading and rewriting `state.json`; a
  crash keeps every snapshot saved before it.
- A run is listed (`wh.simulations.runs()`) once it has saved a snapshot; the original wrote a
  `state.json` with no snapshots at construction.
- A failed save is logged as a warning (logger `warehouse.compat.simulation`) and the simulation
  goes on, as the original did ("log warnings on save failure, but continue simulation"); a state
  that is not JSON-serialisable, or messages that are not a list, is such a failure (the warning
  names the field) and nothing of it is stored. A snapshot whose commit failed stays pending and
  is committed by the next save. Construction raises InvalidRecord for a save frequency below 0 or
  not an integer and for an empty scenario name (before anything is stored).
- Steps must increase from save to save (the final save may repeat the last step): a save of a
  step not after the previous one is refused with a warning, where the original appended it.
- After `save_final` the run is closed: further saves are refused with a warning.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import warehouse
from warehouse.core.errors import InvalidRecord, WarehouseError

#: The environment variable naming the warehouse (in place of the original's `results/`).
URL_VARIABLE = "WAREHOUSE_SIMULATION_URL"
#: The warehouse used when the variable is unset.
DEFAULT_URL = os.path.join("results", "warehouse")

log = logging.getLogger(__name__)


class RunPersistence:
    """Manages persistence of simulation run data, in a warehouse (see the module docstring)."""

    def __init__(self, scenario_name: str, save_frequency: int, *, url: str | None = None) -> None:
        """Start a run of `scenario_name`, claiming its run id. `save_frequency` 0 saves only the
        final state, k every k-th step (steps divisible by k, 0 included) and the final state.
        Raises InvalidRecord for a bad scenario name or save frequency."""
        if not isinstance(save_frequency, int) or isinstance(save_frequency, bool) or save_frequency < 0:
            raise InvalidRecord(f"save_frequency must be an integer >= 0, got {save_frequency!r:.80}")
        self.url = url or os.environ.get(URL_VARIABLE) or DEFAULT_URL
        self.scenario_name = scenario_name
        self.save_frequency = save_frequency
        self.wh = warehouse.open(self.url, create=True)
        # Every save_snapshot call saves (the caller asks should_save first, as with the original);
        # the recorder's own frequency is therefore 1, and should_save applies save_frequency.
        self.recorder = self.wh.simulations.recorder(scenario_name, save_frequency=1)
        self.run_id: str = self.recorder.run_id

    def __repr__(self) -> str:
        return f"<RunPersistence {self.run_id!r} save_frequency={self.save_frequency} at {self.url!r}>"

    def save_snapshot(
        self, step: int, game_state: dict, global_vars: dict, agent_vars: dict, messages: list[dict]
    ) -> None:
        """Append a snapshot of step `step` to the run (one commit); a failure is logged, not raised."""
        self._save(False, step, game_state, global_vars, agent_vars, messages)

    def should_save(self, step: int) -> bool:
        """True if step `step` is one to save: save_frequency > 0 and step divisible by it."""
        return self.save_frequency > 0 and step % self.save_frequency == 0

    def save_final(
        self, step: int, game_state: dict, global_vars: dict, agent_vars: dict, messages: list[dict]
    ) -> None:
        """Save the final state, whatever the save frequency, and close the run; a failure is logged."""
        self._save(True, step, game_state, global_vars, agent_vars, messages)

    def _save(self, final: bool, step: int, game_state: Any, global_vars: Any, agent_vars: Any, messages: Any) -> None:
        state = {"game_state": game_state, "global_vars": global_vars, "agent_vars": agent_vars, "messages": messages}
        try:
            if final:
                self.recorder.finish(step, **state)
            else:
                self.recorder.step(step, **state)
        except (WarehouseError, OSError) as exc:
            log.warning(
                "run %s: %s of step %r not saved: %s", self.run_id, "final save" if final else "snapshot", step, exc
            )


__all__ = ["RunPersistence", "URL_VARIABLE", "DEFAULT_URL"]
