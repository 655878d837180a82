"""Atari games under the Atari-100k protocol, on ale-py's native threaded vector environment.

Both the vector env and the single env run on the same native code path
(``ale_py.vector_env.AtariVectorEnv``: frame skip, max-pool, no-op starts, FIRE reset and the
``INTER_AREA`` resize all happen in C++), so a single env seeded ``s + i`` produces exactly the frames
of sub-environment ``i`` of a vector env seeded ``s``, given the same actions.

Notes on the native preprocessing (ale-py 0.12.1), which the docstrings below rely on:
  * the observation of a step is ``resize(max(frame[k-1], frame[k]))`` over its last two frames;
  * a step that ends the game or reaches the time limit stops at that frame without grabbing it:
    if that was the step's last frame (always so for the time limit when it is a multiple of
    ``frame_skip``, as 108,000 is), the observation is ``resize(max(previous step's pooled frame,
    this step's second-to-last frame))``; if it ended earlier, the observation repeats the previous
    one. So the last observation of an episode lags by up to ``frame_skip - 1`` frames;
  * ``max_episode_frames`` counts frames played by agent actions (reset no-ops not included).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from ale_py import Action, roms
from ale_py.vector_env import AtariVectorEnv as _NativeVectorEnv
from einops import rearrange
from gymnasium.spaces import Box, Discrete
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs._checks import check_actions, check_num_envs, reset_mask, vector_seeds
from envs.options import AtariOptions
from envs.single import SingleEnv


class AtariVectorEnv(VectorEnv):
    """``num_envs`` copies of one Atari game, stepped in parallel by ale-py's threads.

    Observations are ``uint8 [N, 3, size, size]`` RGB (channels first), rewards ``float32 [N]``
    (raw game score differences, unclipped), ``terminated``/``truncated`` ``bool [N]``; ``info``
    holds ``int32 [N]`` arrays ``lives``, ``frame_number``, ``episode_frame_number``, ``env_id`` and
    a ``bool [N]`` ``life_loss`` (True where ``terminated`` comes from a lost life and the game goes
    on, only with ``terminal_on_life_loss``).

    Autoreset (gymnasium 1.x ``AutoresetMode.NEXT_STEP``; ``metadata["autoreset_mode"]``): a step
    that returns ``terminated[i]`` or ``truncated[i]`` returns the last observation of that episode
    in ``obs[i]``. The *next* ``step`` call does not apply ``actions[i]``: it starts sub-env ``i``'s
    next episode and returns that episode's first observation with ``reward[i] == 0`` and
    ``terminated[i] == truncated[i] == False``. New episodes draw their no-ops from the
    sub-environment's generator, seeded by the last ``reset(seed=...)``.

    With ``terminal_on_life_loss`` the "next episode" after a life-loss terminal is the same game,
    continued (as the usual EpisodicLifeEnv does): that next step plays FIRE (when ``fire_reset``
    and the game has FIRE) or NOOP instead of ``actions[i]``, discards its reward and returns its
    observation with ``reward[i] == 0``, ``terminated[i] == truncated[i] == False``. If the game or
    the time limit ends during that step, a fresh game is started in its place.

    Args:
        game: an ale-py ROM id (snake_case, e.g. ``"ms_pacman"``; ``envs.make_vector`` resolves
            names such as ``"MsPacman"`` or ``"ALE/MsPacman-v5"``).
        num_envs: number of sub-environments (>= 1).
        options: the protocol options (``AtariOptions()`` when ``None``).
        num_threads: native worker threads; 0 lets ale-py choose.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}

    def __init__(self, game: str, num_envs: int, options: AtariOptions | None = None, *, num_threads: int = 0) -> None:
        if game not in roms.get_all_rom_ids():
            raise ValueError(f"game must be an ale-py ROM id such as 'breakout', got {game!r}")
        num_envs = check_num_envs(num_envs)
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 0:
            raise ValueError(f"num_threads must be an int >= 0 (0 = ale-py's choice), got {num_threads!r}")
        if options is None:
            options = AtariOptions()
        if not isinstance(options, AtariOptions):
            raise ValueError(f"options must be an AtariOptions, got {type(options).__name__}")
        self.game = game
        self.options = options
        self.num_envs = num_envs
        self._native = _NativeVectorEnv(
            game,
            num_envs,
            num_threads=num_threads,
            max_num_frames_per_episode=options.max_episode_frames,
            repeat_action_probability=float(options.repeat_action_probability),
            full_action_space=options.full_action_space,
            autoreset_mode=AutoresetMode.NEXT_STEP,
            img_height=options.size,
            img_width=options.size,
            grayscale=False,
            stack_num=1,
            frameskip=options.frame_skip,
            maxpool=options.max_pool,
            noop_max=options.noop_max,
            # episodic_life restarts the whole game on a life loss; life_loss_info only flags it
            # and lets the game go on, which is what a life-loss terminal for learning needs.
            episodic_life=False,
            life_loss_info=options.terminal_on_life_loss,
            reward_clipping=False,
            use_fire_reset=options.fire_reset,
        )
        action_set = list(self._native.ale.get_action_set())
        self.action_set = action_set
        fire = options.fire_reset and Action.FIRE in action_set
        self._continue_action = action_set.index(Action.FIRE if fire else Action.NOOP)

        size = options.size
        self.single_observation_space = Box(0, 255, (3, size, size), np.uint8)
        self.single_action_space = Discrete(len(action_set))
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

        self._lives = np.zeros(num_envs, dtype=np.int32)
        self._continuing = np.zeros(num_envs, dtype=bool)
        self._has_reset = False

    def get_action_meanings(self) -> list[str]:
        """Names of the actions of ``single_action_space``, e.g. ``['NOOP', 'FIRE', 'RIGHT', 'LEFT']``."""
        return [a.name for a in self.action_set]

    @staticmethod
    def _frames(obs: np.ndarray) -> np.ndarray:
        # native RGB frames come stacked and channels-last: [N, 1, H, W, 3]
        return np.ascontiguousarray(rearrange(obs, "n 1 h w c -> n c h w"))

    def reset(
        self, *, seed: int | list[int | None] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Start new episodes.

        Args:
            seed: ``None`` (keep each sub-env's generator), an int ``s`` (sub-env ``i`` gets
                ``s + i``, counting only the sub-envs being reset) or one int/None per sub-env reset.
            options: ``{"reset_mask": bool [N]}`` resets only those sub-envs (after a full reset);
                the others keep their state and report their current observation.

        Returns:
            ``obs`` uint8 ``[N, 3, size, size]`` and ``info`` (see the class docstring).
        """
        mask = reset_mask(options, self.num_envs)
        if mask is not None and not self._has_reset:
            raise RuntimeError("a partial reset (reset_mask) needs a full reset() first")
        count = self.num_envs if mask is None else int(mask.sum())
        seeds = vector_seeds(seed, count)
        native_options = None if mask is None else {"reset_mask": mask}
        obs, info = self._native.reset(seed=seeds, options=native_options)
        self._has_reset = True
        self._lives = info["lives"].copy()
        if mask is None:
            self._continuing[:] = False
        else:
            self._continuing[mask] = False
        info["life_loss"] = np.zeros(self.num_envs, dtype=bool)
        return self._frames(obs), info

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Play one agent step (``frame_skip`` frames) in every sub-environment.

        Args:
            actions: integers ``[N]`` in ``[0, single_action_space.n)``.

        Returns:
            ``obs`` uint8 ``[N, 3, size, size]``, ``reward`` float32 ``[N]``, ``terminated`` bool
            ``[N]``, ``truncated`` bool ``[N]``, ``info`` (see the class docstring for autoreset).
        """
        if not self._has_reset:
            raise RuntimeError("call reset() before step()")
        acts = check_actions(actions, self.num_envs, self.single_action_space.n).astype(np.int32)
        cont = self._continuing.copy()
        acts[cont] = self._continue_action
        obs, reward, terminated, truncated, info = self._native.step(acts)
        reward = reward.astype(np.float32)
        terminated, truncated = terminated.copy(), truncated.copy()
        if cont.any():
            reward[cont] = 0.0
            ended = cont & (terminated | truncated)
            if ended.any():
                # The continuation itself ended the game: this step must still be the first of a
                # new episode, so a fresh game replaces it (seeds -1: keep the generator).
                obs2, info2 = self._native.reset(
                    seed=np.full(int(ended.sum()), -1, dtype=np.int64), options={"reset_mask": ended}
                )
                obs = np.where(ended[:, None, None, None, None], obs2, obs)
                info = {k: np.where(ended, info2[k], v) for k, v in info.items()}
            terminated[cont] = False
            truncated[cont] = False
        lives = info["lives"]
        if self.options.terminal_on_life_loss:
            life_loss = terminated & (lives < self._lives) & (lives > 0)
        else:
            life_loss = np.zeros(self.num_envs, dtype=bool)
        self._continuing = life_loss.copy()
        self._lives = lives.copy()
        info["life_loss"] = life_loss
        return self._frames(obs), reward, terminated, truncated, info

    def close_extras(self, **kwargs: Any) -> None:
        """Release the native environments."""
        self._native.close()


class AtariEnv(SingleEnv):
    """One Atari game under the Atari-100k protocol (the native vector env with one sub-env).

    ``reset`` returns ``obs`` uint8 ``[3, size, size]`` and ``info`` with ints ``lives``,
    ``frame_number``, ``episode_frame_number`` and bool ``life_loss``; ``step(action)`` returns
    ``(obs, reward: float, terminated: bool, truncated: bool, info)``. Rewards are raw game score.

    After ``terminated`` or ``truncated`` call ``reset()`` before stepping again (stepping raises
    ``RuntimeError``). With ``terminal_on_life_loss``, ``reset()`` without a seed after a life-loss
    terminal continues the same game (one FIRE or NOOP step, its reward discarded) instead of
    starting a new one; ``reset(seed=...)`` always starts a new game. ``reset``'s seed (``None`` or
    an int in ``[0, 2**31 - 1]``) seeds the no-op draws and sticky actions.

    Same seed and actions -> same frames, and ``AtariEnv`` seeded ``s + i`` matches sub-env ``i``
    of an ``AtariVectorEnv`` seeded ``s`` frame for frame.

    Args:
        game: an ale-py ROM id (snake_case); ``envs.make`` resolves names.
        options: the protocol options (``AtariOptions()`` when ``None``).
    """

    def __init__(self, game: str, options: AtariOptions | None = None) -> None:
        super().__init__(AtariVectorEnv(game, 1, options, num_threads=1))
        self.game = game

    def _reset_vector(self, seed: int | None) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        # After a life-loss terminal an unseeded reset continues the game: the vector env's next step plays
        # the continuation (FIRE or NOOP, whatever action is given, reward discarded) instead of a restart.
        if seed is None and self._vec._continuing[0]:
            obs, _, _, _, info = self._vec.step(np.zeros(1, dtype=np.int64))
            return obs, info
        return self._vec.reset(seed=seed)
