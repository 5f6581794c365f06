"""`python -m benchmarks.agent_state`: run the agent-state benchmark from the command line."""

from . import main

main()
