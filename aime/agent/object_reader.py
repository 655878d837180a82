"""Object-centric actor and critic: networks that read ``K`` object tokens beside the state.

Seed 003's future extension 4 (attention-based action selection) asks for a policy on the slots'
per-object representations. Imagined states have no frame, so no slots of their own: the tokens
are the world model's :class:`~aime.world_model.heads.ObjectHead` prediction of the posterior's
slots (features and centres) from ``s = [h, z]``, the same in imagination and when acting. The
state reads them by cross-attention::

    q = W_q s + b        k_k, v_k = W_kv o_k               (o_k: token k, features and centre)
    r = W_o sum_k softmax_k(q . k_k / sqrt(d)) v_k         (per head)
    out = MLP([s, r])

so the network can pick the object that matters (the ball) wherever its slot index lies.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from aime.nn.dot_product_attention import attend
from aime.nn.mlp import mlp


class ObjectReader(nn.Module):
    """Cross-attention from the state to ``K`` object tokens.

    Args:
        feat_dim: size of ``s``.
        token_dim: size of one object token.
        dim: width of the attention (split over ``heads``).
        heads: attention heads.

    ``forward(feat [N, F], objects [N, K, C]) -> [N, dim]``: what the state read of the objects.
    The tokens enter as they are, not normalised: a layer norm over a token would mix its centre
    with its features (the object head's features are normalised already, its centres bounded).
    """

    def __init__(self, feat_dim: int, token_dim: int, dim: int = 64, heads: int = 4) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"ObjectReader: dim ({dim}) must be a multiple of heads ({heads})")
        self.heads = heads
        self.to_q = nn.Linear(feat_dim, dim)  # the bias: what to look for in any state
        self.to_kv = nn.Linear(token_dim, 2 * dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def forward(self, feat: Tensor, objects: Tensor) -> Tensor:
        q = rearrange(self.to_q(feat), "... (h d) -> ... h 1 d", h=self.heads)
        k, v = rearrange(self.to_kv(objects), "... k (two h d) -> two ... h k d", two=2, h=self.heads)
        read = attend(q, k, v)  # [..., h, 1, d]
        return self.to_out(rearrange(read, "... h 1 d -> ... (h d)"))


class ObjectMLP(nn.Module):
    """An MLP on ``[s, ObjectReader(s, objects)]``: ``feat [..., F]``, ``objects [..., K, C]`` -> ``[..., out]``.

    Args:
        feat_dim, token_dim: sizes of ``s`` and of one object token.
        hidden, out, layers, zero_last: as :func:`aime.nn.mlp.mlp`.
        read_dim: width of the reader's output.
    """

    def __init__(
        self,
        feat_dim: int,
        token_dim: int,
        hidden: int,
        out: int,
        layers: int = 2,
        zero_last: bool = False,
        read_dim: int = 64,
    ) -> None:
        super().__init__()
        self.reader = ObjectReader(feat_dim, token_dim, read_dim)
        self.net = mlp(feat_dim + read_dim, hidden, out, layers, zero_last=zero_last)

    def forward(self, feat: Tensor, objects: Tensor) -> Tensor:
        if objects.shape[:-2] != feat.shape[:-1]:
            raise ValueError(
                f"ObjectMLP: objects {tuple(objects.shape)} must be feat's leading shape "
                f"{tuple(feat.shape[:-1])} + (K, C)"
            )
        return self.net(torch.cat([feat, self.reader(feat, objects).to(feat.dtype)], -1))
