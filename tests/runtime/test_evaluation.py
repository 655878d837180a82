import numpy as np

from aime.config import load_config
from aime.runtime.evaluation import evaluate


class ConstantPolicy:
    """Always the same action: NOOP in Breakout never launches the ball, so its episodes stall."""

    def __init__(self, action):
        self.action = action

    def act(self, obs, state, explore=True):
        return np.full(len(obs["obs"]), self.action), state, {}


def test_a_stalling_policy_is_cut_and_every_episode_shows_all_its_frames():
    frames = {}

    def on_step(obs, extras, episode, last):
        for i in np.flatnonzero(episode >= 0):
            frames.setdefault(int(episode[i]), []).append(bool(last[i]))

    cfg = load_config(["debug"], ["env.name=Breakout", "env.eval_envs=2"])
    result = evaluate(ConstantPolicy(0), cfg, 3, seed=0, max_episode_steps=20, on_step=on_step)
    assert result.lengths == [20, 20, 20] and result.capped == 3 and result.returns == [0.0, 0.0, 0.0]
    # every episode: its first frame, one frame per step, the last one flagged (and no other)
    assert sorted(frames) == [0, 1, 2]
    assert all(flags == [False] * 20 + [True] for flags in frames.values())

    frames.clear()  # Catch: episodes end by themselves, none is cut
    result = evaluate(ConstantPolicy(1), load_config(["debug"], ["env.eval_envs=2"]), 5, seed=0, on_step=on_step)
    assert result.capped == 0 and sorted(frames) == [0, 1, 2, 3, 4]
    assert [len(frames[k]) for k in range(5)] == [9 + 1] * 5 and all(f[-1] for f in frames.values())
