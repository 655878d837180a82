"""Evaluation: full episodes played by an agent (or any policy with its ``act``) on fresh environments.

:func:`evaluate` splits the episodes evenly over ``cfg.env.eval_envs`` sub-environments, cuts an
episode at ``cfg.eval.max_steps`` agent steps, and can show every frame to a hook
(:class:`aime.runtime.recording.EpisodeRecorder` records videos that way).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

import envs
from aime.config import Config
from aime.runtime.environments import EpisodeTracker, env_options

if TYPE_CHECKING:
    from aime.agent.agent import Agent


@dataclass
class EvalResult:
    """The evaluated episodes: returns and lengths in the order they ended, and how many of them were
    cut at the step cap (they count, with their return so far)."""

    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    capped: int = 0


FrameHook = Callable[[np.ndarray, dict, np.ndarray, np.ndarray], None]


def evaluate(
    agent: Agent,
    cfg: Config,
    episodes: int,
    seed: int,
    greedy: bool = True,
    max_episode_steps: int | None = None,
    on_step: FrameHook | None = None,
) -> EvalResult:
    """Play ``episodes`` full episodes with the agent on fresh evaluation environments.

    Episodes are split evenly over ``cfg.env.eval_envs`` sub-environments (so short episodes are
    not over-counted) and numbered in that order: sub-env ``i`` plays episodes
    ``sum(quota[:i]) ... sum(quota[:i+1]) - 1``.

    Args:
        max_episode_steps: cut an episode after this many agent steps (default ``cfg.eval.max_steps``;
            0: no cap). A policy that never presses FIRE would otherwise play every evaluation
            episode to the environment's time limit. A cut episode counts, with its return so far.
        on_step: ``on_step(obs [N, 3, 84, 84], extras, episode int [N], last bool [N])`` sees every
            frame the agent acts on, including the last frame of every counted episode (the agent
            acts once more at the end, for its extras, e.g. attention): ``episode[i]`` is the number of
            the counted episode frame ``i`` belongs to (-1: a frame of no counted episode) and
            ``last[i]`` says it is that episode's last frame.
    """
    cap = cfg.eval.max_steps if max_episode_steps is None else max_episode_steps
    n = max(1, min(cfg.env.eval_envs, episodes))
    quota = np.array([episodes // n + (i < episodes % n) for i in range(n)])
    first_id = np.concatenate([[0], np.cumsum(quota)[:-1]])
    env = envs.make_vector(cfg.env.name, n, **env_options(cfg, evaluation=True))
    try:
        obs, _ = env.reset(seed=seed)
        tracker = EpisodeTracker(n)
        is_first = np.ones(n, dtype=bool)
        state, result = None, EvalResult()
        counts = np.zeros(n, dtype=np.int64)
        episode = np.where(quota > 0, first_id, -1)  # the counted episode each sub-env plays (-1: none)
        cut = np.zeros(n, dtype=bool)  # episodes cut at the cap on the last step: restart those sub-envs
        while (counts < quota).any():
            action, state, extras = agent.act({"obs": obs, "is_first": is_first}, state, explore=not greedy)
            if on_step is not None:
                on_step(obs, extras, episode.copy(), tracker.done.copy())
            # a shown last frame hands its sub-env on to its next counted episode, if any
            episode = np.where(tracker.done, np.where(counts < quota, first_id + counts, -1), episode)
            obs, reward, terminated, truncated, _ = env.step(action)
            if cut.any():  # what the autoreset does after an ending: the first frame of a new episode
                restarted, _ = env.reset(options={"reset_mask": cut})
                obs = np.where(cut[:, None, None, None], restarted, obs)
                reward, terminated, truncated = np.where(cut, 0.0, reward), terminated & ~cut, truncated & ~cut
            is_first = tracker.done.copy()
            ended = tracker.step(reward, terminated, truncated)
            cut = ~tracker.done & (tracker.length >= cap) if cap > 0 else np.zeros(n, dtype=bool)
            tracker.done |= cut  # ends here: the next step starts its sub-env's next episode
            ended += [(int(i), float(tracker.ret[i]), int(tracker.length[i])) for i in np.flatnonzero(cut)]
            for i, ret, length in ended:
                if counts[i] < quota[i]:
                    result.returns.append(ret)
                    result.lengths.append(length)
                    result.capped += int(cut[i])
                    counts[i] += 1
        last = tracker.done & (episode >= 0)
        if on_step is not None and last.any():  # the last frames of the final episodes
            _, _, extras = agent.act({"obs": obs, "is_first": is_first}, state, explore=not greedy)
            on_step(obs, extras, np.where(last, episode, -1), last)
        return result
    finally:
        env.close()
