"""Which of a world model's loss terms sharpen the posterior's attention maps, and which flatten them.

For each term ``L_i`` of :meth:`aime.world_model.vrnn.VRNN.loss` (at its configured weight ``w_i``)
and the attention posterior's parameters ``theta``::

    alignment_i = cos(-grad_theta w_i L_i, grad_theta H)      H: the maps' mean entropy

A positive alignment says that a small descent step on that term alone raises the entropy: the term
flattens the maps; a negative one, that it sharpens them. With each term's gradient norm it tells
which forces hold a map sharp and which push it towards an even one, the way a map that goes even
(docs/attention.md) happens. First-order and on one batch; Adam rescales each coordinate, so read
the signs and the orders of magnitude.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from aime.world_model import objectives

__all__ = ["map_gradient_alignment"]


def _flat(grads: Sequence[Tensor | None], params: Sequence[nn.Parameter]) -> Tensor:
    return torch.cat([(torch.zeros_like(p) if g is None else g).flatten() for g, p in zip(grads, params)])


def map_gradient_alignment(model: nn.Module, batch: dict[str, Tensor], terms: Sequence[str], seed: int = 0) -> dict:
    """The alignment of each term's descent direction with the entropy's gradient (module docstring).

    Args:
        model: a :class:`aime.world_model.vrnn.VRNN` with the attention schema.
        batch: ``VRNN.loss``'s batch of ``[B, T]`` windows (``obs``, ``action``, ``reward``,
            ``is_first``, ``is_terminal``).
        terms: names of ``LossScales`` fields whose terms the model computes (e.g.
            ``"reconstruction"``, ``"kl"``, ``"attention_target"``).
        seed: the random draws (``z``, slot noise) of every pass, the same for each term; the
            caller's random streams are left as they were.
    Returns:
        ``{"entropy_ratio": float, "terms": {name: {"alignment": float, "grad_norm": float}}}``:
        the maps' mean entropy over a uniform map's, and per term the cosine (0 where the term has
        no gradient) and ``|grad_theta w_i L_i|``.
    """
    if not getattr(model, "attention_on", False):
        raise ValueError("map_gradient_alignment: the model has no attention schema (model.attention=false)")
    scales = model.scales
    unknown = [name for name in terms if not hasattr(scales, name)]
    if unknown:
        raise ValueError(f"map_gradient_alignment: unknown terms {unknown}; expected LossScales fields")
    params = [p for p in model.schema.posterior_net.parameters() if p.requires_grad]
    weights = dict(vars(scales))
    result: dict = {"terms": {}}
    device = params[0].device
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        try:
            up = None
            for name in terms:
                # the one term at its weight; scales is shared with perception, so it is set in place
                for key in weights:
                    setattr(scales, key, weights[key] if key == name else 0.0)
                torch.manual_seed(seed)  # the same draws, so the same maps, in every pass
                total, _, out = model.loss(batch)
                if up is None:  # the maps come before any term, so their entropy's gradient is taken once
                    entropy = objectives.entropy_of_map(out["attention"]).mean()
                    up = _flat(torch.autograd.grad(entropy, params, retain_graph=True, allow_unused=True), params)
                    cells = out["attention"].shape[-2] * out["attention"].shape[-1]
                    result["entropy_ratio"] = float(entropy.detach()) / math.log(cells)
                grad = _flat(torch.autograd.grad(total, params, allow_unused=True), params)
                norm = grad.norm()
                cos = -(grad @ up) / (norm * up.norm()) if norm > 0 and up.norm() > 0 else torch.zeros(())
                result["terms"][name] = {"alignment": float(cos), "grad_norm": float(norm)}
        finally:
            for key, value in weights.items():
                setattr(scales, key, value)
    return result
