"""The multilayer perceptron of the world model and the agent: ``layers`` x (Linear, LayerNorm, SiLU)
then a Linear, as an ``nn.Sequential`` (:func:`mlp`). The one builder behind the latents' networks,
the reward and continue heads, and the actor and critic.

Parameter names are part of the checkpoint format: they are the ``nn.Sequential`` indices
(``0.weight``, ``1.weight`` (LayerNorm), ``3.weight``, ... for one hidden layer).
"""

from __future__ import annotations

from torch import nn


def mlp(inp: int, hidden: int, out: int, layers: int = 2, zero_last: bool = False) -> nn.Sequential:
    """``layers`` x (Linear, LayerNorm, SiLU) then a Linear to ``out`` (zero-initialised if asked).

    ``[..., inp] -> [..., out]``; with ``layers=0`` it is one Linear from ``inp`` to ``out``.
    """
    mods: list[nn.Module] = []
    for i in range(layers):
        mods += [nn.Linear(inp if i == 0 else hidden, hidden), nn.LayerNorm(hidden), nn.SiLU()]
    last = nn.Linear(hidden if layers else inp, out)
    if zero_last:  # predictions start at 0 instead of a random scale (DreamerV3)
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)
    return nn.Sequential(*mods, last)
