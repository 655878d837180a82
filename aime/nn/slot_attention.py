"""Slot Attention (Locatello et al., 2020), with optional top-down seed slots (seed 003).

K slots compete for N input tokens: the attention logits are soft-maxed over the *slots* (so each
token distributes one unit of responsibility among the slots, which is what makes them explain
different parts of the input), then re-normalised over the inputs to take a weighted mean of the
values. Each slot is updated by a shared GRUCell and a residual MLP; 3 refinement iterations.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from aime.nn.fused_slot_attention import slot_iterations
from aime.nn.layer_norm import normalize

__all__ = ["SlotAttention"]

_SEED_MODES = ("add", "replace")


class SlotAttention(nn.Module):
    """Iterative competitive routing of N tokens into K slots.

    Args:
        num_slots: K.
        dim: slot dimension D (also the query/key/value dimension).
        iters: refinement iterations.
        eps: added to the responsibilities before normalising them over the inputs, so that a slot
            that wins no token still takes a well-defined mean.
        hidden_dim: hidden width of the residual slot MLP.
        input_dim: token dimension D_in (default: ``dim``).
        seed_mode: how ``seed_slots`` enter the initial slots: ``"add"`` (default) adds them to the
            sample from the learnable Gaussian N(mu, sigma), so the top-down signal shifts each
            slot while the Gaussian still breaks ties; ``"replace"`` uses them as the initial slots.
        fused: run the iterations as one autograd function with a hand-written backward
            (:mod:`aime.nn.fused_slot_attention`; default), or as the reference loop below, one
            autograd node per operation (which also supports double backward).

    Forward:
        x: ``[B, N, D_in]`` tokens.
        seed_slots: optional ``[B, K, D]`` top-down slot seeds.
        noise: sample the Gaussian (``True``) or use its mean ``mu`` (``False``, deterministic).
            Without seeds and without noise all slots start equal and stay equal.
        returns ``slots [B, K, D]`` and ``attn [B, K, N]``, the responsibilities of the last
        iteration (soft-maxed over slots: ``attn.sum(1) == 1`` at every position).
    """

    def __init__(
        self,
        num_slots: int = 4,
        dim: int = 64,
        iters: int = 3,
        eps: float = 1e-8,
        hidden_dim: int = 128,
        input_dim: int | None = None,
        seed_mode: str = "add",
        fused: bool = True,
    ) -> None:
        super().__init__()
        input_dim = dim if input_dim is None else input_dim
        for name, value in (
            ("num_slots", num_slots),
            ("dim", dim),
            ("iters", iters),
            ("hidden_dim", hidden_dim),
            ("input_dim", input_dim),
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"SlotAttention: expected {name} to be a positive int, got {value!r}")
        if not eps >= 0:
            raise ValueError(f"SlotAttention: expected eps >= 0, got {eps!r}")
        if seed_mode not in _SEED_MODES:
            raise ValueError(f"SlotAttention: expected seed_mode in {_SEED_MODES}, got {seed_mode!r}")
        self.num_slots, self.dim, self.input_dim = num_slots, dim, input_dim
        self.iters, self.eps, self.seed_mode, self.fused = iters, eps, seed_mode, bool(fused)
        self.scale = dim**-0.5

        self.slots_mu = nn.Parameter(torch.randn(1, 1, dim))
        self.slots_logsigma = nn.Parameter(torch.empty(1, 1, dim))
        nn.init.xavier_uniform_(self.slots_logsigma)

        self.norm_input = nn.LayerNorm(input_dim)  # its affine map is folded into to_k and to_v (forward)
        self.norm_slots = nn.LayerNorm(dim)
        self.norm_pre_ff = nn.LayerNorm(dim)
        self.to_q = nn.Linear(dim, dim)
        self.to_k = nn.Linear(input_dim, dim)
        self.to_v = nn.Linear(input_dim, dim)
        self.gru = nn.GRUCell(dim, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden_dim), nn.ReLU(inplace=True), nn.Linear(hidden_dim, dim))

    def project_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """What the slots attend to: the tokens ``x [..., N, D_in]`` normalised, without
        ``norm_input``'s affine map -> ``x_hat [..., N, D_in]``, in ``x``'s dtype.

        The keys ``k_n = W_k (g x_hat_n + c) + b_k`` and values ``v_n = W_v (g x_hat_n + c) + b_v``
        (``g``, ``c``: ``norm_input``'s weight and bias) are never formed: ``forward`` folds ``g`` and
        ``c`` into the two projections (:meth:`input_maps`), maps each iteration's queries into token
        space (``q . k_n = (W_k diag(g))^T q . x_hat_n + q . (W_k c + b_k)``) and pools the tokens
        before projecting them (the weights sum to one over the tokens, so ``sum_n w_n v_n =
        W_v diag(g) (sum_n w_n x_hat_n) + W_v c + b_v``). The same attention as with keys and values,
        without writing (and backpropagating) two ``[..., N, D]`` tensors, or an affine map, per
        frame; bf16 tokens stay bf16 (:mod:`aime.nn.layer_norm`). They do not depend on the slots, so
        a recurrent caller computes them for a whole sequence at once (batched over ``B*T``) and
        passes them to ``forward(inputs=...)`` step by step.
        """
        if x.shape[-1] != self.input_dim:
            raise ValueError(
                f"SlotAttention: expected tokens of shape [..., N, {self.input_dim}], got {tuple(x.shape)}"
            )
        return normalize(x, self.norm_input.eps)

    def input_maps(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``norm_input``'s affine map folded into the key and value projections: ``key_map [D,
        D_in + 1] = scale * [W_k diag(g) | W_k c + b_k]`` (applied to the queries; its last column,
        ``q . (W_k c + b_k)``, differs per slot, so it matters to the softmax over slots),
        ``value_weight [D, D_in] = W_v diag(g)`` and ``value_bias [D] = W_v c + b_v``."""
        g, c = self.norm_input.weight, self.norm_input.bias
        # (W * c).sum(-1), not W @ c: elementwise, so autocast leaves these small maps in fp32
        key_bias = self.to_k.bias + (self.to_k.weight * c).sum(-1)
        key_map = torch.cat([self.to_k.weight * g, key_bias[:, None]], 1) * self.scale
        return key_map, self.to_v.weight * g, self.to_v.bias + (self.to_v.weight * c).sum(-1)

    def forward(
        self,
        x: torch.Tensor | None,
        seed_slots: torch.Tensor | None = None,
        noise: bool = True,
        inputs: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``x [B, N, D_in]``, ``seed_slots [B, K, D] | None`` -> ``slots [B, K, D]``, ``attn [B, K, N]``.

        ``inputs``: precomputed ``project_inputs(x)`` ``[B, N, D_in]`` (then ``x`` may be ``None``).
        """
        if inputs is None:
            if x is None or x.dim() != 3 or x.shape[-1] != self.input_dim:
                shape = None if x is None else tuple(x.shape)
                raise ValueError(f"SlotAttention: expected x of shape [B, N, {self.input_dim}], got {shape}")
            inputs = self.project_inputs(x)
        if not isinstance(inputs, torch.Tensor) or inputs.dim() != 3 or inputs.shape[-1] != self.input_dim:
            shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
            raise ValueError(
                f"SlotAttention: expected inputs (project_inputs of the tokens) of shape "
                f"[B, N, {self.input_dim}], got {shape}"
            )
        tokens = inputs
        b = tokens.shape[0]
        k_slots, d = self.num_slots, self.dim
        if seed_slots is not None and tuple(seed_slots.shape) != (b, k_slots, d):
            raise ValueError(
                f"SlotAttention: expected seed_slots of shape {(b, k_slots, d)}, got {tuple(seed_slots.shape)}"
            )

        slots = self.slots_mu.expand(b, k_slots, d)
        if noise:
            slots = slots + self.slots_logsigma.exp() * torch.randn_like(slots)
        if seed_slots is not None:
            slots = seed_slots if self.seed_mode == "replace" else slots + seed_slots

        key_map, value_weight, value_bias = self.input_maps()  # see project_inputs
        if self.fused:
            device = tokens.device.type
            autocast = torch.is_autocast_enabled(device)
            token_dtype = torch.get_autocast_dtype(device) if autocast else tokens.dtype
            return slot_iterations(self, tokens, slots, key_map, (value_weight, value_bias), token_dtype)
        tokens_t = tokens.transpose(1, 2)  # [B, D_in, N]
        for _ in range(self.iters):
            slots_prev = slots
            queries = self.to_q(self.norm_slots(slots)) @ key_map  # [B, K, D_in + 1]
            logits = torch.baddbmm(queries[..., -1:], queries[..., :-1], tokens_t)  # [B, K, N], scaled
            attn = logits.softmax(dim=1)  # [B, K, N] responsibilities: competition over slots
            weights = attn + self.eps
            weights = weights / weights.sum(dim=-1, keepdim=True)  # weighted mean over inputs
            updates = F.linear(torch.einsum("bkn,bnc->bkc", weights, tokens), value_weight, value_bias)  # [B, K, D]
            slots = self.gru(rearrange(updates, "b k d -> (b k) d"), rearrange(slots_prev, "b k d -> (b k) d"))
            slots = rearrange(slots, "(b k) d -> b k d", b=b)
            slots = slots + self.mlp(self.norm_pre_ff(slots))
        return slots, attn
