"""Perceiver-style context encoder: a small learned latent array cross-attends to a frame's tokens.

The world model runs it once per frame (batched over ``B*T``) on the feature-pyramid tokens to get
the context vector ``c_t`` that modulates the attention posterior's slot seeds.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from aime.nn.layer_norm import LayerNorm, normalize


class PerceiverEncoder(nn.Module):
    """Latent array ``[L, D]`` -> cross-attention to tokens -> self-attention -> mean -> ``[B, out_dim]``.

    Args:
        token_dim: channels ``C`` of the input tokens.
        out_dim: size of the context vector.
        num_latents: ``L``, the learned queries.
        latent_dim: ``D``, their width (a multiple of ``heads``).
        heads: attention heads.
        self_attention: add one latent self-attention block after the cross-attention.
    """

    def __init__(
        self,
        token_dim: int,
        out_dim: int,
        num_latents: int = 8,
        latent_dim: int = 64,
        heads: int = 4,
        self_attention: bool = True,
    ) -> None:
        super().__init__()
        if latent_dim % heads:
            raise ValueError(f"latent_dim ({latent_dim}) must be a multiple of heads ({heads})")
        self.token_dim, self.heads = token_dim, heads
        self.latents = nn.Parameter(torch.randn(num_latents, latent_dim) * latent_dim**-0.5)
        self.norm_tokens = nn.LayerNorm(token_dim)  # its affine map is folded into the keys and values (forward)
        self.norm_latents = nn.LayerNorm(latent_dim)
        self.to_q = nn.Linear(latent_dim, latent_dim, bias=False)
        self.to_kv = nn.Linear(token_dim, 2 * latent_dim, bias=False)
        self.to_out = nn.Linear(latent_dim, latent_dim)
        self.mlp = nn.Sequential(
            LayerNorm(latent_dim),
            nn.Linear(latent_dim, 2 * latent_dim),
            nn.SiLU(),
            nn.Linear(2 * latent_dim, latent_dim),
        )
        self.self_attn = (
            nn.TransformerEncoderLayer(
                latent_dim, heads, 2 * latent_dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
            )
            if self_attention
            else None
        )
        self.head = nn.Sequential(LayerNorm(latent_dim), nn.Linear(latent_dim, out_dim))

    def forward(self, tokens: Tensor) -> Tensor:
        """``tokens [B, N, C]`` (or a feature map ``[B, C, H, W]``) -> context ``[B, out_dim]``."""
        if tokens.dim() == 4:
            tokens = rearrange(tokens, "b c h w -> b (h w) c")
        if tokens.dim() != 3 or tokens.shape[-1] != self.token_dim:
            raise ValueError(
                f"tokens: expected [B, N, {self.token_dim}] or [B, {self.token_dim}, H, W], got {tuple(tokens.shape)}"
            )
        h, d = self.heads, self.latents.shape[1] // self.heads
        x = normalize(tokens, self.norm_tokens.eps)  # [B, N, C], without the affine map (below)
        # The latents are the same for every frame, so the keys and values are never formed:
        # q . (W_k x) = (W_k^T q) . x scores the tokens in their own C dims, and
        # softmax(.) (W_v x) = W_v (softmax(.) x) pools the tokens before projecting them. Exactly
        # the attention of to_q/to_kv, without writing (and backpropagating) a [B, N, 2D] tensor.
        # norm_tokens' affine map g x + c is folded in: g scales the queries' token-space weights,
        # q . W_k c is the same for every token (the softmax over tokens ignores it), and the pooled
        # tokens get g and c after pooling (the attention sums to one over the tokens).
        g, c = self.norm_tokens.weight, self.norm_tokens.bias
        q = rearrange(self.to_q(self.norm_latents(self.latents)), "l (h d) -> h l d", h=h)
        w_k, w_v = rearrange(self.to_kv.weight, "(two h d) c -> two h d c", two=2, h=h)
        q_tokens = rearrange(torch.einsum("hld,hdc->hlc", q, w_k) * (g * d**-0.5), "h l c -> (h l) c")
        attn = torch.matmul(q_tokens, x.transpose(1, 2)).softmax(-1)  # [B, H*L, N]
        pooled = rearrange(torch.bmm(attn, x), "b (h l) c -> b h l c", h=h) * g + c  # [B, H, L, C]
        attended = rearrange(torch.einsum("bhlc,hdc->bhld", pooled, w_v), "b h l d -> b l (h d)")
        latents = self.latents + self.to_out(attended)  # [B, L, D]
        latents = latents + self.mlp(latents)
        if self.self_attn is not None:
            latents = self.self_attn(latents)
        return self.head(latents.mean(1))
