"""Runtime: the only place with I/O and processes (replay, loop, logging, checkpoints)."""
