"""Catch: a tiny built-in RGB game with the Atari envs' API, for tests and quick learning checks.

A ball appears in a random column of the top row of a ``rows x columns`` grid and falls one row per
step; a one-cell paddle in the bottom row moves left (action 0), stays (1) or moves right (2). When
the ball reaches the bottom row the episode ends with reward +1 if the paddle is under it and -1
otherwise; every other step gives 0. An episode is exactly ``rows - 1`` steps (9 by default).

Frames are ``uint8 [3, size, size]`` RGB: the grid upscaled (nearest neighbour), dark background,
blue paddle, yellow ball (drawn over the paddle when caught). The ball's column is a hash of the
sub-environment's seed and episode index, so everything is deterministic given the seed and fully
vectorised over sub-environments (no per-environment Python loop).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from einops import rearrange
from gymnasium.spaces import Box, Discrete
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs._checks import check_actions, check_num_envs, reset_mask, vector_seeds
from envs.options import CatchOptions
from envs.single import SingleEnv

BACKGROUND, BALL, PADDLE = 0, 1, 2
# [3, 3]: colour (channel, code) for codes BACKGROUND, BALL, PADDLE
PALETTE = np.array([[16, 16, 24], [250, 200, 40], [60, 150, 255]], dtype=np.uint8).T.copy()

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser, elementwise on uint64 (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


class _CatchCore:
    """State and rules of ``n`` Catch games, batched: ball ``[n]`` row/column, paddle ``[n]``."""

    def __init__(self, n: int, options: CatchOptions) -> None:
        self.n, self.rows, self.columns = n, options.rows, options.columns
        size = options.size
        # pixel -> grid cell, for nearest-neighbour upscaling by fancy indexing
        self._pixel_row = (np.arange(size) * self.rows) // size  # [size]
        self._pixel_col = (np.arange(size) * self.columns) // size  # [size]
        self.ball_row = np.zeros(n, dtype=np.int64)
        self.ball_col = np.zeros(n, dtype=np.int64)
        self.paddle_col = np.zeros(n, dtype=np.int64)
        self.seeds = np.zeros(n, dtype=np.uint64)
        self.episodes = np.zeros(n, dtype=np.uint64)
        self.seeded = False

    def seed(self, seeds: np.ndarray, mask: np.ndarray) -> None:
        """Reseed the games in ``mask`` (bool ``[n]``) with ``seeds`` (int64 ``[mask.sum()]``, -1 = keep)."""
        idx = np.flatnonzero(mask)
        keep = seeds < 0
        self.seeds[idx[~keep]] = seeds[~keep].astype(np.uint64)
        self.episodes[idx[~keep]] = 0

    def reset(self, mask: np.ndarray) -> None:
        """Start new episodes in the games of ``mask`` (bool ``[n]``)."""
        with np.errstate(over="ignore"):
            h = _splitmix64(_splitmix64(self.seeds[mask]) + self.episodes[mask])
        self.ball_col[mask] = (h % np.uint64(self.columns)).astype(np.int64)
        self.ball_row[mask] = 0
        self.paddle_col[mask] = self.columns // 2
        self.episodes[mask] += np.uint64(1)

    def step(self, actions: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Advance the games of ``mask`` by one step with ``actions`` (int ``[n]``, 0/1/2).

        Returns:
            ``reward`` float32 ``[n]`` and ``terminated`` bool ``[n]`` (zero/False outside ``mask``).
        """
        moved = np.clip(self.paddle_col + actions - 1, 0, self.columns - 1)
        self.paddle_col = np.where(mask, moved, self.paddle_col)
        self.ball_row = np.where(mask, self.ball_row + 1, self.ball_row)
        terminated = mask & (self.ball_row == self.rows - 1)
        caught = self.ball_col == self.paddle_col
        reward = np.where(terminated, np.where(caught, 1.0, -1.0), 0.0).astype(np.float32)
        return reward, terminated

    def render(self) -> np.ndarray:
        """Frames of all games, uint8 ``[n, 3, size, size]``."""
        codes = np.full((self.n, self.rows, self.columns), BACKGROUND, dtype=np.intp)
        envs = np.arange(self.n)
        codes[envs, self.rows - 1, self.paddle_col] = PADDLE
        codes[envs, self.ball_row, self.ball_col] = BALL
        cells = rearrange(PALETTE[:, codes], "c n h w -> n c h w")  # [n, 3, rows, columns]
        # nearest-neighbour upscaling: gather rows, then columns (uint8, the cheap way round)
        return np.take(np.take(cells, self._pixel_row, axis=2), self._pixel_col, axis=3)


def _fresh_base_seed(count: int) -> np.ndarray:
    base = int(np.random.SeedSequence().entropy) % (2**62)
    return np.arange(base, base + count, dtype=np.int64)


class CatchVectorEnv(VectorEnv):
    """``num_envs`` Catch games, batched in numpy.

    Observations uint8 ``[N, 3, size, size]``, rewards float32 ``[N]`` (+1 caught, -1 missed, 0
    otherwise), ``terminated`` bool ``[N]``, ``truncated`` bool ``[N]`` (always False), ``info`` empty.

    Autoreset exactly as ``envs.atari.AtariVectorEnv`` (gymnasium 1.x ``NEXT_STEP``): after a step
    that returns ``terminated[i]``, the next ``step`` ignores ``actions[i]``, starts a new episode in
    sub-env ``i`` and returns its first frame with ``reward[i] == 0`` and ``terminated[i] == False``.

    Seeding as gymnasium: ``reset(seed=s)`` seeds sub-env ``i`` with ``s + i``; ``CatchEnv`` seeded
    ``s + i`` plays the same episodes as sub-env ``i``.

    Args:
        num_envs: number of games (>= 1).
        options: ``CatchOptions()`` when ``None``.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, num_envs: int, options: CatchOptions | None = None) -> None:
        num_envs = check_num_envs(num_envs)
        if options is None:
            options = CatchOptions()
        if not isinstance(options, CatchOptions):
            raise ValueError(f"options must be a CatchOptions, got {type(options).__name__}")
        self.options = options
        self.num_envs = num_envs
        self._core = _CatchCore(num_envs, options)
        self.single_observation_space = Box(0, 255, (3, options.size, options.size), np.uint8)
        self.single_action_space = Discrete(3)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self._autoreset = np.zeros(num_envs, dtype=bool)
        self._has_reset = False

    def get_action_meanings(self) -> list[str]:
        """``['LEFT', 'STAY', 'RIGHT']``."""
        return ["LEFT", "STAY", "RIGHT"]

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start new episodes.

        Args:
            seed: ``None`` (continue each sub-env's episode sequence; fresh entropy on the very first
                reset), an int ``s`` (sub-env ``i`` gets ``s + i``, counting only the sub-envs being
                reset) or one int/None per sub-env reset.
            options: ``{"reset_mask": bool [N]}`` resets only those sub-envs (after a full reset).

        Returns:
            ``obs`` uint8 ``[N, 3, size, size]`` and an empty ``info``.
        """
        mask = reset_mask(options, self.num_envs)
        if mask is not None and not self._has_reset:
            raise RuntimeError("a partial reset (reset_mask) needs a full reset() first")
        if mask is None:
            mask = np.ones(self.num_envs, dtype=bool)
        seeds = vector_seeds(seed, int(mask.sum()))
        if not self._core.seeded:
            fresh = _fresh_base_seed(int(mask.sum()))
            seeds = fresh if seeds is None else np.where(seeds < 0, fresh, seeds)
        if seeds is not None:
            self._core.seed(seeds, mask)
            self._core.seeded = True
        self._core.reset(mask)
        self._autoreset[mask] = False
        self._has_reset = True
        return self._core.render(), {}

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """One step of every game.

        Args:
            actions: integers ``[N]`` in ``{0: left, 1: stay, 2: right}``.

        Returns:
            ``obs`` uint8 ``[N, 3, size, size]``, ``reward`` float32 ``[N]``, ``terminated`` bool
            ``[N]``, ``truncated`` bool ``[N]``, ``{}``.
        """
        if not self._has_reset:
            raise RuntimeError("call reset() before step()")
        acts = check_actions(actions, self.num_envs, 3)
        restart = self._autoreset
        if restart.any():
            self._core.reset(restart)
        reward, terminated = self._core.step(acts, ~restart)
        self._autoreset = terminated
        return self._core.render(), reward, terminated, np.zeros(self.num_envs, dtype=bool), {}


class CatchEnv(SingleEnv):
    """One Catch game (the batched core with one game); see the module docstring for the rules.

    ``reset`` returns ``obs`` uint8 ``[3, size, size]`` and ``{}``; ``step(action)`` (0 moves the
    paddle left, 1 keeps it, 2 moves it right) returns ``(obs, reward in {-1, 0, 1}, terminated,
    truncated=False, {})``. After ``terminated`` call ``reset()`` (stepping raises
    ``RuntimeError``). Deterministic given ``reset(seed=...)``.

    Args:
        options: ``CatchOptions()`` when ``None``.
    """

    def __init__(self, options: CatchOptions | None = None) -> None:
        super().__init__(CatchVectorEnv(1, options))
