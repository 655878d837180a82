"""Slot attention's refinement iterations as one autograd function with a hand-written backward.

:class:`aime.nn.slot_attention.SlotAttention` runs in the world model's time loop, once per step on
``B`` small frames, so its cost is the number of operations, not their size: autograd's and
autocast's bookkeeping around some 75 small operations per iteration, and six products with the
tokens per iteration whose gradients are transposed, cast and summed one by one. This function
runs the same iterations with autocast off and autograd off, keeps what the backward needs, and in
the backward forms the tokens' gradient of all iterations as one batched product.

One iteration, for slots ``s [B, K, D]`` and normalised tokens ``X [B, N, D_in]`` (``M = scale *
[W_k | b_k]``, ``[D, D_in + 1]``, applies the key projection to the queries)::

    q = (LN_1(s) W_q^T + b_q) M                      [B, K, D_in + 1]
    a = softmax_K(q_{:D_in} X^T + q_{D_in})          [B, K, N]   responsibilities
    w = (a + eps) / sum_N (a + eps)                   [B, K, N]   weighted mean over the tokens
    v = (w X) W_v^T + b_v                             [B, K, D]
    s' = GRU(v, s);  s'' = s' + MLP(LN_2(s'))         [B, K, D]

and its backward, for the parts autograd would split into many nodes (``dv`` from the GRU's and
the linear layers' backward)::

    du = dv W_v;  dw = du X^T;  da = (dw - sum_N(dw * w)) / sum_N(a + eps)
    dl = a * (da - sum_K(da * a));  dq = [dl X, sum_N dl]
    dX = sum over iterations of dl^T q_{:D_in} + w^T du     (one product over 2 K iters rows)

The slot side (``[B*K, D]`` matrices) runs in the weights' dtype (float32); the products with the
tokens run in ``token_dtype`` (bfloat16 under autocast, as autocast would run them), and the tokens'
gradient, a product of small factors, in the tokens' own dtype. Double backward is not supported
(``once_differentiable``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

__all__ = ["slot_iterations"]


def _layer_norm(x: Tensor, weight: Tensor, bias: Tensor, eps: float) -> tuple[Tensor, Tensor, Tensor]:
    return torch.native_layer_norm(x, [x.shape[-1]], weight, bias, eps)


def _layer_norm_backward(grad: Tensor, x: Tensor, stats: tuple[Tensor, Tensor], weight: Tensor, bias: Tensor):
    mean, rstd = stats
    return torch.ops.aten.native_layer_norm_backward(
        grad, x, [x.shape[-1]], mean, rstd, weight, bias, [True, True, True]
    )


_PARAMS = 16  # the weights of one iteration, in slot_iterations' order


class _Sums:
    """Gradients summed over the iterations: the first term the backward forms (the last
    iteration's) is kept as it is and the others are added to it in place, so no zero tensor is
    written and added to (27 operations fewer per call: on a GPU, 27 kernel launches fewer per step
    of the world model's time loop)."""

    def __init__(self, n: int) -> None:
        self.terms: list[Tensor | None] = [None] * n

    def add(self, i: int, value: Tensor) -> None:
        self.terms[i] = value if self.terms[i] is None else self.terms[i].add_(value)

    def add_mm(self, i: int, a: Tensor, b: Tensor) -> None:
        """``+= a @ b``."""
        self.terms[i] = a @ b if self.terms[i] is None else self.terms[i].addmm_(a, b)


class _SlotIterations(torch.autograd.Function):
    """``iters`` iterations; ``ln_eps``: the two layer norms' epsilons; ``params``: see :func:`slot_iterations`."""

    @staticmethod
    def forward(ctx, tokens, slots, key_map, iters, eps, ln_eps, token_dtype, *params):
        (g1, b1, w_q, b_q, w_v, b_v, w_ih, w_hh, b_ih, b_hh, g2, b2, w_1, c_1, w_2, c_2) = params
        b, k, d = slots.shape
        d_in, dtype = tokens.shape[-1], w_q.dtype  # the slot side runs in the weights' dtype
        ctx.tokens_dtype, ctx.slots_dtype, ctx.key_map_dtype = tokens.dtype, slots.dtype, key_map.dtype
        ctx.device_type, ctx.iters, ctx.token_dtype = tokens.device.type, iters, token_dtype
        # [B, N, D_in], cast once per call; contiguous, since a step's tokens are often a slice of a
        # sequence's (and CPU bmm with the transposed tokens copies a strided batch on every call)
        x = tokens.to(token_dtype).contiguous()
        x_t = x.transpose(1, 2)
        key_map = key_map.to(dtype)
        s = slots.to(dtype).reshape(b * k, d)  # the slot side as [B*K, .] matrices: one GEMM per layer
        saved, attn = [], None
        for _ in range(iters):
            l1, m1, r1 = _layer_norm(s, g1, b1, ln_eps[0])
            q = F.linear(l1, w_q, b_q)  # [B*K, D]
            qa = q @ key_map  # [B*K, D_in + 1]
            q_tok = qa[:, :d_in].to(token_dtype).view(b, k, d_in)
            logits = torch.bmm(q_tok, x_t).to(dtype) + qa[:, d_in:].view(b, k, 1)
            attn = logits.softmax(dim=1)  # [B, K, N]
            shifted = attn + eps
            total = shifted.sum(-1, keepdim=True)  # [B, K, 1]
            w = shifted / total
            u = torch.bmm(w.to(token_dtype), x).to(dtype).view(b * k, d_in)
            v = F.linear(u, w_v, b_v)  # [B*K, D]
            gi_r, gi_z, gi_n = F.linear(v, w_ih, b_ih).chunk(3, -1)
            gh_r, gh_z, gh_n = F.linear(s, w_hh, b_hh).chunk(3, -1)
            r = torch.sigmoid(gi_r + gh_r)
            z = torch.sigmoid(gi_z + gh_z)
            n = torch.tanh(gi_n + r * gh_n)
            s1 = n + z * (s - n)
            l2, m2, r2 = _layer_norm(s1, g2, b2, ln_eps[1])
            h = F.relu(F.linear(l2, w_1, c_1))
            saved.append((s, l1, m1, r1, q, qa, attn, total, w, u, v, gh_n, r, z, n, s1, l2, m2, r2, h))
            s = torch.addmm(s1, h, w_2.T).add_(c_2)
        ctx.save_for_backward(x, key_map, *params, *(t for step in saved for t in step))
        return s.view(b, k, d).to(slots.dtype), attn

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_slots, grad_attn):
        with torch.autocast(ctx.device_type, enabled=False):  # backward may run under autocast
            return _backward(ctx, grad_slots, grad_attn)


def _backward(ctx, grad_slots: Tensor | None, grad_attn: Tensor | None) -> tuple:
    x, key_map, *rest = ctx.saved_tensors
    params, rest = rest[:_PARAMS], rest[_PARAMS:]
    per_step = len(rest) // ctx.iters
    steps = [rest[i * per_step : (i + 1) * per_step] for i in range(ctx.iters)]
    (g1, b1, w_q, b_q, w_v, b_v, w_ih, w_hh, b_ih, b_hh, g2, b2, w_1, c_1, w_2, c_2) = params
    # the parameters' gradients by their index in params, and the key map's last
    grads = _Sums(_PARAMS + 1)
    (G1, B1, WQ, BQ, WV, BV, WIH, WHH, BIH, BHH, G2, B2, W1, C1, W2, C2, KEY_MAP) = range(_PARAMS + 1)
    b, k, _ = steps[0][6].shape
    dtype, token_dtype, d = w_q.dtype, ctx.token_dtype, w_q.shape[0]
    ds = grad_slots.to(dtype).reshape(b * k, d) if grad_slots is not None else None
    rows_p, rows_q = [], []  # the tokens' gradient, gathered: dX = sum_i P_i^T Q_i
    for i in reversed(range(ctx.iters)):
        (s, l1, m1, r1, q, qa, attn, total, w, u, v, gh_n, r, z, n, s1, l2, m2, r2, h) = steps[i]
        if ds is None:
            ds = torch.zeros_like(s)
        # s'' = s1 + MLP(LN_2(s1))
        grads.add_mm(W2, ds.T, h)
        grads.add(C2, ds.sum(0))
        dh = (ds @ w_2) * (h > 0)
        grads.add_mm(W1, dh.T, l2)
        grads.add(C1, dh.sum(0))
        d_s1, d_g2, d_b2 = _layer_norm_backward(dh @ w_1, s1, (m2, r2), g2, b2)
        grads.add(G2, d_g2)
        grads.add(B2, d_b2)
        d_s1 += ds
        # s1 = (1 - z) n + z s, with n = tanh(gi_n + r gh_n)
        d_pre_n = d_s1 * (1 - z) * (1 - n * n)
        d_pre_z = d_s1 * (s - n) * z * (1 - z)
        d_pre_r = d_pre_n * gh_n * r * (1 - r)
        d_gi = torch.cat([d_pre_r, d_pre_z, d_pre_n], -1)  # [B*K, 3D]
        d_gh = torch.cat([d_pre_r, d_pre_z, d_pre_n * r], -1)
        grads.add_mm(WIH, d_gi.T, v)
        grads.add(BIH, d_gi.sum(0))
        grads.add_mm(WHH, d_gh.T, s)
        grads.add(BHH, d_gh.sum(0))
        d_prev = torch.addmm(d_s1 * z, d_gh, w_hh)
        dv = d_gi @ w_ih
        grads.add_mm(WV, dv.T, u)
        grads.add(BV, dv.sum(0))
        du = dv @ w_v  # [B*K, D_in]
        dw = torch.bmm(du.to(token_dtype).view(b, k, -1), x.transpose(1, 2)).to(dtype)  # [B, K, N]
        da = (dw - (dw * w).sum(-1, keepdim=True)) / total
        if i == ctx.iters - 1 and grad_attn is not None:
            da += grad_attn.to(dtype)
        dl = attn * (da - (da * attn).sum(1, keepdim=True))  # softmax over K
        d_read = torch.bmm(dl.to(token_dtype), x).to(dtype).view(b * k, -1)
        dqa = torch.cat([d_read, dl.sum(-1).view(b * k, 1)], -1)  # [B*K, D_in + 1]
        rows_p += [dl, w]
        rows_q += [qa[:, :-1].view(b, k, -1), du.view(b, k, -1)]
        grads.add_mm(KEY_MAP, q.T, dqa)
        dq = dqa @ key_map.T  # [B*K, D]
        grads.add_mm(WQ, dq.T, l1)
        grads.add(BQ, dq.sum(0))
        d_s, d_g1, d_b1 = _layer_norm_backward(dq @ w_q, s, (m1, r1), g1, b1)
        grads.add(G1, d_g1)
        grads.add(B1, d_b1)
        ds = d_prev + d_s
    # in the tokens' own dtype: [B, N, 2 K iters] x [B, 2 K iters, D_in] is cheap in float32, and
    # casting its small factors costs less than casting the [B, N, D_in] product
    d_tokens = None
    if ctx.needs_input_grad[0]:  # e.g. not with a frozen encoder
        rows_p, rows_q = (torch.cat(rows, 1).to(ctx.tokens_dtype) for rows in (rows_p, rows_q))
        d_tokens = torch.bmm(rows_p.transpose(1, 2), rows_q)  # [B, N, D_in]
    d_slots = ds.view(b, k, d).to(ctx.slots_dtype)
    *d_params, d_key_map = grads.terms
    return (d_tokens, d_slots, d_key_map.to(ctx.key_map_dtype), None, None, None, None, *d_params)


def slot_iterations(
    module: torch.nn.Module,
    tokens: Tensor,
    slots: Tensor,
    key_map: Tensor,
    value_map: tuple[Tensor, Tensor],
    token_dtype: torch.dtype,
) -> tuple[Tensor, Tensor]:
    """Run ``module.iters`` refinement iterations of a :class:`~aime.nn.slot_attention.SlotAttention`.

    Args:
        module: the slot attention whose weights to use.
        tokens: ``[B, N, D_in]``, its ``project_inputs``.
        slots: ``[B, K, D]``, the initial slots.
        key_map: ``[D, D_in + 1]``, ``scale * [W_k | b_k]`` (``input_maps``: the input norm's affine
            map folded in).
        value_map: ``W_v [D, D_in]`` and ``b_v [D]`` (likewise folded).
        token_dtype: the dtype of the products with the tokens (float32, or bfloat16 under autocast).
    Returns:
        ``slots [B, K, D]`` and ``attn [B, K, N]`` (float32), as the module's reference loop.
    """
    params = (
        module.norm_slots.weight,
        module.norm_slots.bias,
        module.to_q.weight,
        module.to_q.bias,
        *value_map,
        module.gru.weight_ih,
        module.gru.weight_hh,
        module.gru.bias_ih,
        module.gru.bias_hh,
        module.norm_pre_ff.weight,
        module.norm_pre_ff.bias,
        module.mlp[0].weight,
        module.mlp[0].bias,
        module.mlp[2].weight,
        module.mlp[2].bias,
    )
    ln_eps = (module.norm_slots.eps, module.norm_pre_ff.eps)
    with torch.autocast(tokens.device.type, enabled=False):
        return _SlotIterations.apply(tokens, slots, key_map, module.iters, module.eps, ln_eps, token_dtype, *params)
