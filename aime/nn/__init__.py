"""Generic neural-network blocks; they know nothing of RL or Atari.

- ``conv_gru``: ``ConvGRUCell``; ``slot_attention``: ``SlotAttention`` (its iterations run by
  ``fused_slot_attention.slot_iterations``, one autograd function with a hand-written backward);
- ``spatialnet`` (a package: block, network, field decoder, coordinates): ``SpatialBlock`` (rmf | dot),
  ``SpatialNet``, ``FieldDecoder``, coordinate grids; ``spatial_losses``: InfoNCE patch coherence, spatial
  diversity;
- ``nca``: ``ConvAttentionNCA`` and ``nca_refine`` (its training loop is ``aime.experiments.nca_training``);
- ``neural_field``: ``NeuralField``, ``SimpleNeuralField`` (Amari, 1-D), ``NeuralField2d``;
- ``dot_product_attention``: ``attend``, multi-head attention written out for a handful of keys;
- ``perceiver``: ``PerceiverEncoder`` (per-frame context); ``mlp``: ``mlp.mlp``, the (Linear, LayerNorm,
  SiLU) stack of the world model's and the agent's networks, and the ``MLP`` baseline SpatialNet is compared
  to (the function is not re-exported here: ``aime.nn.mlp`` stays the module);
- ``layer_norm``: ``LayerNorm``, whose weight and bias get accurate gradients under CPU bf16 autocast, and
  ``normalize``, the affine-free norm of the attention schema's tokens (the readers fold the affine map in);
- ``distributions``: symlog, two-hot, straight-through categorical, diagonal Gaussian, stick-breaking.
"""

from aime.nn.conv_gru import ConvGRUCell
from aime.nn.distributions import DiagGaussian, StraightThroughCategorical, TwoHot, symexp, symlog
from aime.nn.dot_product_attention import attend
from aime.nn.mlp import MLP
from aime.nn.nca import ConvAttentionNCA, nca_refine
from aime.nn.neural_field import NeuralField, NeuralField2d, SimpleNeuralField
from aime.nn.perceiver import PerceiverEncoder
from aime.nn.slot_attention import SlotAttention
from aime.nn.spatial_losses import info_nce_patch_coherence, spatial_diversity_loss
from aime.nn.spatialnet import FieldDecoder, SpatialBlock, SpatialNet, make_coordinate_grid

__all__ = [
    "MLP",
    "ConvAttentionNCA",
    "ConvGRUCell",
    "DiagGaussian",
    "FieldDecoder",
    "NeuralField",
    "NeuralField2d",
    "PerceiverEncoder",
    "SimpleNeuralField",
    "SlotAttention",
    "SpatialBlock",
    "SpatialNet",
    "StraightThroughCategorical",
    "TwoHot",
    "attend",
    "info_nce_patch_coherence",
    "make_coordinate_grid",
    "nca_refine",
    "spatial_diversity_loss",
    "symexp",
    "symlog",
]
