"""The attention schema (seed 003, ``AttentionSchema``): posterior and prior under one roof.

``posterior_net`` (bottom-up: where attention is now, from the frame) and ``prior_net`` (top-down:
where it goes next, from the previous map and the state), with the schema's losses:

- ``compute_attention_dynamics_loss``: predicted vs actual centre-of-mass movement.
- ``compute_diversity_loss``: slot separation of the posterior.
- ``compute_prior_loss``: the prior's map against the next posterior map (cross-entropy).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import torch
from torch import nn

from aime.attention.losses import (
    attention_dynamics_loss,
    attention_prior_cross_entropy,
    slot_diversity_loss,
)
from aime.attention.overlays import visualize_multi_object_attention
from aime.attention.posterior import AttentionPosterior
from aime.attention.prior import AttentionPrior

__all__ = ["AttentionSchema", "SchemaConfig"]


@dataclass(frozen=True)
class SchemaConfig:
    """Every setting of the schema in one object: the sizes both networks share, then the
    posterior's, then the prior's (defaults: seed 003's).

    Shared: ``image_size`` (side of the square frames), ``attention_resolution`` (side ``R`` of the
    maps), ``hidden_dim`` (``h``), ``latent_dim`` (``z``), ``context_dim`` (``c``),
    ``attention_dim`` (feature width of both networks), ``num_heads`` (the prior's; the posterior
    ignores it).

    Posterior (:class:`AttentionPosterior`): ``input_channels``, ``num_semantic_slots``,
    ``attention_fusion_mode``, ``enforce_diversity``, ``dropout_p``, ``coord_noise_std``,
    ``slot_iters``, ``slot_mlp_hidden``; ``posterior_norm`` (its pyramid's ``norm``, ``"group"`` or
    ``"none"``), ``posterior_map`` (its ``map_mode``, ``"normalize"`` or the seed's ``"softmax"``),
    ``posterior_position`` (its ``position_code``, ``"learned"`` or ``"fourier"``),
    ``slot_persistence`` (its ``persistence``: the slots of ``t-1`` seed those of ``t``),
    ``slot_seeds`` (``"state"``: seeds from ``(h, c)``, the seed's; ``"frame"``: from ``c`` alone),
    ``slot_output_grad`` (its ``output_grad``: whether losses on the bottleneck and ``coords`` reach
    the slots).

    Prior (:class:`AttentionPrior`): ``motion_kernels``, ``use_relative_position_bias``,
    ``use_checkpoint``, ``prior_dropout`` (its ``dropout``), ``convgru_hidden_size``,
    ``convgru_kernel_size``, ``position_bias``, ``context_tokens``, ``dropout_mode``, ``token_pool``.
    """

    image_size: int = 84
    attention_resolution: int = 21
    hidden_dim: int = 256
    latent_dim: int = 32
    context_dim: int = 128
    attention_dim: int = 64
    num_heads: int = 4
    input_channels: int = 3
    num_semantic_slots: int = 4
    attention_fusion_mode: str = "weighted"
    enforce_diversity: bool = True
    dropout_p: float = 0.2
    coord_noise_std: float = 0.0
    slot_iters: int = 3
    slot_mlp_hidden: int = 128
    posterior_norm: str = "group"
    posterior_map: str = "normalize"
    posterior_position: str = "learned"
    slot_persistence: bool = False
    slot_seeds: str = "state"
    slot_output_grad: bool = True
    motion_kernels: int = 8
    use_relative_position_bias: bool = True
    use_checkpoint: bool = True
    prior_dropout: float = 0.1
    convgru_hidden_size: int = 32
    convgru_kernel_size: int = 5
    position_bias: str | None = None
    context_tokens: int = 4
    dropout_mode: str = "residual"
    token_pool: int = 1

    def posterior_kwargs(self) -> dict[str, Any]:
        """The :class:`AttentionPosterior` arguments."""
        return dict(
            image_size=self.image_size,
            attention_resolution=self.attention_resolution,
            hidden_dim=self.hidden_dim,
            context_dim=self.context_dim,
            input_channels=self.input_channels,
            feature_channels=self.attention_dim,
            num_semantic_slots=self.num_semantic_slots,
            num_heads=self.num_heads,
            attention_fusion_mode=self.attention_fusion_mode,
            enforce_diversity=self.enforce_diversity,
            dropout_p=self.dropout_p,
            coord_noise_std=self.coord_noise_std,
            slot_iters=self.slot_iters,
            slot_mlp_hidden=self.slot_mlp_hidden,
            norm=self.posterior_norm,
            map_mode=self.posterior_map,
            position_code=self.posterior_position,
            persistence=self.slot_persistence,
            slot_seeds=self.slot_seeds,
            output_grad=self.slot_output_grad,
        )

    def prior_kwargs(self) -> dict[str, Any]:
        """The :class:`AttentionPrior` arguments."""
        return dict(
            attention_resolution=self.attention_resolution,
            hidden_dim=self.hidden_dim,
            latent_dim=self.latent_dim,
            motion_kernels=self.motion_kernels,
            num_heads=self.num_heads,
            feature_dim=self.attention_dim,
            use_relative_position_bias=self.use_relative_position_bias,
            use_checkpoint=self.use_checkpoint,
            dropout=self.prior_dropout,
            convgru_hidden_size=self.convgru_hidden_size,
            convgru_kernel_size=self.convgru_kernel_size,
            position_bias=self.position_bias,
            context_tokens=self.context_tokens,
            dropout_mode=self.dropout_mode,
            token_pool=self.token_pool,
        )


class AttentionSchema(nn.Module):
    """Bottom-up ``AttentionPosterior`` plus top-down ``AttentionPrior`` (seed 003).

    Built from a :class:`SchemaConfig` (``AttentionSchema(SchemaConfig(hidden_dim=128))``) or from
    its fields as keywords, the seed's form (``AttentionSchema(image_size=84, hidden_dim=256)``);
    keywords given with a config replace its fields. Unknown settings raise ``ValueError``.

    Args:
        config: every setting (see :class:`SchemaConfig` for each field); ``None``: the defaults.
        fpn: the posterior's feature pyramid (``None``: its own), e.g. the world model's encoder trunk.
        **settings: fields of :class:`SchemaConfig`.

    ``forward`` runs one step (see its docstring); the two networks can also be called directly
    (``posterior_net(observation, h, c)``, ``prior_net(prev_attention, h, z)``), e.g. the prior on
    all ``B*T`` maps of a sequence at once.
    """

    def __init__(self, config: SchemaConfig | None = None, *, fpn: nn.Module | None = None, **settings: Any) -> None:
        super().__init__()
        unknown = set(settings) - {f.name for f in fields(SchemaConfig)}
        if unknown:
            raise ValueError(
                f"AttentionSchema: unknown settings {', '.join(sorted(unknown))}; "
                f"the settings are SchemaConfig's fields: {', '.join(f.name for f in fields(SchemaConfig))}"
            )
        config = replace(config or SchemaConfig(), **settings)
        self.config = config
        self.posterior_net = AttentionPosterior(**config.posterior_kwargs(), fpn=fpn)
        self.prior_net = AttentionPrior(**config.prior_kwargs())
        # the seed's attributes
        self.image_size, self.attention_resolution = config.image_size, config.attention_resolution
        self.hidden_dim, self.latent_dim, self.context_dim = config.hidden_dim, config.latent_dim, config.context_dim

    def forward(
        self,
        observation: torch.Tensor | None,
        hidden_state: torch.Tensor,
        context: torch.Tensor,
        latent_state: torch.Tensor,
        spatial_state: torch.Tensor | None = None,
        features: torch.Tensor | None = None,
    ) -> dict[str, Any]:
        """One step: the posterior's map now, and the prior's prediction of the next one from it.

        Args:
            observation: ``[B, 3, S, S]`` (uint8 or float in [0, 1]); may be ``None`` when the
                posterior's ``features`` ``[B, d, R, R]`` are given.
            hidden_state: ``[B, hidden_dim]``; context: ``[B, context_dim]``;
            latent_state: ``[B, latent_dim]``; spatial_state: the prior's ConvGRU state
                ``[B, convgru_hidden_size, R, R]`` or ``None``.

        Returns:
            ``{"posterior": [B, R, R], "coords": [B, 2], "prior": [B, R, R] (for t+1),
            "prior_info": the prior's info dict}``.
        """
        posterior, coords = self.posterior_net(observation, hidden_state, context, features=features)
        prior, info = self.prior_net(posterior, hidden_state, latent_state, spatial_state)
        return {"posterior": posterior, "coords": coords, "prior": prior, "prior_info": info}

    def compute_attention_dynamics_loss(
        self,
        attention_sequence: Sequence[torch.Tensor] | torch.Tensor,
        predicted_movements: Sequence | torch.Tensor,
        *,
        detach_target: bool = False,
    ) -> torch.Tensor:
        """Seed 003's attention dynamics loss; see ``aime.attention.losses.attention_dynamics_loss``.

        Args:
            attention_sequence: list of ``T`` maps ``[B, H, W]`` or a tensor ``[B, T, H, W]``.
            predicted_movements: list of ``T-1`` ``(dx, dy)`` pairs (each ``[B, H, W]``), ``[B, 2]``
                or ``[B, 2, H, W]`` tensors; or ``[B, T-1, 2]`` / ``[B, T-1, 2, H, W]``.

        Returns:
            A scalar: ``SmoothL1(pred_x, actual_x) + SmoothL1(pred_y, actual_y)``.
        """
        return attention_dynamics_loss(attention_sequence, predicted_movements, detach_target=detach_target)

    def compute_diversity_loss(
        self, slot_attention_maps: torch.Tensor | None = None, from_logits: bool = True
    ) -> torch.Tensor:
        """Seed 003's slot diversity loss of ``[B, K, H, W]`` maps (default: the posterior's last).

        ``from_logits=True`` is the seed's definition (softmax over positions); ``False`` divides
        non-negative maps by their sums instead. Returns a scalar in [0, 1].
        """
        if slot_attention_maps is None:
            slot_attention_maps = self.posterior_net.slot_attention_maps
            if slot_attention_maps is None:
                raise ValueError(
                    "AttentionSchema.compute_diversity_loss: expected slot_attention_maps "
                    "[B, K, H, W] or a previous posterior_net forward, got neither"
                )
        return slot_diversity_loss(slot_attention_maps, from_logits=from_logits)

    def compute_prior_loss(
        self, prior: torch.Tensor, next_posterior: torch.Tensor, *, prior_is_logits: bool = False
    ) -> torch.Tensor:
        """Cross-entropy of the prior's map against the next posterior map, ``[..., H, W]`` each.

        See ``aime.attention.losses.attention_prior_cross_entropy``; detach ``next_posterior`` to
        train only the prior. Returns a scalar.
        """
        return attention_prior_cross_entropy(prior, next_posterior, prior_is_logits=prior_is_logits)

    def visualize_multi_object_attention(
        self,
        observation: torch.Tensor,
        slot_attention_maps: torch.Tensor | None = None,
        slot_centers: torch.Tensor | None = None,
        group_assignments: torch.Tensor | None = None,
        return_mode: str = "all",
    ) -> dict[str, torch.Tensor]:
        """Overlays of the posterior's slots (default: from its last forward) on ``[B, 3, S, S]``.

        See ``aime.attention.overlays.visualize_multi_object_attention`` for the keys and shapes.
        """
        post = self.posterior_net
        if slot_attention_maps is None:
            slot_attention_maps, slot_centers = post.slot_attention_maps, post.slot_centers
            group_assignments = post.group_assignments
            if slot_attention_maps is None:
                raise ValueError(
                    "AttentionSchema.visualize_multi_object_attention: expected slot maps "
                    "[B, K, h, w] or a previous posterior_net forward, got neither"
                )
        if slot_centers is None:
            raise ValueError(
                "AttentionSchema.visualize_multi_object_attention: expected slot_centers [B, K, 2] "
                "with slot_attention_maps, got None"
            )
        return visualize_multi_object_attention(
            observation, slot_attention_maps, slot_centers, group_assignments, return_mode
        )
