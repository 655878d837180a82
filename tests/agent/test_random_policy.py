"""RandomPolicy: uniform actions with Agent.act's interface."""

import numpy as np
import pytest

from aime.agent.random_policy import RandomPolicy


def test_actions_are_uniform_over_the_action_space_and_seeded():
    obs = {"obs": np.zeros((8, 3, 84, 84), np.uint8), "is_first": np.zeros(8, bool)}
    policy = RandomPolicy(3, seed=1)
    actions = np.concatenate([policy.act(obs, None)[0] for _ in range(500)])
    assert actions.shape == (4000,) and set(np.unique(actions)) == {0, 1, 2}
    assert np.allclose(np.bincount(actions) / len(actions), 1 / 3, atol=0.03)
    again = RandomPolicy(3, seed=1)
    assert np.array_equal(again.act(obs, None)[0], RandomPolicy(3, seed=1).act(obs, None)[0])
    state = {"kept": 1}
    assert policy.act(obs, state, explore=False)[1] is state


def test_needs_at_least_one_action():
    with pytest.raises(ValueError, match="num_actions must be >= 1"):
        RandomPolicy(0)
