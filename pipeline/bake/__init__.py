"""A bake, step by step: the orchestrator, the steps and their runner, what a run and a layer hold, the bake key
and its plan, the lease and the locks, and several bakes at once."""
