"""Generic neural-network blocks; they know nothing of RL or Atari."""
