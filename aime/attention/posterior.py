"""Bottom-up attention posterior of the attention schema (seed 003, ``AttentionPosterior``).

    observation [B,3,84,84] --FPN--> features [B,64,21,21] --+ 2-D position--> tokens [B,441,64]
    (h, c) --MLP--> slot seeds [B,K,64]
    SlotAttention(tokens, seeds) -> slots [B,K,64], responsibilities [B,K,441]
    fuse the K maps (weighted | max | gated) -> fused [B,21,21]
    map: fused / sum(fused) ("normalize", default) | softmax(fused * sharpness) ("softmax", the seed's)
        -> attention_probs [B,21,21]
    weighted centroid of each slot map -> slot_centers [B,K,2] -> regulariser MLP -> coords [B,2]

The feature pyramid is also the world model's encoder trunk: ``encode`` runs it alone (batched over
``B*T`` frames) and ``forward(..., features=...)`` reuses its output, so each frame is convolved
once. (About 400 lines: the seed's ``forward`` API with its side attributes and visualisation stays
beside ``step``, which the world model calls.)
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from aime.attention.losses import center_of_mass, slot_diversity_loss
from aime.attention.overlays import visualize_multi_object_attention as _visualize
from aime.attention.positions import fourier_grid
from aime.nn.feature_pyramid import FeaturePyramid
from aime.nn.layer_norm import LayerNorm
from aime.nn.slot_attention import SlotAttention

__all__ = [
    "AttentionPosterior",
    "FeaturePyramid",
    "PosteriorResult",
    "dominant_slot",
    "slot_diversity_loss",
    "weighted_centroids",
]

_FUSION_MODES = ("weighted", "max", "gated")
_MAP_MODES = ("normalize", "softmax")
_POSITION_CODES = ("learned", "fourier")
_SLOT_SEEDS = ("state", "frame")
_MAP_FLOOR = 1e-6  # added to the fused map before normalising: log A stays finite for the losses


@dataclass(frozen=True)
class PosteriorResult:
    """What one step of :class:`AttentionPosterior` computes (``B`` frames, ``K`` slots, ``R x R`` cells).

    Attributes:
        attention: ``[B, R, R]``, the attention map (sums to 1).
        coords: ``[B, 2]``, the spatial regulariser's attended position in [-1, 1].
        slot_maps: ``[B, K, R, R]``, the slot responsibilities (they sum to 1 over ``K`` per cell).
        slot_centers: ``[B, K, 2]``, each slot map's centre of mass (x, y) in [-1, 1].
        slot_features: ``[B, K, d]``, the slots after dropout.
        fusion_weights: ``[B, K]`` (``None`` for the ``max`` fusion).
        bottleneck: ``[B, hidden_dim // 2]``, the slots projected for the world model.
        slots: ``[B, K, d]``, the slots before dropout (what ``persistence`` carries to the next step).
    """

    attention: torch.Tensor
    coords: torch.Tensor
    slot_maps: torch.Tensor
    slot_centers: torch.Tensor
    slot_features: torch.Tensor
    fusion_weights: torch.Tensor | None
    bottleneck: torch.Tensor
    slots: torch.Tensor | None = None


def dominant_slot(slot_maps: torch.Tensor) -> torch.Tensor:
    """Group assignments: one-hot of the dominant slot per position, ``[..., K, H, W]`` -> ``[..., H, W, K]``."""
    k = slot_maps.shape[-3]
    return F.one_hot(slot_maps.argmax(dim=-3), k).to(slot_maps.dtype)


def weighted_centroids(maps: torch.Tensor) -> torch.Tensor:
    """Centres of mass of non-negative maps in [-1, 1] coordinates (x = column, y = row).

    Args:
        maps: ``[B, K, H, W]`` non-negative weights.
    Returns:
        ``[B, K, 2]`` as (x, y); -1 is the first column/row, +1 the last
        (``aime.attention.losses.center_of_mass``, with the seed's shape check).
    """
    if maps.dim() != 4:
        raise ValueError(f"weighted_centroids: expected maps [B, K, H, W], got {tuple(maps.shape)}")
    return center_of_mass(maps)


class AttentionPosterior(nn.Module):
    """Bottom-up, top-down-seeded multi-object attention (seed 003).

    Args:
        image_size: side of the square input frames (84).
        attention_resolution: side of the attention map; must equal ``ceil(image_size / 4)`` (21).
        hidden_dim: size of the world model's deterministic state ``h`` (256).
        context_dim: size of the context ``c`` (128); 0 for none.
        input_channels: image channels (3).
        feature_channels: FPN output / slot dimension d (64).
        num_semantic_slots: K (4).
        num_heads: accepted for the seed's API; unused (the seed marks it "not used currently").
        attention_fusion_mode: ``"weighted"`` (softmax weights from the slot features),
            ``"max"`` (max over slots) or ``"gated"`` (sigmoid gates from (h, c)).
        enforce_diversity: compute ``diversity_loss`` (otherwise it is a zero tensor).
        dropout_p: dropout on the slot features (before fusion weights and bottleneck).
        coord_noise_std: std of Gaussian noise added to the slot centres before the spatial
            regulariser, in training mode only.
        slot_iters: slot-attention refinement iterations (3).
        slot_mlp_hidden: hidden width of the slot MLP (128).
        norm: FPN normalisation, ``"group"`` (seed) or ``"none"`` (cheaper on CPU).
        map_mode: how the fused responsibilities become the attention map: ``"normalize"``
            (default) divides them by their sum, ``A = (f + eps) / sum(f + eps)``, so a slot that
            owns a few cells and carries the fusion weight puts nearly all the mass there;
            ``"softmax"`` is the seed's ``softmax(f * exp(log_sharpness))``. Responsibilities lie in
            [0, 1], so at the initial sharpness its peak is at most e times its trough: a faithful
            transcription stays almost uniform (entropy ratio > 0.99 measured in training).
        position_code: what the tokens learn of their cell's place: ``"learned"`` (the seed's row
            and column embeddings, initialised at 0.02, so at first the slots see appearance alone
            and two objects of one colour get the same responsibilities wherever they are) or
            ``"fourier"`` (those plus a linear map of the cells' Fourier features,
            ``W fourier_grid(R)``, of the features' own scale from the start, as the soft position
            embedding of slot attention: a slot's keys then depend on where a token lies).
        fpn: the feature pyramid to use (``[B, input_channels, S, S] -> [B, d, R, R]``), e.g. the
            world model's encoder trunk; ``None`` builds the seed's :class:`FeaturePyramid`.
        persistence: the previous step's slots seed this step's (SAVi; seed 003's future extension
            2); see :meth:`step`. Off: the seed's posterior, seeded from ``(h, c)`` alone.
        slot_seeds: what the slot seeds (and the ``gated`` fusion's gates) are made from:
            ``"state"`` (the seed's ``MLP([h, c])``) or ``"frame"`` (``MLP(c)``: the frame's context
            alone, so :meth:`step` needs no ``h`` and runs on any batch of frames, e.g. all ``B*T``
            of a sequence at once).
        output_grad: whether losses on what others read of the slots reach the slots: the bottleneck
            and the centres' summary ``coords`` are computed from the slots as they are (``True``, the
            seed's) or detached (``False``: the projections after the slots still learn from those
            losses, the slot attention and its seeds only from losses on the maps themselves).

    Forward:
        observation: ``[B, input_channels, image_size, image_size]``, float in [0, 1] or uint8 in
            [0, 255] (converted once to float in [0, 1]); may be ``None`` when ``features`` is
            given.
        hidden_state: ``[B, hidden_dim]`` (unread with ``slot_seeds="frame"``).
        context: ``[B, context_dim]``.
        features: optional precomputed ``encode(observation)`` ``[B, d, R, R]``; when given, the
            observation is not looked at (the world model runs the FPN once over ``B*T`` frames).
        returns ``attention_probs [B, R, R]`` (sums to 1 over R*R) and ``coords [B, 2]`` in [-1, 1].

    Side attributes set by ``forward``:
        features ``[B, d, R, R]``, slot_attention_maps ``[B, K, R, R]`` (responsibilities: they sum
        to 1 over K at each position), slot_centers ``[B, K, 2]`` (x, y in [-1, 1]),
        slot_features ``[B, K, d]`` (after dropout), fusion_weights ``[B, K]`` (``None`` for max),
        group_assignments ``[B, R, R, K]`` (a property: one-hot of the dominant slot per position),
        bottleneck_features ``[B, hidden_dim // 2]``, diversity_loss (scalar tensor).

    Slot initialisation: the learnable Gaussian N(mu, sigma) of SlotAttention *plus* the top-down
    seeds MLP(h, c) (``MLP(c)`` with ``slot_seeds="frame"``); sampled in training, its mean in eval
    mode (deterministic evaluation).
    """

    def __init__(
        self,
        image_size: int = 84,
        attention_resolution: int = 21,
        hidden_dim: int = 256,
        context_dim: int = 128,
        input_channels: int = 3,
        feature_channels: int = 64,
        num_semantic_slots: int = 4,
        num_heads: int = 4,
        attention_fusion_mode: str = "weighted",
        enforce_diversity: bool = True,
        dropout_p: float = 0.2,
        coord_noise_std: float = 0.0,
        slot_iters: int = 3,
        slot_mlp_hidden: int = 128,
        norm: str = "group",
        map_mode: str = "normalize",
        position_code: str = "learned",
        fpn: nn.Module | None = None,
        persistence: bool = False,
        slot_seeds: str = "state",
        output_grad: bool = True,
    ) -> None:
        super().__init__()
        int_args = (
            ("image_size", image_size, 1),
            ("attention_resolution", attention_resolution, 1),
            ("hidden_dim", hidden_dim, 2),
            ("context_dim", context_dim, 0),
            ("input_channels", input_channels, 1),
            ("feature_channels", feature_channels, 2),
            ("num_semantic_slots", num_semantic_slots, 1),
            ("num_heads", num_heads, 1),
            ("slot_iters", slot_iters, 1),
            ("slot_mlp_hidden", slot_mlp_hidden, 1),
        )
        for name, value, low in int_args:
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"AttentionPosterior: expected {name} to be an int >= {low}, got {value!r}")
        expected_res = ((image_size + 1) // 2 + 1) // 2  # two stride-2 convs: ceil(ceil(S/2)/2)
        if attention_resolution != expected_res:
            raise ValueError(
                f"AttentionPosterior: expected attention_resolution {expected_res} for image_size "
                f"{image_size} (the FPN downsamples by 4), got {attention_resolution}"
            )
        if feature_channels % 2:
            raise ValueError(
                f"AttentionPosterior: expected an even feature_channels (row and column embeddings "
                f"take half each), got {feature_channels}"
            )
        if attention_fusion_mode not in _FUSION_MODES:
            raise ValueError(
                f"AttentionPosterior: expected attention_fusion_mode in {_FUSION_MODES}, got {attention_fusion_mode!r}"
            )
        if map_mode not in _MAP_MODES:
            raise ValueError(f"AttentionPosterior: expected map_mode in {_MAP_MODES}, got {map_mode!r}")
        if slot_seeds not in _SLOT_SEEDS:
            raise ValueError(f"AttentionPosterior: expected slot_seeds in {_SLOT_SEEDS}, got {slot_seeds!r}")
        if position_code not in _POSITION_CODES:
            raise ValueError(f"AttentionPosterior: expected position_code in {_POSITION_CODES}, got {position_code!r}")
        if not 0.0 <= dropout_p < 1.0:
            raise ValueError(f"AttentionPosterior: expected 0 <= dropout_p < 1, got {dropout_p!r}")
        if not coord_noise_std >= 0.0:
            raise ValueError(f"AttentionPosterior: expected coord_noise_std >= 0, got {coord_noise_std!r}")

        self.image_size, self.attention_resolution = image_size, attention_resolution
        self.hidden_dim, self.context_dim = hidden_dim, context_dim
        self.input_channels, self.feature_channels = input_channels, feature_channels
        self.num_semantic_slots, self.num_heads = num_semantic_slots, num_heads
        self.attention_fusion_mode, self.enforce_diversity = attention_fusion_mode, enforce_diversity
        self.dropout_p, self.coord_noise_std = float(dropout_p), float(coord_noise_std)
        self.map_mode, self.position_code = map_mode, position_code
        d, k = feature_channels, num_semantic_slots
        self.slot_seeds, self.output_grad = slot_seeds, bool(output_grad)
        td_dim = hidden_dim + context_dim if slot_seeds == "state" else context_dim
        if td_dim == 0:
            raise ValueError("AttentionPosterior: slot_seeds='frame' needs a context (context_dim >= 1)")

        # the world model passes in its encoder's pyramid: each frame is convolved once
        self.fpn = fpn if fpn is not None else FeaturePyramid(input_channels, feature_channels, norm)
        self.row_embed = nn.Parameter(torch.randn(attention_resolution, d // 2) * 0.02)
        self.col_embed = nn.Parameter(torch.randn(attention_resolution, d // 2) * 0.02)
        if position_code == "fourier":
            grid = rearrange(fourier_grid(attention_resolution), "f h w -> (h w) f")
            self.register_buffer("cell_code", grid, persistent=False)  # [R*R, 16]
            self.position_proj = nn.Linear(grid.shape[-1], d)
        self.slot_modulator = nn.Sequential(
            nn.Linear(td_dim, k * d), LayerNorm(k * d), nn.SiLU(), nn.Linear(k * d, k * d)
        )
        self.slot_attention = SlotAttention(
            num_slots=k, dim=d, iters=slot_iters, hidden_dim=slot_mlp_hidden, seed_mode="add"
        )
        self.persistence = persistence
        if persistence:  # SAVi: the slots of t-1, through a small predictor, seed the slots of t
            self.slot_carry = nn.Sequential(LayerNorm(d), nn.Linear(d, d))
        self.dropout = nn.Dropout(dropout_p)
        if attention_fusion_mode == "weighted":
            self.fusion_head = nn.Linear(k * d, k)
        elif attention_fusion_mode == "gated":
            self.fusion_gate = nn.Linear(td_dim, k)
        # map_mode "softmax": responsibilities lie in [0, 1], so softmax(fused) alone could never be
        # sharper than e:1; a learnable inverse temperature (1 at init, the seed's map) may sharpen it.
        self.log_sharpness = nn.Parameter(torch.zeros(()))
        self.spatial_regularizer = nn.Sequential(
            nn.Linear(2 * k, hidden_dim // 2),
            LayerNorm(hidden_dim // 2),
            nn.SiLU(),
            nn.Linear(hidden_dim // 2, 2),
            nn.Tanh(),
        )
        self.bottleneck_projector = nn.Sequential(
            nn.Linear(k * d, hidden_dim),
            LayerNorm(hidden_dim),
            nn.SiLU(),
            nn.Linear(hidden_dim, hidden_dim // 2),
        )

        self.features: torch.Tensor | None = None
        self.slot_attention_maps: torch.Tensor | None = None
        self.slot_centers: torch.Tensor | None = None
        self.slot_features: torch.Tensor | None = None
        self.fusion_weights: torch.Tensor | None = None
        self.bottleneck_features: torch.Tensor | None = None
        self.diversity_loss: torch.Tensor = torch.zeros(())

    @property
    def group_assignments(self) -> torch.Tensor | None:
        """``[B, R, R, K]`` one-hot of the dominant slot per position in the last ``forward``
        (computed on access: only the overlays read it, so the time loop does not pay for it)."""
        return None if self.slot_attention_maps is None else dominant_slot(self.slot_attention_maps)

    def encode(self, observation: torch.Tensor) -> torch.Tensor:
        """FPN features of frames: ``[B, C_in, S, S]`` (float [0, 1] or uint8) -> ``[B, d, R, R]``.

        Runs on any batch, e.g. all ``B*T`` frames of a sequence at once.
        """
        expected = (self.input_channels, self.image_size, self.image_size)
        if observation.dim() != 4 or tuple(observation.shape[1:]) != expected:
            raise ValueError(
                "AttentionPosterior: expected observation of shape "
                f"[B, {', '.join(map(str, expected))}], "
                f"got {tuple(observation.shape)}"
            )
        if observation.dtype == torch.uint8:
            observation = observation.float() / 255.0
        return self.fpn(observation)

    def positional_encoding(self) -> torch.Tensor:
        """2-D position code ``[R*R, d]``: the learned row half concatenated with the column half
        (plus ``W fourier_grid(R)`` with ``position_code="fourier"``)."""
        r = self.attention_resolution
        rows = self.row_embed[:, None, :].expand(r, r, -1)
        cols = self.col_embed[None, :, :].expand(r, r, -1)
        code = rearrange(torch.cat([rows, cols], dim=-1), "h w d -> (h w) d")
        if self.position_code == "fourier":
            code = code + self.position_proj(self.cell_code)
        return code

    def prepare(self, features: torch.Tensor) -> torch.Tensor:
        """Slot-attention inputs of FPN features ``[B, d, R, R]`` (or of their tokens ``[B, R*R, d]``)
        -> ``[B, R*R, d]``: the normalised position-coded tokens (``SlotAttention.project_inputs``).

        Independent of ``h`` and ``c``: the world model computes them for all ``B*T`` frames at once.
        The position code is added in the features' dtype (bf16 under autocast), so the tokens are
        normalised in bf16, not in a promoted fp32 copy (the slot attention reads them in bf16).
        """
        tokens = features if features.dim() == 3 else rearrange(features, "b c h w -> b (h w) c")  # [B, N, d]
        return self.slot_attention.project_inputs(tokens + self.positional_encoding().to(tokens.dtype))

    def forward(
        self,
        observation: torch.Tensor | None,
        hidden_state: torch.Tensor | None,
        context: torch.Tensor,
        features: torch.Tensor | None = None,
        inputs: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``obs [B,C,S,S]``, ``hidden_state [B,H]``, ``context [B,Ctx]`` -> ``[B,R,R]``, ``[B,2]``.

        The seed's interface: :meth:`step`, with its results also left on the module as the side
        attributes listed in the class docstring. ``inputs``: precomputed ``prepare(features)``
        ``[B, R*R, d]`` (the slot-attention inputs); with it neither the observation nor the
        features are needed.
        """
        if inputs is None and features is None:
            if observation is None:
                raise ValueError("AttentionPosterior: expected an observation or precomputed features, got neither")
            features = self.encode(observation)
        result = self.step(hidden_state, context, features=features, inputs=inputs)
        self.features = features
        self.slot_attention_maps, self.slot_centers = result.slot_maps, result.slot_centers
        self.slot_features, self.fusion_weights = result.slot_features, result.fusion_weights
        self.bottleneck_features = result.bottleneck
        if self.enforce_diversity:
            self.diversity_loss = slot_diversity_loss(result.slot_maps)
        else:
            self.diversity_loss = result.attention.new_zeros(())
        return result.attention, result.coords

    def step(
        self,
        hidden_state: torch.Tensor | None,
        context: torch.Tensor,
        features: torch.Tensor | None = None,
        inputs: torch.Tensor | None = None,
        prev_slots: torch.Tensor | None = None,
    ) -> PosteriorResult:
        """One step from FPN ``features [B, d, R, R]`` or their ``prepare``d ``inputs [B, R*R, d]``,
        ``hidden_state [B, H]`` (unread, and may be ``None``, with ``slot_seeds="frame"``) and
        ``context [B, Ctx]``: a :class:`PosteriorResult`. With ``persistence``, ``prev_slots [B, K,
        d]`` (the previous step's ``slots``; zeros at an episode's start) add
        ``slot_carry(prev_slots)`` to the slots' seeds, so slot ``k`` starts where slot ``k`` ended
        (SAVi).

        Sets nothing on the module (the world model's time loop calls this).
        """
        r, d, k = self.attention_resolution, self.feature_channels, self.num_semantic_slots
        if inputs is None:
            if features is None or features.dim() != 4 or tuple(features.shape[1:]) != (d, r, r):
                got = None if features is None else tuple(features.shape)
                raise ValueError(f"AttentionPosterior: expected features of shape [B, {d}, {r}, {r}], got {got}")
            inputs = self.prepare(features)
        b = inputs.shape[0]
        from_state = self.slot_seeds == "state"
        if from_state and (hidden_state is None or tuple(hidden_state.shape) != (b, self.hidden_dim)):
            raise ValueError(
                f"AttentionPosterior: expected hidden_state of shape {(b, self.hidden_dim)}, "
                f"got {None if hidden_state is None else tuple(hidden_state.shape)}"
            )
        if tuple(context.shape) != (b, self.context_dim):
            raise ValueError(
                f"AttentionPosterior: expected context of shape {(b, self.context_dim)}, got {tuple(context.shape)}"
            )
        top_down = torch.cat([hidden_state, context], dim=-1) if from_state else context  # [B, H + Ctx] | [B, Ctx]
        seeds = rearrange(self.slot_modulator(top_down), "b (k d) -> b k d", k=k)
        if self.persistence and prev_slots is not None:
            if tuple(prev_slots.shape) != (b, k, d):
                raise ValueError(
                    f"AttentionPosterior: expected prev_slots of shape {(b, k, d)}, got {tuple(prev_slots.shape)}"
                )
            seeds = seeds + self.slot_carry(prev_slots)
        slots, attn = self.slot_attention(None, seed_slots=seeds, noise=self.training, inputs=inputs)

        slot_maps = rearrange(attn, "b k (h w) -> b k h w", h=r)  # [B, K, R, R]
        slot_features = self.dropout(slots)  # [B, K, d]
        if self.attention_fusion_mode == "weighted":
            weights = self.fusion_head(rearrange(slot_features, "b k d -> b (k d)")).softmax(dim=-1)
        elif self.attention_fusion_mode == "gated":
            weights = torch.sigmoid(self.fusion_gate(top_down))
        else:
            weights = None
        if weights is None:
            fused = slot_maps.amax(dim=1)  # [B, R, R]
        else:
            fused = torch.einsum("bkhw,bk->bhw", slot_maps, weights)
        flat = rearrange(fused, "b h w -> b (h w)")
        if self.map_mode == "normalize":
            flat = flat + _MAP_FLOOR
            probs = flat / flat.sum(dim=-1, keepdim=True)
        else:
            probs = (flat * self.log_sharpness.exp()).softmax(dim=-1)
        attention = rearrange(probs, "b (h w) -> b h w", h=r)

        slot_centers = weighted_centroids(slot_maps)  # [B, K, 2]
        centers_in = slot_centers if self.output_grad else slot_centers.detach()
        read = slot_features if self.output_grad else slot_features.detach()
        if self.training and self.coord_noise_std > 0:
            centers_in = centers_in + self.coord_noise_std * torch.randn_like(centers_in)
        coords = self.spatial_regularizer(rearrange(centers_in, "b k two -> b (k two)"))  # [B, 2]
        bottleneck = self.bottleneck_projector(rearrange(read, "b k d -> b (k d)"))
        return PosteriorResult(attention, coords, slot_maps, slot_centers, slot_features, weights, bottleneck, slots)

    def visualize_multi_object_attention(
        self,
        observation: torch.Tensor,
        slot_attention_maps: torch.Tensor | None = None,
        slot_centers: torch.Tensor | None = None,
        group_assignments: torch.Tensor | None = None,
        return_mode: str = "all",
    ) -> dict[str, torch.Tensor]:
        """Seed 003's overlays (see ``aime.attention.overlays.visualize_multi_object_attention``).

        Missing maps, centres and assignments default to those of the last ``forward``.
        """
        if slot_attention_maps is None:
            slot_attention_maps, slot_centers = self.slot_attention_maps, self.slot_centers
            group_assignments = self.group_assignments if group_assignments is None else group_assignments
        if slot_attention_maps is None or slot_centers is None:
            raise ValueError(
                "AttentionPosterior.visualize_multi_object_attention: expected slot maps and centres, "
                "or a previous forward, got neither"
            )
        return _visualize(observation, slot_attention_maps, slot_centers, group_assignments, return_mode)
