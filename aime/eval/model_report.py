"""What a trained agent's world model and critic make of the agent's own newest experience.

The rows a run collected last (its checkpoint's replay, :meth:`ReplayBuffer.newest`) are filtered
by the world model, real frame after real frame, and at every step ``t`` its heads predict what
came with the frame ``o_t`` -- the reward ``r_t`` and whether ``o_t`` ended the episode -- and the
critic values ``s_t``. Against what happened:

- **reward events** (``r_t > 0``): the share the reward head predicts (prediction above
  ``threshold``), its mean prediction there against the mean reward that came, and the share of
  other steps where it predicts one;
- **terminals**: the continue head's probability at terminal steps and elsewhere, and the chance
  it gives of surviving the ``window`` steps that end at a terminal (the product of its
  probabilities there) against windows without one: a model that sees a lost life coming spreads
  the loss over the steps before it (in Breakout the ball falls past the paddle a few steps before
  the life counter changes), where the terminal step alone says little;
- **value**: the critic's ``V(s_t)`` against the return that followed,
  ``G_t = r_{t+1} + gamma (1 - d_{t+1}) G_{t+1}``, where the episode ends inside the rows;
- **actions**: how often the policy took each action.

Where a run's score stalls, these say which part to look at: a model that misses the reward
events cannot teach the policy to seek them; a critic that does not follow the returns cannot
tell good states from bad ones; a policy stuck on one action has stopped exploring.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch

__all__ = ["discounted_returns", "filter_rows", "model_report"]


def discounted_returns(reward: np.ndarray, is_terminal: np.ndarray, is_first: np.ndarray, gamma: float) -> np.ndarray:
    """``G_t = r_{t+1} + gamma (1 - d_{t+1}) G_{t+1}`` over ``[S, T]`` rows in time order, NaN where
    the episode does not end (by a terminal) inside the rows: its tail is unknown.

    ``reward[t]`` arrives with ``o_t`` and ``is_terminal[t]`` says ``o_t`` ended the episode; an
    ``is_first`` row after ``t`` without a terminal between is a cut (a time limit): NaN too.
    """
    s, t = reward.shape
    out = np.full((s, t), np.nan)
    ahead = np.full(s, np.nan)  # G of the row after, NaN while no episode end has been seen
    for i in range(t - 1, -1, -1):  # one pass backwards in time, vectorised over streams
        if i + 1 < t:
            nxt_first, nxt_terminal, nxt_reward = is_first[:, i + 1], is_terminal[:, i + 1], reward[:, i + 1]
            ahead = np.where(nxt_first, np.nan, np.where(nxt_terminal, nxt_reward, nxt_reward + gamma * ahead))
        out[:, i] = np.where(is_terminal[:, i], np.nan, ahead)  # a terminal row has no future
    return out


@torch.no_grad()
def filter_rows(agent, rows: Mapping[str, np.ndarray], chunk: int = 64) -> dict[str, np.ndarray]:
    """Filter ``rows`` (``obs uint8 [S, T, 3, H, W]``, ``action``, ``is_first`` ``[S, T]``) with the
    agent's world model, ``chunk`` steps at a time (the state carried across chunks), as the agent
    does when acting (eval mode). Returns ``reward``, ``continue`` (probability) and ``value``
    predictions ``[S, T]``."""
    wm, behavior = agent.world_model, agent.behavior
    was_training = agent.training
    agent.eval()
    parts: dict[str, list[np.ndarray]] = {"reward": [], "continue": [], "value": []}
    state = None
    try:
        with agent.autocast_context():
            for start in range(0, rows["obs"].shape[1], chunk):
                window = {k: torch.as_tensor(rows[k][:, start : start + chunk], device=agent.device) for k in rows}
                out = wm.observe(window["obs"], window["action"], window["is_first"].bool(), state)
                state, feat = out["state"], out["feat"].float()
                parts["reward"].append(wm.reward(feat).mean().cpu().numpy())
                parts["continue"].append(torch.sigmoid(wm.cont(feat)).cpu().numpy())
                parts["value"].append(behavior.value(feat, objects=wm.object_tokens(feat)).mean().cpu().numpy())
    finally:
        agent.train(was_training)
    return {k: np.concatenate(v, axis=1) for k, v in parts.items()}


def window_sums(x: np.ndarray, window: int) -> np.ndarray:
    """``[S, T] -> [S, T - window + 1]``: the sums over ``x[:, t - window + 1 : t + 1]``, for every
    window ending at ``t >= window - 1``."""
    sums = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(x, axis=1, dtype=float)], axis=1)
    return sums[:, window:] - sums[:, :-window]


def model_report(
    predicted: Mapping[str, np.ndarray],
    rows: Mapping[str, np.ndarray],
    gamma: float,
    num_actions: int,
    burn_in: int = 16,
    threshold: float = 0.5,
    window: int = 8,
) -> dict[str, float]:
    """The report's figures from :func:`filter_rows`' ``predicted`` and the ``rows`` it filtered
    (``reward``, ``is_terminal``, ``is_first``, ``action`` ``[S, T]``); the first ``burn_in`` steps
    of each stream are left out (the filter starts there from a blank state).

    NaN where a figure has no steps to average (no reward event, no terminal, no finished episode).
    """
    if not 0 <= burn_in < rows["reward"].shape[1]:
        raise ValueError(f"burn_in must be in [0, {rows['reward'].shape[1]}) (the rows per stream), got {burn_in}")
    if not 1 <= window <= rows["reward"].shape[1] - burn_in:
        raise ValueError(
            f"window must be in [1, {rows['reward'].shape[1] - burn_in}] (rows after burn_in), got {window}"
        )
    cut = slice(burn_in, None)
    reward, terminal = rows["reward"][:, cut], rows["is_terminal"][:, cut].astype(bool)
    pred_reward, pred_continue, value = (predicted[k][:, cut] for k in ("reward", "continue", "value"))
    returns = discounted_returns(rows["reward"], rows["is_terminal"], rows["is_first"], gamma)[:, cut]
    events, known = reward > 0, np.isfinite(returns)

    def mean(x: np.ndarray) -> float:
        return float(x.mean()) if x.size else float("nan")

    # windows of `window` steps inside one episode (no is_first after their first step), by their end
    survival = np.exp(window_sums(np.log(np.clip(pred_continue, 1e-12, 1.0)), window))
    starts = np.cumsum(np.pad(rows["is_first"][:, cut], ((0, 0), (1, 0))), axis=1)  # [S, T' + 1]
    whole = starts[:, window:] == starts[:, 1 : starts.shape[1] - window + 1]  # none in [t - window + 2, t]
    ends_at_terminal = terminal[:, window - 1 :] & whole
    clear = (window_sums(terminal.astype(float), window) == 0) & whole

    report = {
        "steps": float(reward.size),
        "reward_events": float(events.sum()),
        "reward_event_recall": mean(pred_reward[events] > threshold),
        "reward_at_events": mean(pred_reward[events]),
        "reward_true_at_events": mean(reward[events]),
        "reward_false_alarms": mean(pred_reward[~events] > threshold),
        "reward_elsewhere": mean(pred_reward[~events]),
        "terminals": float(terminal.sum()),
        "continue_at_terminals": mean(pred_continue[terminal]),
        "continue_elsewhere": mean(pred_continue[~terminal]),
        "survival_before_terminals": mean(survival[ends_at_terminal]),
        "survival_elsewhere": mean(survival[clear]),
        "value_steps": float(known.sum()),
        "value_mean": mean(value[known]),
        "return_mean": mean(returns[known]),
        "value_return_corr": (  # undefined for fewer than 3 steps or a constant side
            float(np.corrcoef(value[known], returns[known])[0, 1])
            if known.sum() > 2 and value[known].std() > 0 and returns[known].std() > 0
            else float("nan")
        ),
    }
    counts = np.bincount(rows["action"][:, cut].reshape(-1), minlength=num_actions)
    report.update({f"action_{a}": float(c / max(counts.sum(), 1)) for a, c in enumerate(counts)})
    return report
