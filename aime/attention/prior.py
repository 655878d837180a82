"""Top-down attention prior (seed 003, ``attention_prior.py``): predicts the next attention map.

From the previous map ``A_{t-1}`` and the world model's state ``(h_t, z_t)``:

    s        = ConvGRU(A_{t-1}, s_prev)                  [B, 32, R, R]   spatial dynamics
    m        = MotionKernels(A_{t-1})                     [B, 8, R, R]    8 learnable 5x5 filters
    x        = Proj(s) + pad(Proj(m)) + pos_embed         [B, R*R, 64]
    x        = x + SelfAttn(LN(x))                        relative bias | 2-D rotary | none
    x        = x + CrossAttn(LN(x), context(h, z))        context tokens from MLP([h, z])
    x        = x + FFN(LN(x))
    logits   = Linear(x)                                  [B, R, R]
    A_t      = softmax(logits over R*R)                   [B, R, R]
    (dx, dy) = MovementHead([A_{t-1}, x])                 [B, R, R] each

The prior has no hidden state of its own: the ConvGRU state is an explicit input (``spatial_state``,
``None`` = zeros, which is what the seed's ``ConvGRU(prev_attention)`` does) and the new state is
returned as ``info['spatial_features']``. Passing it back on the next call carries the recurrence;
leaving it out keeps every call independent, so a world model can run the prior on ``B*T`` maps
at once during training.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn
from torch.utils.checkpoint import checkpoint

from aime.nn.conv_gru import ConvGRUCell
from aime.nn.dot_product_attention import attend
from aime.nn.layer_norm import LayerNorm

__all__ = ["AttentionPrior", "conv_output_mean", "relative_position_index", "rotary_tables", "same_padding_taps"]

_POSITION_BIASES = ("relative", "rotary", "none")
_DROPOUT_MODES = ("residual", "weights")
_MOVEMENTS = ("map", "mean")


def _positive_int(owner: str, name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"{owner}: expected {name} to be a positive int, got {value!r}")
    return value


def relative_position_index(size: int) -> torch.Tensor:
    """Index into a ``[(2*size-1)**2, heads]`` bias table for every pair of grid positions.

    Returns ``[size*size, size*size]`` (int64): entry ``(i, j)`` encodes the offset
    ``(row_i - row_j, col_i - col_j)`` shifted to be non-negative, as in Swin Transformer.
    """
    coords = torch.stack(torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")).flatten(1)  # [2, N]
    offsets = coords[:, :, None] - coords[:, None, :] + (size - 1)  # [2, N, N] in [0, 2*size-2]
    return offsets[0] * (2 * size - 1) + offsets[1]


def rotary_tables(size: int, head_dim: int, base: float = 100.0) -> tuple[torch.Tensor, torch.Tensor]:
    """2-D rotary position tables for a ``size x size`` grid: ``(cos, sin)``, each ``[N, head_dim]``.

    Channel pairs ``(i, i + head_dim/2)`` are rotated by ``row * theta_i`` for the first quarter of
    the channels and by ``col * theta_i`` for the second, ``theta_i = base ** (-i / (head_dim/4))``.
    Rotating queries and keys this way makes ``q . k`` depend on positions only through their
    offset (a relative encoding that keeps ``scaled_dot_product_attention`` on its fused path).
    """
    if head_dim % 4 != 0:
        raise ValueError(f"rotary_tables: expected head_dim divisible by 4, got {head_dim}")
    quarter = head_dim // 4
    theta = base ** (-torch.arange(quarter, dtype=torch.float32) / quarter)  # [d/4]
    rows, cols = torch.meshgrid(
        torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij"
    )
    angles = torch.cat([rows.reshape(-1, 1) * theta, cols.reshape(-1, 1) * theta], dim=-1)  # [N, d/2]
    angles = torch.cat([angles, angles], dim=-1)  # [N, d]
    return angles.cos(), angles.sin()


def same_padding_taps(
    size: int, kernel_size: int, dtype: torch.dtype | None = None, device: torch.device | str | None = None
) -> torch.Tensor:
    """Which input rows each kernel row reads in a 'same'-padded convolution: ``[k, size]``, 0/1.

    Entry ``(u, r)`` is 1 when some output row ``i`` in ``[0, size)`` reads input row ``r`` through
    kernel row ``u``, i.e. ``r = i + u - k // 2`` (the rows ``u`` would read past the border are
    padding zeros). The same holds for columns.
    """
    # the output row i, built where it is used (no host-to-device copy inside an update)
    rows = (
        torch.arange(size, device=device)[None, :]
        - torch.arange(kernel_size, device=device)[:, None]
        + kernel_size // 2
    )
    return ((rows >= 0) & (rows < size)).to(dtype or torch.get_default_dtype())


def conv_output_mean(
    grid: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None, channels_last: bool = False
) -> torch.Tensor:
    """The mean over positions of a stride-1, 'same'-padded convolution's output, without the output.

    ``mean_ij conv(x)[o, i, j] = sum_{c,u,v} W[o, c, u, v] S[c, u, v] / (H W) + b[o]``, where
    ``S[c, u, v] = sum_{r,q} x[c, r, q] M_rows[u, r] M_cols[v, q]`` sums the inputs that tap
    ``(u, v)`` reads (:func:`same_padding_taps`): ``F.conv2d(x, W, b, padding=k // 2).mean((-2,
    -1))`` up to rounding, for ``k^2`` sums per channel instead of a map of outputs.

    Args:
        grid: ``[B, C, H, W]``, or ``[B, H, W, C]`` with ``channels_last`` (no transposed copy).
        weight: ``[O, C, k, k]``, ``k`` odd; bias: ``[O]`` or ``None``.
    Returns:
        ``[B, O]``.
    """
    k = weight.shape[-1]
    channels = grid.shape[-1] if channels_last else grid.shape[1]
    if weight.dim() != 4 or weight.shape[-2] != k or k % 2 == 0 or weight.shape[1] != channels:
        raise ValueError(
            f"conv_output_mean: expected weight [O, {channels}, k, k] with k odd, got {tuple(weight.shape)}"
        )
    h, w = grid.shape[1:3] if channels_last else grid.shape[-2:]
    rows = same_padding_taps(h, k, grid.dtype, grid.device)
    cols = same_padding_taps(w, k, grid.dtype, grid.device)
    sums = torch.einsum("bhwc,uh,vw->bcuv" if channels_last else "bchw,uh,vw->bcuv", grid, rows, cols)
    out = torch.einsum("bcuv,ocuv->bo", sums, weight.to(sums.dtype)) / (h * w)  # [B, O]
    return out if bias is None else out + bias.to(out.dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Apply rotary tables to ``x [..., N, d]``."""
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-second, first], dim=-1) * sin


class AttentionPrior(nn.Module):
    """Predicts where attention goes next from the previous map and the world-model state.

    Args:
        attention_resolution: side ``R`` of the square attention map (21 for 84x84 frames).
        hidden_dim: size of the deterministic state ``h``.
        latent_dim: size of the stochastic state ``z``.
        motion_kernels: number of learnable 5x5 motion filters applied to the previous map.
        num_heads: heads of the self- and cross-attention; must divide ``feature_dim``.
        feature_dim: width of the per-position features.
        use_relative_position_bias: seed switch for the learnable 2-D relative position bias;
            ignored when ``position_bias`` is given.
        use_checkpoint: recompute the transformer block in backward (training only) to save
            activation memory (costs a second forward of the block).
        dropout: dropout probability (training only); where it acts is ``dropout_mode``.
        convgru_hidden_size: channels of the ConvGRU state.
        convgru_kernel_size: kernel of the ConvGRU convolutions.
        position_bias: ``"relative"`` (the seed's form: a ``[(2R-1)^2, heads]`` table gathered to
            ``[heads, R*R, R*R]`` and added to the attention scores; on CPU a float mask keeps
            ``scaled_dot_product_attention`` off its fused kernel), ``"rotary"`` (2-D rotary
            embedding of queries and keys, ``rotary_tables``: relative, no parameters, fused
            kernel; needs ``feature_dim / num_heads`` divisible by 4) or ``"none"`` (only the
            learnable absolute position embedding, which all three options add to the tokens).
            Default: ``"relative"`` if ``use_relative_position_bias`` else ``"none"``.
        dropout_mode: ``"residual"`` (default: dropout on the outputs of the self-attention,
            cross-attention and FFN branches) or ``"weights"`` (on the attention weights, the
            seed's "attention dropout"; on CPU it keeps attention off the fused kernel and draws
            a Bernoulli mask per score, ``B * heads * N^2`` of them). The FFN's hidden layer
            has dropout in both modes.
        context_tokens: number of tokens the context MLP makes from ``[h, z]`` for the cross-
            attention. The seed uses one context vector repeated at every key, which makes the
            cross-attention a constant broadcast (a softmax over identical keys is uniform);
            ``context_tokens=1`` reproduces that exactly, the default 4 lets each position
            choose among several context tokens.
        ffn_mult: hidden width of the FFN as a multiple of ``feature_dim``.
        token_pool: ``p > 1`` runs the self-attention among ``p x p`` average-pooled tokens
            (7x7 for p = 3) and adds its output back to every position of the pooled cell; the
            cross-attention, FFN and logits stay at full resolution. ``1`` is the seed's global
            attention over all ``R*R`` positions. Needs ``position_bias="none"``.

    Forward:
        prev_attention: ``[B, R, R]`` map at ``t-1`` (probabilities, or any real map).
        hidden_state: ``[B, hidden_dim]``.
        latent_state: ``[B, latent_dim]``.
        spatial_state: ``[B, convgru_hidden_size, R, R]`` or ``None`` (zeros).
        movement: ``"map"`` (the seed's movement fields) or ``"mean"`` (their means over the
            map alone, what the dynamics loss reads, computed without the fields:
            :func:`conv_output_mean`).

    Returns:
        ``(attention_probs [B, R, R], info)``: the predicted map (sums to 1 over ``R*R``) and
        ``info`` with ``predicted_movement`` (``(dx, dy)``, each ``[B, R, R]``, or ``[B]`` with
        ``movement="mean"``),
        ``spatial_features`` ``[B, convgru_hidden_size, R, R]`` (also the next
        ``spatial_state``), ``motion_features`` ``[B, motion_kernels, R, R]`` and
        ``attention_logits`` ``[B, R, R]``.
    """

    def __init__(
        self,
        attention_resolution: int = 21,
        hidden_dim: int = 256,
        latent_dim: int = 32,
        motion_kernels: int = 8,
        num_heads: int = 4,
        feature_dim: int = 64,
        use_relative_position_bias: bool = True,
        use_checkpoint: bool = True,
        dropout: float = 0.1,
        convgru_hidden_size: int = 32,
        convgru_kernel_size: int = 5,
        position_bias: str | None = None,
        context_tokens: int = 4,
        ffn_mult: int = 4,
        dropout_mode: str = "residual",
        token_pool: int = 1,
    ) -> None:
        super().__init__()
        owner = "AttentionPrior"
        for name, value in (
            ("attention_resolution", attention_resolution),
            ("hidden_dim", hidden_dim),
            ("latent_dim", latent_dim),
            ("motion_kernels", motion_kernels),
            ("num_heads", num_heads),
            ("feature_dim", feature_dim),
            ("convgru_hidden_size", convgru_hidden_size),
            ("convgru_kernel_size", convgru_kernel_size),
            ("context_tokens", context_tokens),
            ("ffn_mult", ffn_mult),
        ):
            _positive_int(owner, name, value)
        if feature_dim % num_heads != 0:
            raise ValueError(
                f"{owner}: expected feature_dim divisible by num_heads, got feature_dim="
                f"{feature_dim}, num_heads={num_heads}"
            )
        if feature_dim < 2:
            raise ValueError(f"{owner}: expected feature_dim >= 2, got {feature_dim}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"{owner}: expected dropout in [0, 1), got {dropout!r}")
        if position_bias is None:
            position_bias = "relative" if use_relative_position_bias else "none"
        if position_bias not in _POSITION_BIASES:
            raise ValueError(f"{owner}: expected position_bias in {_POSITION_BIASES}, got {position_bias!r}")
        if position_bias == "rotary" and (feature_dim // num_heads) % 4 != 0:
            raise ValueError(
                f"{owner}: position_bias='rotary' expects feature_dim / num_heads divisible by 4, "
                f"got {feature_dim} / {num_heads}"
            )
        _positive_int(owner, "token_pool", token_pool)
        if token_pool > 1 and position_bias != "none":
            raise ValueError(
                f"{owner}: token_pool > 1 needs position_bias='none' (the relative and rotary tables "
                f"are built for the full {attention_resolution}x{attention_resolution} grid), got {position_bias!r}"
            )
        if dropout_mode not in _DROPOUT_MODES:
            raise ValueError(f"{owner}: expected dropout_mode in {_DROPOUT_MODES}, got {dropout_mode!r}")

        self.attention_resolution = attention_resolution
        self.hidden_dim = hidden_dim
        self.latent_dim = latent_dim
        self.motion_kernels = motion_kernels
        self.num_heads = num_heads
        self.feature_dim = feature_dim
        self.use_checkpoint = bool(use_checkpoint)
        self.dropout = float(dropout)
        self.convgru_hidden_size = convgru_hidden_size
        self.position_bias = position_bias
        self.context_tokens = context_tokens
        self.dropout_mode = dropout_mode
        self.token_pool = token_pool
        num_positions = attention_resolution * attention_resolution

        self.conv_gru = ConvGRUCell(1, convgru_hidden_size, convgru_kernel_size)
        self.motion_conv = nn.Conv2d(1, motion_kernels, 5, padding=2, bias=False)
        self.spatial_proj = nn.Conv2d(convgru_hidden_size, feature_dim, 1)
        # The seed projects motion to half the width and zero-pads the channels: motion enters
        # only the first half of the feature channels.
        self.motion_proj = nn.Conv2d(motion_kernels, feature_dim // 2, 1)
        self.pos_embed = nn.Parameter(torch.zeros(1, num_positions, feature_dim))
        nn.init.trunc_normal_(self.pos_embed, std=0.02)

        self.context_mlp = nn.Sequential(
            nn.Linear(hidden_dim + latent_dim, feature_dim),
            nn.SiLU(),
            nn.Linear(feature_dim, feature_dim * context_tokens),
        )

        self.self_norm = LayerNorm(feature_dim)
        self.self_qkv = nn.Linear(feature_dim, 3 * feature_dim)
        self.self_out = nn.Linear(feature_dim, feature_dim)
        if position_bias == "relative":
            self.relative_bias_table = nn.Parameter(torch.zeros((2 * attention_resolution - 1) ** 2, num_heads))
            nn.init.trunc_normal_(self.relative_bias_table, std=0.02)
            self.register_buffer("relative_index", relative_position_index(attention_resolution), persistent=False)
        else:
            self.relative_bias_table = None
            self.relative_index = None
        if position_bias == "rotary":
            cos, sin = rotary_tables(attention_resolution, feature_dim // num_heads)
            self.register_buffer("rotary_cos", cos, persistent=False)
            self.register_buffer("rotary_sin", sin, persistent=False)
        else:
            self.rotary_cos = None
            self.rotary_sin = None

        self.cross_norm = LayerNorm(feature_dim)
        self.context_norm = LayerNorm(feature_dim)
        self.cross_q = nn.Linear(feature_dim, feature_dim)
        self.cross_kv = nn.Linear(feature_dim, 2 * feature_dim)
        self.cross_out = nn.Linear(feature_dim, feature_dim)

        self.ffn_norm = LayerNorm(feature_dim)
        self.ffn = nn.Sequential(
            nn.Linear(feature_dim, ffn_mult * feature_dim),
            nn.GELU(),
            nn.Dropout(self.dropout),
            nn.Linear(ffn_mult * feature_dim, feature_dim),
        )
        self.residual_dropout = nn.Dropout(self.dropout if dropout_mode == "residual" else 0.0)
        self.logit_head = nn.Linear(feature_dim, 1)
        # The seed's movement head sees only A_{t-1}; averaged over the map (as the dynamics loss
        # does) that is nearly a constant, so it also sees the transformer features, which carry
        # (h, z) and the motion responses.
        self.movement_head = nn.Conv2d(1 + feature_dim, 2, 3, padding=1)

    def relative_bias(self) -> torch.Tensor | None:
        """The gathered relative position bias ``[heads, R*R, R*R]``, or ``None`` without one."""
        if self.relative_bias_table is None:
            return None
        bias = self.relative_bias_table[self.relative_index]  # [N, N, heads]
        return rearrange(bias, "n m h -> h n m")

    def _validate(
        self,
        prev_attention: torch.Tensor,
        hidden_state: torch.Tensor,
        latent_state: torch.Tensor,
        spatial_state: torch.Tensor | None,
    ) -> None:
        r = self.attention_resolution
        if prev_attention.dim() != 3 or tuple(prev_attention.shape[1:]) != (r, r):
            raise ValueError(
                f"AttentionPrior: expected prev_attention of shape [B, {r}, {r}], got {tuple(prev_attention.shape)}"
            )
        b = prev_attention.shape[0]
        for name, tensor, width in (
            ("hidden_state", hidden_state, self.hidden_dim),
            ("latent_state", latent_state, self.latent_dim),
        ):
            if tuple(tensor.shape) != (b, width):
                raise ValueError(f"AttentionPrior: expected {name} of shape {(b, width)}, got {tuple(tensor.shape)}")
        if spatial_state is not None:
            expected = (b, self.convgru_hidden_size, r, r)
            if tuple(spatial_state.shape) != expected:
                raise ValueError(
                    f"AttentionPrior: expected spatial_state of shape {expected}, got {tuple(spatial_state.shape)}"
                )

    def _self_attention(self, x: torch.Tensor) -> torch.Tensor:
        """``x [B, N, D]`` -> ``[B, N, D]`` (multi-head, scaled dot product, optional bias)."""
        q, k, v = rearrange(
            self.self_qkv(self.self_norm(x)),
            "b n (three h d) -> three b h n d",
            three=3,
            h=self.num_heads,
        )
        if self.rotary_cos is not None:
            cos, sin = self.rotary_cos.to(q.dtype), self.rotary_sin.to(q.dtype)
            q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        bias = self.relative_bias()
        mask = None if bias is None else bias.to(q.dtype).unsqueeze(0)  # [1, heads, N, N]
        out = attend(q, k, v, mask, self._weight_dropout())
        return self.self_out(rearrange(out, "b h n d -> b n (h d)"))

    def _cross_attention(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """``x [B, N, D]`` queries, ``context [B, T_c, D]`` keys/values -> ``[B, N, D]``."""
        q = rearrange(self.cross_q(self.cross_norm(x)), "b n (h d) -> b h n d", h=self.num_heads)
        k, v = rearrange(
            self.cross_kv(self.context_norm(context)),
            "b t (two h d) -> two b h t d",
            two=2,
            h=self.num_heads,
        )
        out = attend(q, k, v, dropout_p=self._weight_dropout())
        return self.cross_out(rearrange(out, "b h n d -> b n (h d)"))

    def _weight_dropout(self) -> float:
        return self.dropout if self.training and self.dropout_mode == "weights" else 0.0

    def _pooled_self_attention(self, x: torch.Tensor) -> torch.Tensor:
        """Self-attention among ``p x p`` average-pooled tokens, broadcast back to the full grid.

        ``[B, N, D] -> [B, N, D]``; ``(R/p)^4`` instead of ``R^4`` scores (81x fewer for p = 3).
        """
        r = self.attention_resolution
        grid = rearrange(x, "b (h w) d -> b d h w", h=r)
        size = -(-r // self.token_pool)
        pooled = F.adaptive_avg_pool2d(grid, size)
        attended = self._self_attention(rearrange(pooled, "b d h w -> b (h w) d"))
        up = F.interpolate(rearrange(attended, "b (h w) d -> b d h w", h=size), size=(r, r), mode="nearest")
        return rearrange(up, "b d h w -> b (h w) d")

    def _block(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """The pre-norm transformer block: self-attention, cross-attention, FFN. ``[B, N, D]``."""
        mix = self._pooled_self_attention if self.token_pool > 1 else self._self_attention
        x = x + self.residual_dropout(mix(x))
        x = x + self.residual_dropout(self._cross_attention(x, context))
        return x + self.residual_dropout(self.ffn(self.ffn_norm(x)))

    def forward(
        self,
        prev_attention: torch.Tensor,
        hidden_state: torch.Tensor,
        latent_state: torch.Tensor,
        spatial_state: torch.Tensor | None = None,
        movement: str = "map",
    ) -> tuple[torch.Tensor, dict[str, Any]]:
        """Predict the next map; see the class docstring for shapes."""
        self._validate(prev_attention, hidden_state, latent_state, spatial_state)
        if movement not in _MOVEMENTS:
            raise ValueError(f"AttentionPrior: expected movement in {_MOVEMENTS}, got {movement!r}")
        r = self.attention_resolution
        prev = prev_attention.unsqueeze(1)  # [B, 1, R, R]

        spatial = self.conv_gru(prev, spatial_state)  # [B, C_s, R, R]
        motion = self.motion_conv(prev)  # [B, M, R, R]
        combined = self.spatial_proj(spatial) + F.pad(
            self.motion_proj(motion), (0, 0, 0, 0, 0, self.feature_dim - self.feature_dim // 2)
        )  # [B, D, R, R]
        x = rearrange(combined, "b d h w -> b (h w) d") + self.pos_embed  # [B, N, D]
        context = rearrange(
            self.context_mlp(torch.cat([hidden_state, latent_state], dim=-1)),
            "b (t d) -> b t d",
            t=self.context_tokens,
        )  # [B, T_c, D]

        if self.use_checkpoint and self.training and torch.is_grad_enabled():
            x = checkpoint(self._block, x, context, use_reentrant=False)
        else:
            x = self._block(x, context)

        logits = rearrange(self.logit_head(x), "b (h w) 1 -> b h w", h=r)  # [B, R, R]
        probs = rearrange(torch.softmax(rearrange(logits, "b h w -> b (h w)"), dim=-1), "b (h w) -> b h w", h=r)
        if movement == "mean":  # the head's input never concatenated, its output never formed
            weight, bias = self.movement_head.weight, self.movement_head.bias
            grid = rearrange(x, "b (h w) d -> b h w d", h=r)
            moved = conv_output_mean(prev, weight[:, :1], bias) + conv_output_mean(
                grid, weight[:, 1:], channels_last=True
            )  # [B, 2]
        else:
            features = rearrange(x, "b (h w) d -> b d h w", h=r)  # [B, D, R, R]
            moved = self.movement_head(torch.cat([prev, features], dim=1))  # [B, 2, R, R]
        info = {
            "predicted_movement": (moved[:, 0], moved[:, 1]),
            "spatial_features": spatial,
            "motion_features": motion,
            "attention_logits": logits,
        }
        return probs, info
