"""Agent state: live executions read back (checkpoints, resume plans, event streams, trajectories),
conversation sessions and simulation runs."""
