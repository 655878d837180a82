"""Multi-head scaled dot-product attention that stays fast with a handful of keys.

``scaled_dot_product_attention``'s CPU kernel tiles over the keys; with a few of them (a pooled
7x7 grid, four context tokens, K object slots) its overhead, not the arithmetic, is the cost, and
under bf16 autocast its backward is slower than fp32's. :func:`attend` writes such attention out.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["FEW_KEYS", "KEYS_MAJOR_BELOW", "attend"]

FEW_KEYS = 64
"""Up to this many keys, :func:`attend` writes the attention out instead of calling the fused kernel."""

KEYS_MAJOR_BELOW = 16
"""Below this many keys, :func:`attend` lays its scores out keys-first (``[..., M, N]``)."""


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None = None, dropout_p: float = 0.0
) -> torch.Tensor:
    """Multi-head attention, ``softmax(q k^T / sqrt(d) + mask) v``: ``q [..., h, N, d]``,
    ``k, v [..., h, M, d]`` -> ``[..., h, N, d]``; ``mask`` an additive float bias broadcastable to
    ``[..., h, N, M]``, ``dropout_p`` dropout on the weights.

    With at most :data:`FEW_KEYS` keys (the prior's pooled self-attention's 49 cells and its
    cross-attention's 4 context tokens, the object reader's K slots) it is written out as two
    products and a softmax; with more it is ``scaled_dot_product_attention``. The fused CPU kernel
    tiles over the keys, so with a handful of them its overhead is the cost: forward + backward of
    the prior's cross-attention (B 253, 4 heads, 441 queries, 4 keys) took 0.32-0.34 s fused and
    0.10-0.14 s written out in bf16, its 49-cell self-attention 0.20-0.27 s and 0.02-0.03 s (one
    thread); in fp32 the two forms are within noise.

    Below :data:`KEYS_MAJOR_BELOW` keys the scores are laid out ``[..., M, N]`` and normalised over
    ``M``: a softmax over a last dimension shorter than a vector register (16 fp32 lanes) runs row
    by row, over an inner one it runs across the queries. The prior's cross-attention (4 keys),
    forward + backward, one thread: 91 -> 58 ms at B 252 in bf16, 20 -> 9 ms at B 60 in fp32
    (at 16 keys the query-major layout is the faster one).
    """
    if mask is not None and not mask.is_floating_point():  # a boolean mask would be added as 0/1
        raise ValueError(
            f"attend: expected an additive float mask (-inf where a key is hidden), got dtype {mask.dtype}"
        )
    if k.shape[-2] > FEW_KEYS:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)
    keys_major = k.shape[-2] < KEYS_MAJOR_BELOW
    if keys_major:  # scores [..., M, N]
        scores = torch.einsum("...md,...nd->...mn", k, q)
        mask = None if mask is None else mask.transpose(-1, -2)
    else:  # scores [..., N, M]
        scores = torch.einsum("...nd,...md->...nm", q, k)
    # the softmax in fp32, as inside the fused kernel (CPU autocast would run it in bf16)
    scores = scores.float() * q.shape[-1] ** -0.5
    if mask is not None:
        scores = scores + mask
    weights = scores.softmax(dim=-2 if keys_major else -1)
    if dropout_p > 0:
        weights = F.dropout(weights, dropout_p)
    return torch.einsum("...mn,...md->...nd" if keys_major else "...nm,...md->...nd", weights.to(v.dtype), v)
