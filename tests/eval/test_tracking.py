"""Ball-paddle tracking on boxes: what counts, the distance, the paddle under the ball, the games;
and the agent as a record_objects policy."""

import numpy as np
import pytest
import torch

from aime.agent.agent import Agent
from aime.config import load_config
from aime.eval.tracking import agent_policy, paddle_tracking


def rows(ball, paddle, visible, reward=None, first=None, terminal=None):
    """A record of len(ball) rows: boxes (x0, y0, x1, y1) of the ball and the paddle on 84x84 frames."""
    n = len(ball)
    return {
        "boxes": np.stack([np.array(ball, float), np.array(paddle, float)], 1),
        "visible": np.array(visible, bool),
        "classes": np.array(["ball", "paddle"]),
        "obs": np.zeros((n, 3, 84, 84), np.uint8),
        "reward": np.zeros(n) if reward is None else np.array(reward, float),
        "is_first": np.eye(1, n, dtype=bool)[0] if first is None else np.array(first, bool),
        "is_terminal": np.zeros(n, bool) if terminal is None else np.array(terminal, bool),
    }


def test_the_distance_counts_rows_with_both_objects_and_the_ball_low():
    paddle = [30, 78, 38, 80]  # centre x 34, 8 px wide
    record = rows(
        ball=[[32, 60, 34, 62], [10, 60, 12, 62], [32, 10, 34, 12], [32, 60, 34, 62]],  # centres x 33, 11, 33, 33
        paddle=[paddle] * 4,
        visible=[[1, 1], [1, 1], [1, 1], [0, 1]],  # row 2: ball high; row 3: ball not visible
        reward=[0, 1, 0, 4],
        first=[1, 0, 1, 0],
        terminal=[0, 1, 0, 0],  # the first game ends at row 1 with 1 point; the second goes on
    )
    out = paddle_tracking(record)
    assert out["rows"] == 2 and out["distance_px"] == pytest.approx((1 + 23) / 2)
    assert out["under"] == 0.5  # 1 px is under the 8 px paddle, 23 px is not
    assert out["games"] == 1 and out["game_return"] == 1.0
    assert np.isnan(paddle_tracking(record, lower=0.9)["distance_px"])  # no ball that low
    with pytest.raises(ValueError, match="ball and paddle"):
        paddle_tracking({**record, "classes": np.array(["ball", "player"])})


def test_the_agent_policy_plays_with_its_state_and_resets_it_at_a_new_game():
    torch.manual_seed(0)
    agent = Agent(load_config(["debug", "tiny"]), num_actions=3)
    frames = torch.randint(0, 256, (2, 3, 84, 84), dtype=torch.uint8).numpy()
    played = agent_policy(agent, explore=False)
    first = played(frames[0], True)
    later = [played(frames[1], False) for _ in range(3)]
    again = played(frames[0], True)
    assert all(isinstance(a, int) and 0 <= a < 3 for a in [first, *later, again])
    assert again == first == agent_policy(agent, explore=False)(frames[0], True)
