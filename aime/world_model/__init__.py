"""The world model: the VRNN with the attention schema, its encoder, latents, decoders, heads and objectives.

- ``vrnn``: ``VRNN`` (``VRNN.from_config(cfg.model, num_actions, cfg.train)``);
- ``encoder``: ``Encoder``; ``latent``: Gaussian, categorical and stick-breaking latents (``LATENTS``);
- ``decoders``: conv, SpatialNet-field and NCA-refinement decoders (``DECODERS``);
- ``heads``: reward, continue, attention-map and object heads; ``objectives``: the loss terms;
- ``perception``: what the posterior over z sees, the plain encoder or the schema (``PERCEPTIONS``);
- ``schema_losses``: the attention schema's losses over a sequence; ``grouping``: motion grouping.
"""

from aime.world_model.decoders import DECODERS, ConvDecoder, FieldImageDecoder, NCARefinementDecoder
from aime.world_model.encoder import Encoder
from aime.world_model.grouping import motion_components, slot_grouping_loss
from aime.world_model.heads import AttentionMapHead, ContinueHead, ObjectHead, RewardHead
from aime.world_model.latent import LATENTS, CategoricalLatent, GaussianLatent, StickBreakingLatent
from aime.world_model.perception import PERCEPTIONS, PlainPerception, SchemaPerception, make_perception
from aime.world_model.schema_losses import schema_losses
from aime.world_model.vrnn import VRNN

__all__ = [
    "DECODERS",
    "LATENTS",
    "PERCEPTIONS",
    "VRNN",
    "AttentionMapHead",
    "CategoricalLatent",
    "ContinueHead",
    "ConvDecoder",
    "Encoder",
    "FieldImageDecoder",
    "GaussianLatent",
    "NCARefinementDecoder",
    "ObjectHead",
    "PlainPerception",
    "RewardHead",
    "SchemaPerception",
    "StickBreakingLatent",
    "make_perception",
    "motion_components",
    "schema_losses",
    "slot_grouping_loss",
]
