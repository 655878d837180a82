"""Scripted Breakout policies: reading frames by redness, the scripts' actions, their games in the
real Breakout, their rollouts in a world model's imagination, and the script on a real (tiny) run."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import envs
from aime.eval.imagined_play import frame_figures, game_play, imagined_play, red_positions, scripted_policy
from aime.eval.play_history import breakout_ball, breakout_paddle

ROOT = Path(__file__).resolve().parents[2]
ACTIONS = ["NOOP", "FIRE", "RIGHT", "LEFT"]
RED = torch.tensor([200, 72, 72]) / 255


def frame(ball: tuple[int, int] | None, paddle: int | None) -> torch.Tensor:
    """A black 84 x 84 frame with a 2 x 2 ball at ``(x, y)`` and a 16-pixel paddle centred near ``paddle``."""
    out = torch.zeros(3, 84, 84)
    if ball is not None:
        x, y = ball
        out[:, y : y + 2, x : x + 2] = RED[:, None, None]
    if paddle is not None:
        out[:, 76:78, paddle - 8 : paddle + 8] = RED[:, None, None]
    return out


def test_red_positions_finds_ball_and_paddle_where_drawn_and_nan_where_not():
    seen = red_positions(torch.stack([frame((30, 50), 60), frame(None, 20), frame((10, 20), None)]))
    assert seen["ball_x"][0].item() == pytest.approx(30.5) and seen["ball_y"][0].item() == pytest.approx(50.5)
    assert seen["paddle_x"][0].item() == pytest.approx(59.5) and seen["paddle_x"][1].item() == pytest.approx(19.5)
    assert seen["ball_x"][1].isnan() and seen["ball_x"][2].isnan()  # none, and one among the bricks
    assert seen["paddle_x"][2].isnan()
    low = red_positions(torch.stack([frame((30, 50), 60), frame((40, 40), 60), frame(None, 60)]))
    figures = frame_figures(low)  # the ball at row 40 is not yet low: one distance counts
    assert figures["distance"] == pytest.approx(29.0) and figures["ball_drawn"] == pytest.approx(2 / 3)
    with pytest.raises(ValueError, match=r"\[N, 3, 84, 84\]"):
        red_positions(torch.zeros(2, 3, 64, 64))


def test_red_positions_agree_with_the_exact_colour_on_real_breakout_frames():
    env = envs.make_vector("Breakout", 4, size=84)
    obs, _ = env.reset(seed=0)
    rng, frames = np.random.default_rng(0), []
    for _ in range(150):
        obs, *_ = env.step(rng.integers(0, 4, 4))
        frames.append(obs)
    env.close()
    frames = np.concatenate(frames)
    seen = {k: v.numpy() for k, v in red_positions(torch.from_numpy(frames).float() / 255).items()}
    x, y = breakout_ball(frames)
    both = ~np.isnan(x) & ~np.isnan(seen["ball_x"])
    assert both.sum() >= 0.9 * (~np.isnan(x)).sum() > 100  # faint blended balls may be missed
    assert np.abs(seen["ball_x"] - x)[both].max() < 1.0 and np.abs(seen["ball_y"] - y)[both].max() < 1.0
    left, right = breakout_paddle(frames)
    assert np.median(np.abs(seen["paddle_x"] - (left + right) / 2)) < 0.5


def test_the_scripts_follow_the_ball_or_hold_a_wall():
    follow = scripted_policy("follow", ACTIONS)
    frames = torch.stack([frame((60, 50), 30), frame((10, 50), 30), frame((30, 50), 30), frame(None, 30)])
    assert follow(frames).tolist() == [2, 3, 0, 1]  # RIGHT, LEFT, NOOP under it, FIRE without a ball
    assert scripted_policy("left", ACTIONS)(frames).tolist() == [3] * 4
    assert scripted_policy("right", ["FIRE", "LEFT", "RIGHT", "NOOP"])(frames).tolist() == [2] * 4
    with pytest.raises(ValueError, match="'follow', 'left' or 'right'"):
        scripted_policy("wall", ACTIONS)
    with pytest.raises(ValueError, match="needs NOOP, FIRE, RIGHT and LEFT"):
        scripted_policy("follow", ["NOOP", "UP", "DOWN"])


def test_in_the_real_game_following_the_ball_keeps_lives_longer_than_a_wall():
    env = envs.make_vector("Breakout", 8, size=84, terminal_on_life_loss=True)
    follow = game_play(env, scripted_policy("follow", ACTIONS), 1600, seed=1)
    wall = game_play(env, scripted_policy("left", ACTIONS), 1600, seed=1)
    env.close()
    assert follow["distance"] < 10 < 25 < wall["distance"]
    assert follow["terminals"] < 0.6 * wall["terminals"]
    with pytest.raises(ValueError, match="steps must be >= the 8 sub-envs"):
        game_play(env, scripted_policy("left", ACTIONS), 4)


def test_imagined_play_scores_each_policy_over_the_horizon(tiny_breakout_run):
    from aime.runtime.checkpoint import load_agent

    agent, cfg = load_agent(tiny_breakout_run, "cpu")
    n, horizon = 6, cfg.train.horizon
    wm = agent.world_model
    state = wm.initial_state(n)
    start, start_cont = {k: state[k] for k in ("deter", "stoch")}, torch.ones(n)
    with torch.no_grad():
        left = imagined_play(agent, start, start_cont, "left", ACTIONS)
        actor = imagined_play(agent, start, start_cont, "actor", ACTIONS)
        ended = imagined_play(agent, start, torch.zeros(n), "follow", ACTIONS)
    assert left["share_LEFT"] == 1.0 and left["share_RIGHT"] == 0.0
    assert sum(actor[f"share_{a}"] for a in ACTIONS) == pytest.approx(1.0)
    assert len(left["ball_drawn_by_step"]) == horizon
    with torch.no_grad():
        longer = imagined_play(agent, start, start_cont, "left", ACTIONS, horizon=horizon + 3)
    assert len(longer["ball_drawn_by_step"]) == horizon + 3
    assert 0.0 < left["survival"] < 1.0 and ended["survival"] == 0.0  # a terminal start survives nothing
    assert all(np.isfinite(v) for k, v in left.items() if k not in ("distance", "ball_drawn_by_step"))
    wm.decoder_attention = True  # frames drawn from the map are not what the scripts read
    with pytest.raises(ValueError, match="reads the attention map"):
        imagined_play(agent, start, start_cont, "left", ACTIONS)


def test_the_script_reports_imagination_beside_the_game(tiny_breakout_run, tiny_catch_run, tmp_path):
    out = tmp_path / "imagined.json"
    command = [sys.executable, str(ROOT / "scripts" / "imagined_play.py"), str(tiny_breakout_run)]
    result = subprocess.run(
        command + ["--starts", "8", "--game-steps", "16", "--rows", "8", "--horizon", "5", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(out.read_text())[str(tiny_breakout_run)]
    assert set(report["policies"]) == {"actor", "follow", "left", "right"}
    assert report["agent_steps"] == 48 and report["rollouts"] == 8
    assert report["policies"]["left"]["share_LEFT"] == 1.0
    assert 0.0 <= report["policies"]["follow"]["game terminals"] <= 1.0
    assert 0.0 <= report["policies"]["actor"]["game ball_drawn"] <= 1.0  # read from its replay's frames
    assert "| policy | return | reward | survival |" in result.stdout
    assert "8 rollouts of 5 steps" in result.stdout and len(report["policies"]["left"]["ball_drawn_by_step"]) == 5
    catch = subprocess.run(command[:2] + [str(tiny_catch_run)], capture_output=True, text=True, timeout=120)
    assert catch.returncode == 2 and "the scripts play Breakout" in catch.stderr
