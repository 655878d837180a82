"""SpatialNet: neurons that sit in continuous space (seed 000).

Each neuron ``j`` of a :class:`SpatialBlock` has a learnable position ``p_j`` in the block's input
space (its anchor), a learnable bandwidth ``sigma_j > 0`` and a belief ``b_j`` (the value it wants
to "say"). For a query point ``x`` the block returns the attention-weighted average of the beliefs::

    rmf:  s_j(x) = -||x - p_j||^2 / (2 sigma_j^2)       (radial metric field, the seed's default)
    dot:  s_j(x) =  (x . p_j) / sigma_j^2                (dot product with the same anchors)
    a_j(x) = softmax_j s_j(x)                            (sums to 1 over the neurons)
    y(x)   = sum_j a_j(x) b_j

``sigma_j = softplus(rho_j) + 1e-6`` keeps the bandwidth positive whatever the optimiser does to
the raw parameter ``rho_j``. The "dot" score is exactly the cross term of the RMF score expanded
(``-||x-p||^2/(2s^2) = (x.p)/s^2 - ||x||^2/(2s^2) - ||p||^2/(2s^2)``), so the two modes have the
same parameters and differ only in the locality terms, which is the comparison the seed makes.

Blocks stack: the first block's neurons sit in the 2-D coordinate space and hold N-dimensional
beliefs; the next block's neurons sit in that N-dimensional space, and so on (:class:`SpatialNet`).
:class:`FieldDecoder` is the conditioned form used as a decoder: a latent vector per sample shifts
the beliefs (and optionally positions and bandwidths) of every block, and the field is evaluated at
arbitrary query coordinates, so training can use a random subset of pixels per image.

The package, one job per module (every name below imports from ``aime.nn.spatialnet`` as well):

- :mod:`~aime.nn.spatialnet.block`: ``SpatialBlock``, ``spatial_attention``, ``init_positions``, the
  stacking of blocks;
- :mod:`~aime.nn.spatialnet.network`: ``SpatialNet`` and the seed's configuration ``SEED_CONFIG``;
- :mod:`~aime.nn.spatialnet.field_decoder`: ``FieldDecoder`` (the conditioned field);
- :mod:`~aime.nn.spatialnet.coordinates`: ``make_coordinate_grid``, ``sample_pixels``;
- the ``MLP`` baseline, ``matched_mlp``, ``mlp_parameter_count`` and ``count_parameters`` live in
  :mod:`aime.nn.mlp` and are re-exported here.

Parameter names are part of the checkpoint format and are those of the single-module version:
``positions``, ``sigma_raw``, ``beliefs`` per block, under ``blocks.<k>.`` in ``SpatialNet`` and
``FieldDecoder`` (with ``belief_proj.<k>``, ``position_proj.<k>``, ``sigma_proj.<k>``).
"""

from aime.nn.mlp import MLP, count_parameters, matched_mlp, mlp_parameter_count
from aime.nn.spatialnet.block import INITS, SIMILARITIES, SpatialBlock, init_positions, spatial_attention
from aime.nn.spatialnet.coordinates import make_coordinate_grid, sample_pixels
from aime.nn.spatialnet.field_decoder import MODULATIONS, FieldDecoder
from aime.nn.spatialnet.network import SEED_CONFIG, SpatialNet

__all__ = [
    "INITS",
    "MLP",
    "MODULATIONS",
    "SEED_CONFIG",
    "SIMILARITIES",
    "FieldDecoder",
    "SpatialBlock",
    "SpatialNet",
    "count_parameters",
    "init_positions",
    "make_coordinate_grid",
    "matched_mlp",
    "mlp_parameter_count",
    "sample_pixels",
    "spatial_attention",
]
