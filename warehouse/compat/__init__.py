"""Drop-in adapters: the APIs of the systems this warehouse replaces, backed by a warehouse.

Code written against prompt-siren's `ExecutionPersistence`, an agent runner's `SessionManager` or a
simulation's `RunPersistence` switches by changing one import (`warehouse.compat.prompt_siren`,
`warehouse.compat.sessions`, `warehouse.compat.simulation`); Inspect AI evals and AgentDojo benchmarks
write their results live (`warehouse.compat.inspect_hook`, `warehouse.compat.agentdojo`). The adapters
sit above the public facade and use only it.
"""
