"""Scripted Breakout policies played in a world model's imagination, to see what it pays each.

The actor learns whatever the imagined returns favour (:mod:`aime.agent.behavior`). To ask what a
world model's imagination pays for following the ball, against holding the paddle at a wall,
scripted policies are rolled out in it from the same posterior states, as the actor's own
rollouts are, and their imagined rewards, continuation and lambda-returns are compared; the same
scripts play the real game, so each imagined figure has the game's beside it.

The scripts read the paddle and the ball from frames: the real ones in the game, the decoder's
drawing of each imagined state in imagination. The decoder draws them blurred, so
:func:`red_positions` reads them by redness (the paddle and the ball are Breakout's only red things
below the bricks) rather than by the exact colour :mod:`aime.eval.play_history` matches.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F
from einops import reduce
from torch import Tensor

from aime.agent.behavior import lambda_return

__all__ = ["ImaginedPolicy", "frame_figures", "game_play", "imagined_play", "red_positions", "scripted_policy"]

ImaginedPolicy = Callable[[Tensor], Tensor]  # feat [N, F] -> one-hot actions [N, A]

# rows and columns of the Atari protocol's 84 x 84 Breakout (aime.eval.play_history): the ball is
# looked for between the bricks and the paddle, the paddle on its rows, inside the side walls
_BALL_ROWS, _PADDLE_ROWS, _PLAYFIELD = (38, 74), (74, 79), (4, 80)
_RED = 0.25  # redness (R - (G + B) / 2, in [0, 1]) counted; the paddle's and ball's colour has 0.5
_BALL_MASS, _PADDLE_MASS = 0.2, 0.5  # the least redness summed that counts as drawn
_BALL_LOW = 42.0  # a ball below this row is coming to the paddle (play_history's distance)


def red_positions(frames: Tensor) -> dict[str, Tensor]:
    """Where the ball and the paddle are drawn on Breakout frames, by redness.

    Args:
        frames: ``[N, 3, 84, 84]`` in [0, 1] (a decoder's output, or ``uint8`` frames / 255).
    Returns:
        ``ball_x``, ``ball_y``, ``paddle_x``: ``[N]`` redness-weighted centres in pixels, NaN where
        the ball (between the bricks and the paddle) or the paddle is not drawn.
    """
    if frames.ndim != 4 or frames.shape[1:] != (3, 84, 84):
        raise ValueError(f"red_positions: expected [N, 3, 84, 84] Breakout frames, got {tuple(frames.shape)}")
    r, g, b = frames.float().unbind(1)
    red = F.relu(r - (g + b) / 2 - _RED)  # [N, 84, 84]
    lo, hi = _PLAYFIELD
    cols = torch.arange(lo, hi, dtype=red.dtype, device=red.device)
    ball = red[:, slice(*_BALL_ROWS), lo:hi]
    rows = torch.arange(*_BALL_ROWS, dtype=red.dtype, device=red.device)
    ball_mass = reduce(ball, "n y x -> n", "sum")
    paddle = reduce(red[:, slice(*_PADDLE_ROWS), lo:hi], "n y x -> n x", "sum")
    paddle_mass = paddle.sum(-1)
    nan = torch.full_like(ball_mass, float("nan"))
    return {
        "ball_x": torch.where(ball_mass > _BALL_MASS, (ball.sum(1) * cols).sum(-1) / ball_mass, nan),
        "ball_y": torch.where(ball_mass > _BALL_MASS, (ball.sum(2) * rows).sum(-1) / ball_mass, nan),
        "paddle_x": torch.where(paddle_mass > _PADDLE_MASS, (paddle * cols).sum(-1) / paddle_mass, nan),
    }


def frame_figures(seen: dict[str, Tensor]) -> dict[str, float]:
    """What :func:`red_positions` (of any shape ``[...]``) saw, in two figures: ``distance``, the
    mean horizontal distance from the ball to the paddle (px) where the ball is low and both are
    drawn (NaN if never), and ``ball_drawn``, the share of frames with a ball between the bricks
    and the paddle."""
    ball_x, ball_y, paddle_x = seen["ball_x"], seen["ball_y"], seen["paddle_x"]
    low = (ball_y > _BALL_LOW) & ~paddle_x.isnan()
    distance = (ball_x - paddle_x).abs()[low]
    return {
        "distance": float(distance.mean()) if distance.numel() else float("nan"),
        "ball_drawn": float((~ball_x.isnan()).float().mean()),
    }


def scripted_policy(name: str, actions: list[str], dead_zone: float = 2.0) -> Callable[[Tensor], Tensor]:
    """A scripted Breakout policy on frames: ``frames [N, 3, 84, 84] -> action indices [N]``.

    Args:
        name: ``"follow"`` (LEFT or RIGHT towards the ball's column, NOOP within ``dead_zone`` pixels
            of it, FIRE where no ball is drawn: it launches one that is not in play), ``"left"`` or
            ``"right"`` (that action always: the paddle goes to that wall and stays).
        actions: the game's action names, e.g. ``["NOOP", "FIRE", "RIGHT", "LEFT"]``.
    """
    index = {a: actions.index(a) for a in ("NOOP", "FIRE", "RIGHT", "LEFT") if a in actions}
    if len(index) < 4:
        raise ValueError(f"scripted_policy: needs NOOP, FIRE, RIGHT and LEFT, the game has {actions}")
    if name in ("left", "right"):
        wall = index[name.upper()]
        return lambda frames: torch.full((frames.shape[0],), wall, dtype=torch.long, device=frames.device)
    if name != "follow":
        raise ValueError(f"scripted_policy: name must be 'follow', 'left' or 'right', got {name!r}")

    def follow(frames: Tensor) -> Tensor:
        seen = red_positions(frames)
        offset = seen["ball_x"] - seen["paddle_x"]
        action = torch.full_like(offset, index["NOOP"], dtype=torch.long)
        action = torch.where(offset > dead_zone, index["RIGHT"], action)
        action = torch.where(offset < -dead_zone, index["LEFT"], action)
        return torch.where(seen["ball_x"].isnan(), index["FIRE"], action)

    return follow


@torch.no_grad()
def imagined_play(
    agent,
    start: dict[str, Tensor],
    start_cont: Tensor,
    policy: str | ImaginedPolicy,
    actions: list[str],
    sample: bool = True,
    horizon: int | None = None,
) -> dict[str, float | list[float]]:
    """Roll one policy out in ``agent``'s imagination and score it as the actor's loss would.

    Args:
        agent: an :class:`~aime.agent.agent.Agent` (its world model, critic and horizon are used).
        start: posterior states ``deter [N, D]``, ``stoch [N, S]``, as the actor's rollouts start.
        start_cont: ``[N]`` 1 - is_terminal of the start states.
        policy: ``"actor"`` (the agent's, sampled), a :func:`scripted_policy` name (it reads the
            decoder's frame of each imagined state), or ``feat [N, F] -> one-hot [N, A]``.
        actions: the game's action names (``get_action_meanings()``).
        sample: draw each imagined ``stoch`` from the prior, as the actor's rollouts do (False: the
            prior's mode).
        horizon: imagined steps ``H`` (default: the agent's ``behavior.horizon``, the actor's own).
    Returns:
        Means over the rollouts: ``return`` (the lambda-return from the start, what the actor's
        advantage compares), ``reward`` (per imagined step), ``survival`` (the product of the
        continuation over the horizon), ``value`` (the critic at the horizon's end), the shares of
        each action, and the frames' ``distance`` (ball to paddle, px, where the ball is low) and
        ``ball_drawn`` (share of imagined frames with a ball between the bricks and the paddle),
        and ``ball_drawn_by_step``, that share at each step ``0 .. H-1`` (0: the start state).
    """
    wm, behavior = agent.world_model, agent.behavior
    if wm.decoder_attention:
        raise ValueError(
            "imagined_play: this decoder reads the attention map (model.decoder_attention); the frames of "
            "imagined states are drawn here from the state alone"
        )
    tokens = wm.object_tokens if behavior.object_dim else (lambda feat: None)
    num_actions = behavior.num_actions
    seen: list[dict[str, Tensor]] = []

    def frames_of(feat: Tensor) -> Tensor:
        frames = wm.decode(feat).clamp(0, 1)
        seen.append(red_positions(frames))
        return frames

    def actor(feat: Tensor) -> Tensor:
        return F.one_hot(behavior.act(feat, True, tokens(feat)), num_actions).float()

    def scripted(feat: Tensor) -> Tensor:
        return F.one_hot(script(frames_of(feat)), num_actions).float()

    if isinstance(policy, str) and policy != "actor":
        script = scripted_policy(policy, actions)
    act = actor if policy == "actor" else scripted if isinstance(policy, str) else policy
    traj = wm.imagine(act, start, behavior.horizon if horizon is None else horizon, sample=sample)
    feat = traj["feat"]  # [N, H+1, F]
    if seen:  # the script read each state's frame as it acted
        positions = {k: torch.stack([s[k] for s in seen], 1) for k in seen[0]}  # [N, H]
    else:  # the states the policy acted on, drawn all at once
        acted = feat[:, :-1]
        drawn = red_positions(wm.decode(acted.flatten(0, 1)).clamp(0, 1))
        positions = {k: v.unflatten(0, acted.shape[:2]) for k, v in drawn.items()}  # [N, H]
    reward = wm.reward(feat[:, 1:]).mean()  # [N, H]
    cont = torch.sigmoid(wm.cont(feat[:, 1:]))
    value = behavior.value(feat, objects=tokens(feat)).mean()  # [N, H+1]
    returns = lambda_return(reward, cont, value, behavior.discount, behavior.lam)  # [N, H]
    shares = traj["action"].mean((0, 1))
    out = {
        "return": returns[:, 0].mean(),
        "reward": reward.mean(),
        "survival": (cont * start_cont[:, None]).prod(1).mean(),
        "value": value[:, -1].mean(),
        **{f"share_{name}": shares[i] for i, name in enumerate(actions)},
    }
    drawn_by_step = (~positions["ball_x"].isnan()).float().mean(0)
    return {
        **{k: float(v) for k, v in out.items()},
        **frame_figures(positions),
        "ball_drawn_by_step": drawn_by_step.tolist(),
    }


def game_play(env, script: Callable[[Tensor], Tensor], steps: int, seed: int = 0) -> dict[str, float]:
    """Play a :func:`scripted_policy` in the real game for ``steps`` agent steps in all.

    Args:
        env: a Breakout vector env (``envs.make_vector``) under the protocol to compare with; with
            ``terminal_on_life_loss`` each lost life counts as a terminal, as in learning.
        script: ``frames [N, 3, 84, 84] -> action indices [N]``.
        steps: agent steps over all the sub-envs (at least one per sub-env).
    Returns:
        ``reward`` and ``terminals`` per agent step, and the frames' ``distance`` and
        ``ball_drawn`` (:func:`frame_figures`), as :func:`imagined_play` reports them.
    """
    n = env.num_envs
    if steps < n:
        raise ValueError(f"game_play: steps must be >= the {n} sub-envs, got {steps}")
    obs, _ = env.reset(seed=seed)
    reward_sum, terminals, seen = 0.0, 0, []
    for _ in range(steps // n):
        frames = torch.from_numpy(obs).float() / 255
        seen.append(red_positions(frames))
        obs, reward, terminated, _, _ = env.step(script(frames).numpy())
        reward_sum += float(np.sum(reward))
        terminals += int(np.sum(terminated))
    played = (steps // n) * n
    positions = {k: torch.cat([s[k] for s in seen]) for k in seen[0]}
    return {"reward": reward_sum / played, "terminals": terminals / played, **frame_figures(positions)}
