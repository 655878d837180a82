"""The attention schema (seed 003): where the agent looks now, and where it will look next.

- ``AttentionPosterior`` (bottom-up): feature pyramid + top-down-seeded ``SlotAttention`` ->
  attention map ``[B, 21, 21]`` and centre ``[B, 2]``.
- ``AttentionPrior`` (top-down): ``ConvGRUCell`` + motion kernels + self/cross-attention ->
  predicted next map ``[B, 21, 21]`` and movement ``(dx, dy)``.
- ``AttentionSchema``: both, with the schema's losses; ``SchemaConfig``: its settings in one object.
- Losses (``aime.attention.losses``) and image overlays (``aime.attention.overlays``).
"""

from aime.attention.losses import (
    attention_dynamics_loss,
    attention_prior_cross_entropy,
    center_of_mass,
    slot_diversity_loss,
)
from aime.attention.overlays import (
    apply_colormap,
    attention_heatmap_overlay,
    slot_palette,
    visualize_multi_object_attention,
)
from aime.attention.posterior import AttentionPosterior
from aime.attention.prior import AttentionPrior
from aime.attention.schema import AttentionSchema, SchemaConfig
from aime.nn.conv_gru import ConvGRUCell
from aime.nn.slot_attention import SlotAttention

__all__ = [
    "SlotAttention",
    "ConvGRUCell",
    "AttentionPosterior",
    "AttentionPrior",
    "AttentionSchema",
    "SchemaConfig",
    "center_of_mass",
    "attention_dynamics_loss",
    "slot_diversity_loss",
    "attention_prior_cross_entropy",
    "visualize_multi_object_attention",
    "attention_heatmap_overlay",
    "slot_palette",
    "apply_colormap",
]
