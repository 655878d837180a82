"""Perception: what the posterior over ``z`` sees of a frame, a choice in :data:`PERCEPTIONS`.

Each entry turns the encoder's outputs into the posterior's input ``e_t`` for one step, and says
what else it keeps, predicts and learns. :class:`aime.world_model.vrnn.VRNN` calls this interface
alone, so a new way of looking (another attention form, a different readout) is a new entry, not a
set of branches in the world model:

- ``"plain"`` (:class:`PlainPerception`): ``e_t = embed_t``, the encoder's global code. The
  project's ablation baseline (``model.attention: false``).
- ``"schema"`` (:class:`SchemaPerception`): the attention schema of seed 003::

      A_t, xy_t = AttentionPosterior(features_t, h_t, c_t)    c_t = PerceiverEncoder(features_t)
      e_t = [embed_t, sum_n A_t[n] readout_t[:, n], phi(bottleneck_t, xy_t)]
      Â_{t+1} = AttentionPrior(A_t, h_t, z_t)

  with an attention-map head that gives imagined states a map from ``s = [h, z]`` alone, and
  optionally (``attention_detail``) the map's sub-cell detail: for each of the ``R x R`` cells, a
  distribution ``q_t`` over its ``P x P`` pixels (``P = S / R``) from the frame's features, so that
  ``A_t q_t`` is the attention at pixel resolution.

The interface (all shapes for a batch of ``B`` sequences or ``N`` frames):

- ``embed_size``: the size of ``e_t`` (``output_size(**args)`` before the module exists: the latent,
  sized by it, is built first); ``uses_readout``: whether the encoder needs a readout;
- ``state_keys``: the state entries it carries from step to step (``initial_state`` makes them);
- ``prepare(features, readout, frames)``: the per-frame work, batched over ``B*T`` before the time loop;
  ``frame_outputs``: which of its entries :meth:`VRNN.observe` returns as they are;
- ``step(deter, embed, frame, state)``: the in-loop part, ``-> (e_t, extras)`` (with the schema's
  ``slot_seeds="frame"`` only reading what ``prepare`` computed);
- ``predict(attention, deter, stoch)`` and ``head_maps(feat)``: maps for imagined states
  (``attends`` says whether there are any);
- ``losses(out, is_first, obs)`` and ``metrics(out)``: its own training terms and readings.
"""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from aime.attention.overlays import entropy_ratio
from aime.attention.positions import fourier_grid
from aime.attention.posterior import PosteriorResult
from aime.attention.schema import AttentionSchema, SchemaConfig
from aime.config import LossScales
from aime.nn.mlp import mlp
from aime.nn.perceiver import PerceiverEncoder
from aime.world_model import objectives
from aime.world_model.attention_detail import AttentionDetailHead
from aime.world_model.encoder import Encoder
from aime.world_model.heads import AttentionMapHead
from aime.world_model.schema_losses import schema_losses

State = dict[str, Tensor]
# what one posterior step adds to the model's output, per step
_POSTERIOR_OUTPUTS = ("attention", "coords", "slot_maps", "slot_centers", "slot_features")
ATTENTION_TARGETS = ("motion", "current_motion", "none")
ATTENTION_GRADS = ("world", "own")


class PlainPerception(nn.Module):
    """``e_t = embed_t``: the posterior over ``z`` sees the encoder's global code alone.

    Args:
        embed_dim: size of the encoder's global code.
    """

    attends = False
    uses_readout = False
    state_keys: tuple[str, ...] = ()
    frame_outputs: tuple[str, ...] = ()

    def __init__(self, embed_dim: int, **_: object) -> None:
        super().__init__()
        self.embed_size = self.output_size(embed_dim)

    @staticmethod
    def output_size(embed_dim: int, **_: object) -> int:
        """The size of ``e_t`` for these arguments, before the module exists (the latent is built first)."""
        return embed_dim

    def initial_state(self, batch: int, device: torch.device | str) -> State:
        """The carried entries at an episode's start (none)."""
        return {}

    def prepare(self, features: Tensor, readout: Tensor | None, frames: Tensor | None = None) -> dict[str, Tensor]:
        """Per-frame work before the time loop (none): ``features [N, F, R, R]`` -> ``{}``."""
        return {}

    def step(self, deter: Tensor, embed: Tensor, frame: dict[str, Tensor], state: State) -> tuple[Tensor, dict]:
        """``deter [B, D]``, ``embed [B, E]`` -> ``(embed [B, E], {})``."""
        return embed, {}

    def losses(self, out: dict, is_first: Tensor, obs: Tensor) -> dict[str, Tensor]:
        """Its own loss terms (none)."""
        return {}

    def metrics(self, out: dict) -> dict[str, Tensor]:
        """Its own readings (none)."""
        return {}


class SchemaPerception(nn.Module):
    """The attention schema's perception (module docstring): attention, a readout of what it rests
    on, and the prior's prediction of where it moves next.

    Args:
        encoder: the world model's :class:`Encoder` (its pyramid is the posterior's, one pass per frame).
        embed_dim, readout_dim, hidden, deter, latent_size, context_dim, num_slots,
        attention_resolution, image_size, posterior_map, slot_position, slot_persistence,
        attention_target, readout_position, fpn_norm, prior_position_bias, attention_dropout,
        prior_token_pool, attention_loss_fraction, attention_detail, slot_seeds, attention_grad,
        slot_iters: as in
        :class:`aime.world_model.vrnn.VRNN`.
        loss_scales: which optional schema losses are computed (those above 0).
    """

    attends = True
    uses_readout = True

    def __init__(
        self,
        *,
        encoder: Encoder,
        embed_dim: int,
        readout_dim: int,
        hidden: int,
        deter: int,
        latent_size: int,
        context_dim: int,
        num_slots: int,
        attention_resolution: int,
        image_size: int,
        posterior_map: str,
        slot_position: str,
        slot_persistence: bool,
        attention_target: str,
        readout_position: bool,
        fpn_norm: str,
        prior_position_bias: str,
        attention_dropout: float,
        prior_token_pool: int,
        attention_loss_fraction: float,
        loss_scales: LossScales,
        attention_detail: bool = False,
        slot_seeds: str = "state",
        attention_grad: str = "world",
        slot_iters: int = 3,
    ) -> None:
        super().__init__()
        if attention_target not in ATTENTION_TARGETS:
            raise ValueError(
                f"attention_target must be one of {', '.join(ATTENTION_TARGETS)}, got {attention_target!r}"
            )
        if not 0.0 < attention_loss_fraction <= 1.0:
            raise ValueError(f"attention_loss_fraction must lie in (0, 1], got {attention_loss_fraction}")
        if attention_grad not in ATTENTION_GRADS:
            raise ValueError(f"attention_grad must be one of {', '.join(ATTENTION_GRADS)}, got {attention_grad!r}")
        if slot_seeds == "frame" and slot_persistence:
            raise ValueError(
                "slot_seeds='frame' runs the posterior over all frames before the time loop, so it cannot "
                "carry slots from step to step: set slot_persistence=False"
            )
        self.resolution, self.attention_target = attention_resolution, attention_target
        # with seeds from the frame alone the whole posterior is per-frame work, batched in prepare
        self.batched = slot_seeds == "frame"
        self.world_grad = attention_grad == "world"  # "own": e_t reads the map and the slots detached
        self.attention_loss_fraction, self.scales = attention_loss_fraction, loss_scales
        self.slot_persistence, self.readout_position = slot_persistence, readout_position
        self.state_keys = ("attention", "slots") if slot_persistence else ("attention",)
        if readout_position:  # where the attention rests, as pooled Fourier features of the cells
            self.register_buffer("position_code", fourier_grid(attention_resolution), persistent=False)
        self.embed_size = self.output_size(embed_dim, readout_dim, hidden, readout_position, attention_resolution)
        features = encoder.feature_channels
        self.context = PerceiverEncoder(features, context_dim)
        self.schema = AttentionSchema(
            SchemaConfig(
                image_size=image_size,
                attention_resolution=attention_resolution,
                hidden_dim=deter,
                latent_dim=latent_size,
                context_dim=context_dim,
                attention_dim=features,
                num_semantic_slots=num_slots,
                posterior_map=posterior_map,
                posterior_position=slot_position,
                slot_persistence=slot_persistence,
                enforce_diversity=False,  # computed once after the time loop, batched
                posterior_norm=fpn_norm,
                position_bias=prior_position_bias,
                prior_dropout=attention_dropout,
                dropout_p=attention_dropout,  # the posterior's slot-feature dropout: acting runs without it
                use_checkpoint=False,  # recomputation costs time on CPU and the maps are small
                token_pool=prior_token_pool if prior_position_bias == "none" else 1,
                slot_seeds=slot_seeds,
                slot_iters=slot_iters,
                slot_output_grad=self.world_grad,
            ),
            fpn=encoder.trunk,  # one convolutional pass per frame: the encoder's pyramid
        )
        self.phi = mlp(deter // 2 + 2, hidden, hidden, layers=1)
        # imagined states get an attention map from s alone (a SpatialNet field head)
        self.attention_head = AttentionMapHead(deter + latent_size, attention_resolution)
        self.frame_outputs = ("attention_detail",) if attention_detail else ()
        if self.batched:
            self.frame_outputs += _POSTERIOR_OUTPUTS
        if attention_detail:  # each cell's distribution over its P x P pixels
            self.detail_head = AttentionDetailHead(features, image_size, attention_resolution)

    @staticmethod
    def output_size(
        embed_dim: int, readout_dim: int, hidden: int, readout_position: bool, attention_resolution: int, **_: object
    ) -> int:
        """The size of ``e_t``: the global code, the readout (and the position code), ``phi``."""
        position_dim = fourier_grid(attention_resolution).shape[0] if readout_position else 0
        return embed_dim + readout_dim + position_dim + hidden

    def initial_state(self, batch: int, device: torch.device | str) -> State:
        """A uniform map ``attention [B, R, R]`` (and zero carried slots ``slots [B, K, d]``)."""
        r = self.resolution
        state = {"attention": torch.full((batch, r, r), 1.0 / (r * r), device=device)}
        if self.slot_persistence:
            net = self.schema.posterior_net
            state["slots"] = torch.zeros(batch, net.num_semantic_slots, net.feature_channels, device=device)
        return state

    def prepare(self, features: Tensor, readout: Tensor | None, frames: Tensor | None = None) -> dict[str, Tensor]:
        """Everything of the posterior that does not depend on ``h``, batched over ``N = B*T``:
        ``features [N, F, R, R]``, ``readout [N, C, R, R]`` (and the ``frames [N, 3, S, S]``, which
        the detail head needs) -> ``tokens``, ``readout [N, C, R*R]``,
        ``context [N, context_dim]`` (and ``attention_detail [N, P*P, R, R]``, log-probabilities
        of where inside each cell the attention lies). With ``slot_seeds="frame"`` nothing of the
        posterior depends on ``h``, so this is all of it: also the step's outputs (``attention``,
        ``coords``, ``slot_maps``, ...) and ``percept``, what ``e_t`` takes of them."""
        # one token layout for both norms (a copy only for NCHW features): each reads it contiguous
        tokens = rearrange(features, "n c h w -> n (h w) c").contiguous()  # [N, R*R, F]
        out = {
            "tokens": self.schema.posterior_net.prepare(tokens),
            "readout": rearrange(readout, "n c h w -> n c (h w)"),
            "context": self.context(tokens),
        }
        if "attention_detail" in self.frame_outputs:
            if frames is None:
                raise ValueError("SchemaPerception.prepare: attention_detail needs the frames")
            out["attention_detail"] = self.detail_head(frames, features)
        if self.batched:  # slot_seeds="frame": the posterior itself, for all N frames at once
            post = self.schema.posterior_net.step(None, out["context"], inputs=out["tokens"])
            parts, extras = self._percept(post, out["readout"])
            out.update(extras, percept=torch.cat(parts, -1))
        return out

    def _percept(self, post: PosteriorResult, readout: Tensor) -> tuple[list[Tensor], dict[str, Tensor]]:
        """What the posterior over z reads of a :class:`PosteriorResult` of ``N`` frames, beside the
        encoder's global code: the parts ``pooled readout [N, C] (, position code [N, 16]), phi
        [N, hidden]`` (concatenated once, with the code, by the caller), and the result's entries for
        the model's output (:data:`_POSTERIOR_OUTPUTS`)."""
        attention = post.attention if self.world_grad else post.attention.detach()
        pooled = torch.einsum("brn,bn->br", readout, attention.flatten(1))
        if self.readout_position:
            pooled = torch.cat([pooled, attention.flatten(1) @ self.position_code.flatten(1).T], -1)
        phi = self.phi(torch.cat([post.bottleneck, post.coords], -1))
        return [pooled, phi], {k: getattr(post, k) for k in _POSTERIOR_OUTPUTS}

    def step(self, deter: Tensor, embed: Tensor, frame: dict[str, Tensor], state: State) -> tuple[Tensor, dict]:
        """The attention posterior for one step: ``deter [B, D]``, ``embed [B, E]`` and the frame's
        prepared entries -> ``(e_t [B, embed_size], extras)`` with ``attention [B, R, R]``,
        ``coords [B, 2]``, ``slot_maps [B, K, R, R]``, ``slot_centers [B, K, 2]``, ``slot_features
        [B, K, d]`` (and ``slots``). With ``slot_seeds="frame"`` all of it was computed in
        :meth:`prepare`, and the step reads it."""
        if self.batched:
            return torch.cat([embed, frame["percept"]], -1), {k: frame[k] for k in _POSTERIOR_OUTPUTS}
        net = self.schema.posterior_net
        post = net.step(deter, frame["context"], inputs=frame["tokens"], prev_slots=state.get("slots"))
        parts, extras = self._percept(post, frame["readout"])
        if self.slot_persistence:
            extras["slots"] = post.slots
        return torch.cat([embed, *parts], -1), extras

    def predict(self, attention: Tensor, deter: Tensor, stoch: Tensor) -> Tensor:
        """The attention prior: where the map moves next, ``[B, R, R]`` from ``A_t``, ``h_t``, ``z_t``."""
        return self.schema.prior_net(attention, deter, stoch)[0]

    def head_maps(self, feat: Tensor) -> Tensor:
        """The attention-map head's maps from states alone: ``feat [..., F]`` -> ``[..., R, R]``."""
        return self.attention_head.probs(feat)

    def losses(self, out: dict, is_first: Tensor, obs: Tensor) -> dict[str, Tensor]:
        """The schema's terms of one observed sequence (:func:`schema_losses`)."""
        return schema_losses(
            out,
            is_first,
            obs,
            prior_net=self.schema.prior_net,
            attention_head=self.attention_head,
            scales=self.scales,
            target=self.attention_target,
            resolution=self.resolution,
            fraction=self.attention_loss_fraction,
        )

    def metrics(self, out: dict) -> dict[str, Tensor]:
        """The posterior map's entropy and its ratio to a uniform map's (detached scalars)."""
        return {
            "attention_entropy": objectives.entropy_of_map(out["attention"]).mean().detach(),
            "attention/entropy_ratio": entropy_ratio(out["attention"]).mean(),
        }


PERCEPTIONS: dict[str, type[nn.Module]] = {"plain": PlainPerception, "schema": SchemaPerception}


def make_perception(kind: str, **kwargs) -> nn.Module:
    """Build the perception of ``kind`` (a key of :data:`PERCEPTIONS`); ``"plain"`` ignores the
    schema's arguments."""
    if kind not in PERCEPTIONS:
        raise ValueError(f"unknown perception {kind!r}; choose one of {', '.join(PERCEPTIONS)}")
    return PERCEPTIONS[kind](**kwargs)
