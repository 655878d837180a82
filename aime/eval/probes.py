"""What can the actor read from the world model's state? Probes from ``[h, z]`` to object positions.

The actor and critic see the state ``s_t = [h_t, z_t]`` alone (and, with ``model.object_policy``,
the slots). A policy can only keep its paddle under the ball if the ball's place can be read from
that state. A probe answers it: a regression fitted from the states of recorded rows to the
ground-truth centres of OCAtari's boxes, scored on held-out episodes.

- :func:`latent_states`: filter recorded rows with a world model: ``h``, the posterior's ``z`` and
  a ``z`` drawn from the prior ``p(z | h)`` (what imagination feeds the actor).
- :func:`object_centres`: the box centres ``[L, 2]`` of one class and where it is visible.
- :func:`probe_error`: fit a probe (ridge regression, or a small MLP, which is what the actor is)
  on some rows, report the mean absolute error in pixels and ``R^2`` on held-out ones, beside the
  error of predicting the training rows' mean.
"""

from __future__ import annotations

import numpy as np
import torch
from einops import rearrange
from torch import Tensor, nn

from aime.eval.objects import ObjectData

__all__ = ["latent_states", "object_centres", "probe_error"]


@torch.no_grad()
def latent_states(
    model,
    obs: np.ndarray,
    action: np.ndarray,
    is_first: np.ndarray,
    chunk: int = 64,
    seed: int = 0,
    horizons: tuple[int, ...] = (),
) -> dict[str, Tensor]:
    """Filter streams of rows with ``model`` (a ``VRNN``), ``chunk`` rows at a time with the state
    carried, in eval mode.

    Args:
        obs: ``uint8 [S, L, 3, H, W]``; action: ``int [S, L]`` (the action taken at each row);
            is_first: ``bool [S, L]``: ``S`` streams in time order (the replay's row convention).
    Returns:
        float32 CPU tensors ``[S, L, ...]``: ``deter`` (``h_t``), ``post`` (``[h_t, z_t]`` with
        ``z_t`` from the posterior, as the actor acts) and ``prior`` (``[h_t, z]`` with ``z`` drawn
        from ``p(z | h_t)``, as the actor learns in imagination). For each ``k`` in ``horizons``,
        ``imagined_k [S, L, D + Z]``: the state of row ``t`` imagined from the posterior state of row
        ``t - k`` with the recorded actions (``model.imagine``, ``k`` steps of ``h`` and prior ``z``),
        and ``imagined_k_valid bool [S, L]``: rows with ``k`` earlier rows of the same episode (zeros
        elsewhere). What imagination keeps of an object after ``k`` steps is what the actor can learn
        to chase there.
    """
    if obs.ndim != 5 or action.shape != obs.shape[:2] or is_first.shape != obs.shape[:2]:
        raise ValueError(
            f"latent_states: expected obs [S, L, 3, H, W] with action and is_first [S, L], got "
            f"{obs.shape}, {action.shape}, {is_first.shape}"
        )
    if any(not 1 <= k < obs.shape[1] for k in horizons):
        raise ValueError(f"latent_states: horizons must lie in [1, {obs.shape[1] - 1}], got {horizons}")
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    parts: dict[str, list[Tensor]] = {"deter": [], "post": [], "state": []}
    state = None
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):  # the caller's stream kept
        torch.manual_seed(seed)
        try:
            for start in range(0, obs.shape[1], chunk):
                rows = slice(start, start + chunk)
                out = model.observe(
                    torch.as_tensor(obs[:, rows], device=device),
                    torch.as_tensor(action[:, rows], device=device).long(),
                    torch.as_tensor(is_first[:, rows], device=device).bool(),
                    state,
                )
                state = out["state"]
                parts["deter"].append(out["deter"].float().cpu())
                parts["post"].append(out["feat"].float().cpu())
                if horizons:  # the starts of imagination, with an LSTM's cell
                    parts["state"].append({k: out[k] for k in ("deter", "stoch", "cell") if k in out})
            # drawn after filtering, so the posterior's draws do not depend on the chunk size
            deter = torch.cat(parts["deter"], 1)
            prior_z = model.latent.sample(model.latent.prior(deter.to(device))).float().cpu()
            out = {"deter": deter, "post": torch.cat(parts["post"], 1), "prior": torch.cat([deter, prior_z], -1)}
            if horizons:
                starts = {k: torch.cat([p[k] for p in parts["state"]], 1) for k in parts["state"][0]}
                onehot = torch.nn.functional.one_hot(torch.as_tensor(action, device=device).long(), model.num_actions)
                first = torch.as_tensor(is_first).bool()
                for k in horizons:
                    out[f"imagined_{k}"], out[f"imagined_{k}_valid"] = _imagined(model, starts, onehot, first, k)
        finally:
            model.train(was_training)
    return out


def _imagined(model, starts: dict[str, Tensor], onehot: Tensor, is_first: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """Row ``t``'s state imagined from row ``t - k``'s: ``[S, L, F]`` and its validity ``bool [S, L]``."""
    s, length = is_first.shape
    start = {name: rearrange(v[:, : length - k], "s l ... -> (s l) ...") for name, v in starts.items()}
    taken = [rearrange(onehot[:, j : length - k + j], "s l a -> (s l) a").float() for j in range(k)]
    step = iter(taken)
    feat = model.imagine(lambda _: next(step), start, k)["feat"][:, -1]  # [(S (L - k)), F]
    imagined = torch.zeros(s, length, feat.shape[-1])
    imagined[:, k:] = rearrange(feat.float().cpu(), "(s l) f -> s l f", s=s)
    # no episode may start within rows t - k + 1 .. t: the imagined rows would cross it
    starts_within = is_first.int().cumsum(1)
    valid = torch.zeros(s, length, dtype=torch.bool)
    valid[:, k:] = starts_within[:, k:] == starts_within[:, : length - k]
    return imagined, valid


def object_centres(data: ObjectData, name: str) -> tuple[Tensor, Tensor]:
    """Centres ``(x, y)`` in pixels of class ``name``'s boxes ``[..., 2]`` and ``visible bool [...]``
    (``data``'s rows may carry leading stream dimensions: ``boxes [..., C, 4]``)."""
    if name not in data.classes:
        raise ValueError(f"object_centres: no class {name!r}; the rows have {', '.join(data.classes)}")
    c = data.classes.index(name)
    boxes = torch.as_tensor(data.boxes[..., c, :], dtype=torch.float32)
    centres = torch.stack([(boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2], -1)
    return centres, torch.as_tensor(data.visible[..., c], dtype=torch.bool)


def probe_error(
    x: Tensor, y: Tensor, train: Tensor, test: Tensor, kind: str = "ridge", steps: int = 1500, seed: int = 0
) -> dict[str, float]:
    """Fit a probe ``x [L, F] -> y [L, C]`` on the rows ``train`` (bool ``[L]``), score it on ``test``.

    ``kind``: ``"ridge"`` (least squares with an L2 penalty of 1e-2 per row, on standardised inputs)
    or ``"mlp"`` (two hidden layers of 256 SiLU units, Adam, full batch, ``steps`` steps: the
    actor's shape). Returns per output column ``c``: ``mae_c`` (mean |error|, in ``y``'s units),
    ``r2_c`` (1 - squared error / variance on the test rows) and ``mae_mean_c`` (the error of
    predicting the training rows' mean), and ``rows_train``, ``rows_test``.
    """
    if kind not in ("ridge", "mlp"):
        raise ValueError(f"kind must be 'ridge' or 'mlp', got {kind!r}")
    if int(train.sum()) < 2 or int(test.sum()) < 1:
        raise ValueError(f"probe_error: too few rows (train {int(train.sum())}, test {int(test.sum())})")
    mean, std = x[train].mean(0), x[train].std(0).clamp_min(1e-6)
    xs = (x - mean) / std
    y_mean, y_std = y[train].mean(0), y[train].std(0).clamp_min(1e-6)
    ys = (y - y_mean) / y_std
    if kind == "ridge":
        a = torch.cat([xs[train], torch.ones(int(train.sum()), 1)], 1).double()
        penalty = 1e-2 * a.shape[0] * torch.eye(a.shape[1], dtype=torch.float64)
        w = torch.linalg.solve(a.T @ a + penalty, a.T @ ys[train].double()).float()
        pred = torch.cat([xs[test], torch.ones(int(test.sum()), 1)], 1) @ w
    else:
        torch.manual_seed(seed)
        net = nn.Sequential(
            nn.Linear(x.shape[1], 256), nn.SiLU(), nn.Linear(256, 256), nn.SiLU(), nn.Linear(256, y.shape[1])
        )
        opt = torch.optim.Adam(net.parameters(), lr=1e-3, weight_decay=1e-4)
        for _ in range(steps):
            opt.zero_grad()
            (net(xs[train]) - ys[train]).square().mean().backward()
            opt.step()
        with torch.no_grad():
            pred = net(xs[test])
    pred = pred * y_std + y_mean
    truth = y[test]
    out = {"rows_train": float(train.sum()), "rows_test": float(test.sum())}
    for c in range(y.shape[1]):
        err = (pred[:, c] - truth[:, c]).abs()
        out[f"mae_{c}"] = float(err.mean())
        out[f"r2_{c}"] = float(1 - err.square().mean() / truth[:, c].var(unbiased=False).clamp_min(1e-12))
        out[f"mae_mean_{c}"] = float((y_mean[c] - truth[:, c]).abs().mean())
    return out
