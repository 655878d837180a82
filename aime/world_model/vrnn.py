"""The AIME world model: a VRNN whose posterior looks through an attention schema.

Per step ``t`` (deterministic ``h``, stochastic ``z``, action ``a``)::

    h_t = cell(h_{t-1}, in([z_{t-1}, a_{t-1}]))               transition (GRU | LSTM)
    p(z_t | h_t)                                              prior (gaussian | categorical | DP mixture)
    A_t, xy_t = AttentionPosterior(features_t, h_t, c_t)      where the agent looks now
    e_t = [embed_t, sum_n A_t[n] readout_t[:, n], phi(bottleneck_t, xy_t)]
    q(z_t | h_t, e_t)                                         posterior
    Â_{t+1} = AttentionPrior(A_t, h_t, z_t)                   where it will look next

The transition never sees an observation-only quantity, so :meth:`VRNN.imagine` runs it from any
state with actions alone. Only the cell, the slot attention of the posterior and the posterior over
z run inside the time loop (with ``slot_seeds="frame"`` the slots are seeded from the frame alone,
and the whole attention posterior runs batched before it); the encoder, the context encoder, the
prior over z, the attention prior, the decoder and the heads run batched over ``B*T``. With
``attention=False`` the schema, the readout and ``phi`` are absent and the model is a plain
recurrent state-space model with the same encoder, decoder and heads (the project's ablation
baseline). Which of the two runs is a choice of :data:`aime.world_model.perception.PERCEPTIONS`:
the model calls one interface, with no branches.

Conventions: ``obs`` is ``uint8 [B, T, 3, S, S]`` (``S = image_size``, 84 for Atari);
``action[:, t]`` is the action taken at ``obs[:, t]`` (integer indices); ``reward[:, t]`` was
received on arriving at ``obs[:, t]``; ``is_first[:, t]`` resets the state before step ``t``.

The module is above 400 lines because filtering, acting, imagination, open-loop prediction and the
loss share one state convention and are read together; the schema's losses are
:mod:`aime.world_model.schema_losses`, the loss terms :mod:`aime.world_model.objectives`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aime.config import LossScales, ModelConfig, TrainConfig
from aime.nn.layer_norm import LayerNorm
from aime.nn.spatial_losses import info_nce_patch_coherence, spatial_diversity_loss
from aime.world_model import objectives
from aime.world_model.decoders import DECODERS
from aime.world_model.encoder import Encoder
from aime.world_model.heads import ContinueHead, ObjectHead, RewardHead
from aime.world_model.latent import make_latent, stack_params
from aime.world_model.perception import PERCEPTIONS

State = dict[str, Tensor]
Policy = Callable[[Tensor], Tensor]  # feat [N, F] -> one-hot action [N, A]
# the constructor's defaults are the configuration's: one source (readout_position excepted, below)
_MODEL, _TRAIN = ModelConfig(), TrainConfig()
# checkpoints written before perception was a module hold the schema's modules at the top level
_PERCEPTION_MODULES = ("context.", "schema.", "phi.", "attention_head.")


class VRNN(nn.Module):
    """The world model. See the module docstring for the equations.

    Every default is :class:`aime.config.ModelConfig`'s (and :class:`aime.config.TrainConfig`'s
    ``free_bits``, ``kl_balance``), except ``readout_position``: off here, so a model built by hand
    is the seed's filtering model unless it is asked for.
    :meth:`from_config` builds it from a configuration.

    Args:
        num_actions: size of the discrete action space.
        deter, stoch, classes, latent, mixture_components, hidden, cnn_depth, context_dim, rnn,
        decoder, attention, num_slots, attention_resolution: as in :class:`aime.config.ModelConfig`.
        embed_dim: size of the encoder's global code (0: ``hidden``).
        readout_dim: channels of the attention-weighted readout (attention on).
        precision_strength: reconstruction pixels count ``1 + strength * R^2 * A_t`` (0: plain).
        posterior_map: the posterior's map from its fused slot responsibilities, ``"normalize"``
            (divided by their sum; can be sharp) or ``"softmax"`` (the seed's; stays near uniform).
        slot_persistence: the slots of ``t-1`` seed those of ``t`` (SAVi); the state then carries
            ``slots [B, K, d]``, zeroed at an episode's start.
        slot_seeds: what seeds the posterior's slots, ``"state"`` (``[h_t, c_t]``, the seed's; the
            posterior runs in the time loop) or ``"frame"`` (``c_t`` alone; the posterior runs batched
            over ``B*T`` before the loop). Not with ``slot_persistence``.
        attention_grad: what trains the posterior's map and slots, ``"world"`` (the schema's own
            terms and the world-model losses that reach them through ``e_t``; the seed's) or
            ``"own"`` (the schema's own terms alone: ``e_t`` reads the map and slots detached).
        slot_iters: the posterior's slot-attention iterations per frame (3; SAVi runs 1).
        slot_position: the posterior tokens' position code, ``"learned"`` (the seed's row and column
            embeddings) or ``"fourier"`` (plus a linear map of the cells' Fourier features).
        attention_target: where the posterior is taught to look, ``"motion"`` (cross-entropy of
            ``A_t`` against the detached frame difference ``|o_t - o_{t-1}|`` pooled to the map's
            grid, weighted by ``loss_scales.attention_target``), ``"current_motion"`` (the same
            against ``min(|o_t - o_{t-1}|, |o_t - o_{t-2}|)``: where moving things are now, not where
            they were) or ``"none"``. A training target
            only: the posterior still sees the frame, ``h`` and ``c`` alone.
        readout_position: the posterior over z also gets where the attention rests: the map's
            average of Fourier features of the cells' positions (the pooled readout keeps what is
            attended, not where).
        decoder_attention: the image decoder also reads the attention map ``A_t`` (detached; the
            ``conv`` and ``nca`` decoders): the posterior's when filtering, the attention prior's
            prediction in imagination and open-loop prediction (see :meth:`decode`).
        attention_detail: the posterior also says where inside each of its cells the attention
            lies (``attention_detail [B, T, P*P, R, R]``, log-probabilities over a cell's ``P x P``
            pixels from the frame's features, trained against where the current motion lies inside
            the cell, weight ``loss_scales.attention_detail``), and the decoder reads it with the
            map: the map at pixel resolution. Imagined states have none (evenly spread). Needs
            ``decoder_attention``.
        attention_detail_dropout: the share of training frames the decoder sees without the
            detail (as imagined states are drawn), so that it also draws from ``[h, z]`` and the
            map alone.
        object_policy: an object head predicts the posterior's slots (features and centres) from
            ``s`` (:meth:`object_tokens`; loss term ``objects``), for an object-centric actor and
            critic. Needs ``attention``.
        fpn_norm: the feature pyramid's normalisation, ``"group"`` (seed) or ``"none"``.
        prior_position_bias: the attention prior's position code: ``"none"`` (absolute embedding
            only; keeps attention on the fused kernel, several times faster on CPU) or
            ``"relative"`` (the seed's learnable 2-D relative bias).
        attention_loss_fraction: the attention prior's and the map head's losses are estimated on
            this random fraction of the batch's steps (1: all), a fraction of their cost.
        prior_token_pool: the prior's self-attention among ``p x p``-pooled positions (3: 7x7
            tokens, 81x fewer scores than the seed's global 441x441; 1: the seed's).
        attention_dropout: dropout inside the attention prior and on the posterior's slot features
            (the seed's 0.1 and 0.2; 0 by default here: acting runs in eval mode, and states
            filtered with dropout in training would differ from those the policy acts on).
        loss_scales: the weight of every term (default :class:`aime.config.LossScales`).
        free_bits, kl_balance: KL balancing (see :func:`aime.world_model.objectives.balanced_kl`).
        open_loop_horizon: ``k > 0`` adds the term ``open_loop`` (weight ``loss_scales.open_loop``):
            from each posterior state of a window the prior is rolled ``j`` steps with the actions
            taken (``j`` drawn from ``1..k`` per start) and the decoder draws frame ``t + j`` from
            the imagined state, against the real frame (see :meth:`open_loop_loss`). The one-step
            KL alone does not teach imagination to keep what it must carry over several steps.
        open_loop_decoder_grad: whether that term's gradients reach the decoder's parameters
            (``False``: the decoder learns from the posterior's frames alone, and the term trains
            the transition, the prior and the start states to give states it draws correctly).
    """

    def __init__(
        self,
        num_actions: int,
        deter: int = _MODEL.deter,
        stoch: int = _MODEL.stoch,
        classes: int = _MODEL.classes,
        latent: str = _MODEL.latent,
        mixture_components: int = _MODEL.mixture_components,
        hidden: int = _MODEL.hidden,
        cnn_depth: int = _MODEL.cnn_depth,
        context_dim: int = _MODEL.context_dim,
        rnn: str = _MODEL.rnn,
        decoder: str = _MODEL.decoder,
        attention: bool = _MODEL.attention,
        num_slots: int = _MODEL.num_slots,
        attention_resolution: int = _MODEL.attention_resolution,
        image_size: int = _MODEL.image_size,
        embed_dim: int = _MODEL.embed_dim,
        readout_dim: int = _MODEL.readout_dim,
        precision_strength: float = _MODEL.precision_strength,
        posterior_map: str = _MODEL.posterior_map,
        slot_position: str = _MODEL.slot_position,
        slot_persistence: bool = _MODEL.slot_persistence,
        slot_seeds: str = _MODEL.slot_seeds,
        attention_grad: str = _MODEL.attention_grad,
        slot_iters: int = _MODEL.slot_iters,
        attention_target: str = _MODEL.attention_target,
        readout_position: bool = False,
        decoder_attention: bool = False,
        attention_detail: bool = False,
        attention_detail_dropout: float = _MODEL.attention_detail_dropout,
        object_policy: bool = _MODEL.object_policy,
        fpn_norm: str = _MODEL.fpn_norm,
        prior_position_bias: str = _MODEL.prior_position_bias,
        attention_dropout: float = _MODEL.attention_dropout,
        prior_token_pool: int = _MODEL.prior_token_pool,
        attention_loss_fraction: float = _MODEL.attention_loss_fraction,
        loss_scales: LossScales | None = None,
        free_bits: float = _TRAIN.free_bits,
        kl_balance: float = _TRAIN.kl_balance,
        open_loop_horizon: int = _TRAIN.open_loop_horizon,
        open_loop_decoder_grad: bool = _TRAIN.open_loop_decoder_grad,
    ) -> None:
        super().__init__()
        if num_actions < 1:
            raise ValueError(f"num_actions must be >= 1, got {num_actions}")
        if rnn not in ("gru", "lstm"):
            raise ValueError(f"rnn must be 'gru' or 'lstm', got {rnn!r}")
        if decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {decoder!r}")
        self.num_actions, self.deter_size, self.rnn_kind = num_actions, deter, rnn
        if fpn_norm not in ("group", "none"):
            raise ValueError(f"fpn_norm must be 'group' or 'none', got {fpn_norm!r}")
        self.resolution = attention_resolution
        if precision_strength < 0:
            raise ValueError(f"precision_strength must be >= 0, got {precision_strength}")
        self.precision_strength = precision_strength
        self.scales = loss_scales or LossScales()
        self.free_bits, self.kl_balance = free_bits, kl_balance
        if open_loop_horizon < 0:
            raise ValueError(f"open_loop_horizon must be >= 0 (0: off), got {open_loop_horizon}")
        self.open_loop_horizon = open_loop_horizon
        self.open_loop_decoder_grad = open_loop_decoder_grad
        embed_dim = embed_dim or hidden
        perception = PERCEPTIONS["schema" if attention else "plain"]
        perception_args = dict(
            embed_dim=embed_dim,
            readout_dim=readout_dim,
            hidden=hidden,
            deter=deter,
            context_dim=context_dim,
            num_slots=num_slots,
            attention_resolution=attention_resolution,
            image_size=image_size,
            posterior_map=posterior_map,
            slot_position=slot_position,
            slot_persistence=slot_persistence,
            attention_target=attention_target,
            readout_position=readout_position,
            fpn_norm=fpn_norm,
            prior_position_bias=prior_position_bias,
            attention_dropout=attention_dropout,
            prior_token_pool=prior_token_pool,
            attention_loss_fraction=attention_loss_fraction,
            loss_scales=self.scales,
            attention_detail=attention_detail,
            slot_seeds=slot_seeds,
            attention_grad=attention_grad,
            slot_iters=slot_iters,
        )
        if not 0.0 <= attention_detail_dropout <= 1.0:
            raise ValueError(f"attention_detail_dropout must lie in [0, 1], got {attention_detail_dropout}")
        self.attention_detail_dropout = attention_detail_dropout
        if attention and attention_detail and not decoder_attention:
            raise ValueError("attention_detail needs decoder_attention=True (the decoder is what reads it)")

        self.image_size = image_size
        features = 2 * cnn_depth  # the seed's 64-channel pyramid at cnn_depth 32
        readout = readout_dim if perception.uses_readout else 0
        self.encoder = Encoder(embed_dim, cnn_depth, features, readout, image_size=image_size, norm=fpn_norm)
        self.latent = make_latent(
            latent,
            deter=deter,
            embed=perception.output_size(**perception_args),
            hidden=hidden,
            stoch=stoch,
            classes=classes,
            mixture_components=mixture_components,
        )
        # built after the latent (the schema's prior reads z), registered where the schema's modules
        # were, so parameters, their order and their initialisation are those of earlier versions
        self.perception = perception(encoder=self.encoder, latent_size=self.latent.size, **perception_args)
        self.register_load_state_dict_pre_hook(_rename_perception_keys)
        self.feat_size = deter + self.latent.size
        self.img_in = nn.Sequential(nn.Linear(self.latent.size + num_actions, hidden), LayerNorm(hidden), nn.SiLU())
        self.cell = nn.GRUCell(hidden, deter) if rnn == "gru" else nn.LSTMCell(hidden, deter)
        self.decoder_attention = decoder_attention and self.perception.attends
        if self.decoder_attention and decoder == "field":
            raise ValueError("decoder_attention needs the 'conv' or 'nca' decoder, got 'field'")
        extra = {"reads_attention": True} if self.decoder_attention else {}
        self.attention_detail = self.decoder_attention and attention_detail
        if self.attention_detail:
            extra["detail_cells"] = (image_size // attention_resolution) ** 2
        self.decoder = DECODERS[decoder](self.feat_size, cnn_depth, image_size, **extra)
        self.reward = RewardHead(self.feat_size, hidden)
        self.cont = ContinueHead(self.feat_size, hidden)
        if object_policy and not attention:
            raise ValueError("object_policy needs attention=True (the object tokens are the posterior's slots)")
        self.object_head = None
        if object_policy:
            self.object_head = ObjectHead(self.feat_size, hidden, num_slots, features, attention_resolution)

    @classmethod
    def from_config(cls, model: ModelConfig, num_actions: int, train: TrainConfig | None = None, **overrides) -> VRNN:
        """Build from the typed configuration (``cfg.model`` and optionally ``cfg.train``)."""
        kwargs = dataclasses.asdict(model)
        if train is not None:
            kwargs.update(loss_scales=train.loss_scales, free_bits=train.free_bits, kl_balance=train.kl_balance)
            kwargs.update(
                open_loop_horizon=train.open_loop_horizon, open_loop_decoder_grad=train.open_loop_decoder_grad
            )
        kwargs.update(overrides)
        return cls(num_actions, **kwargs)

    @property
    def attention_on(self) -> bool:
        """Whether perception attends (the schema; ``False`` for the ablation's plain encoder)."""
        return self.perception.attends

    @property
    def schema(self) -> nn.Module:
        """The attention schema (``posterior_net``, ``prior_net``); only with attention on."""
        if not self.perception.attends:
            raise AttributeError("VRNN.schema: this model's perception is the plain encoder (attention off)")
        return self.perception.schema

    # -- state ---------------------------------------------------------------------------------
    def initial_state(self, batch: int, device: torch.device | str | None = None) -> State:
        """Zeros: ``deter [B, D]``, ``stoch [B, S]``, ``action [B, A]`` (and ``cell`` for LSTM), and
        what perception carries (the schema's uniform ``attention [B, R, R]``, its ``slots``)."""
        device = device or next(self.parameters()).device
        state = {
            "deter": torch.zeros(batch, self.deter_size, device=device),
            "stoch": torch.zeros(batch, self.latent.size, device=device),
            "action": torch.zeros(batch, self.num_actions, device=device),
        }
        if self.rnn_kind == "lstm":
            state["cell"] = torch.zeros(batch, self.deter_size, device=device)
        state.update(self.perception.initial_state(batch, device))
        return state

    def feat(self, state: State) -> Tensor:
        """``s = [h, z]``: ``[..., deter + stoch]``."""
        return torch.cat([state["deter"], state["stoch"]], -1)

    def object_tokens(self, feat: Tensor) -> Tensor | None:
        """The object head's tokens for states ``feat [..., F]``: ``[..., K, d + 2]`` (slot features,
        centre); None without ``object_policy``."""
        return None if self.object_head is None else self.object_head(feat)

    def _transition(self, state: State, action: Tensor) -> State:
        """One imagination-safe step of ``h``: ``action [B, A]`` one-hot (or probabilities)."""
        x = self.img_in(torch.cat([state["stoch"], action], -1))
        if self.rnn_kind == "lstm":
            deter, cell = self.cell(x, (state["deter"], state["cell"]))
            return {"deter": deter, "cell": cell}
        return {"deter": self.cell(x, state["deter"])}

    def _reset(self, state: State, is_first: Tensor) -> State:
        """Zero ``h``, ``z``, the previous action (and the LSTM cell, the carried slots ``[B, K, d]``)
        where a sequence starts a new episode; a mask multiply, since it runs inside the time loop."""
        keep = (~is_first.bool()).to(state["deter"].dtype)  # [B]
        return {k: v * keep.view(-1, *([1] * (v.dim() - 1))) for k, v in state.items()}

    def _encode(self, obs: Tensor) -> dict[str, Tensor]:
        """Everything per-frame, batched over ``B*T``: ``obs [B, T, 3, S, S]`` -> ``[B, T, ...]``."""
        b, t = obs.shape[:2]
        frames = obs.flatten(0, 1)
        features, embed, readout = self.encoder(frames)
        # everything of perception that does not depend on h: batched here, not in the loop
        out = {"embed": embed, "features": features, **self.perception.prepare(features, readout, frames)}
        return {k: v.unflatten(0, (b, t)) for k, v in out.items()}

    def _posterior_step(self, deter: Tensor, frame: dict[str, Tensor], state: State) -> tuple[dict, dict]:
        """The in-loop part: perception (the attention posterior) and q(z | h, e) for one step."""
        embed, extra = self.perception.step(deter, frame["embed"], frame, state)
        return self.latent.posterior(deter, embed), extra

    def decode(self, feat: Tensor, attention: Tensor | None = None, detail: Tensor | None = None) -> Tensor:
        """Frames from states: ``feat [..., F]`` (and ``attention [..., R, R]``, ``detail
        [..., P*P, R, R]``) -> ``[..., 3, S, S]``.

        With ``decoder_attention`` the map is required (the posterior's for filtered states, the
        prior's for imagined ones) and read detached; otherwise it is ignored. With
        ``attention_detail`` the filtered states' ``detail`` (``observe``'s ``attention_detail``)
        places the map's mass inside each cell; without it the mass is spread evenly.
        """
        lead = feat.shape[:-1]
        maps = fine = None
        if self.decoder_attention:
            if attention is None or attention.shape[:-2] != lead:
                got = None if attention is None else tuple(attention.shape)
                raise ValueError(f"decode: decoder_attention needs attention {tuple(lead)} + (R, R), got {got}")
            maps = attention.detach().flatten(0, -3)
        if self.attention_detail and detail is not None:
            if detail.shape[:-3] != lead:
                raise ValueError(f"decode: expected detail {tuple(lead)} + (P*P, R, R), got {tuple(detail.shape)}")
            fine = detail.detach().flatten(0, -4)
        frames = self.decoder(feat.flatten(0, -2), maps, fine)
        return frames.unflatten(0, lead)

    # -- inference -----------------------------------------------------------------------------
    def observe(self, obs: Tensor, action: Tensor, is_first: Tensor, state: State | None = None) -> dict:
        """Filter a batch of sequences.

        Args:
            obs: ``uint8 [B, T, 3, S, S]``; action: ``[B, T]`` indices (or ``[B, T, A]`` one-hot);
            is_first: ``[B, T]``; state: the state after the previous chunk (zeros if ``None``).
        Returns:
            dict with ``deter [B, T, D]`` (and the LSTM's ``cell [B, T, D]``), ``stoch [B, T, S]``,
            ``feat [B, T, D+S]``, ``post`` and
            ``prior`` parameter dicts ``[B, T, ...]``, ``state`` (the last step, to continue
            from), and with attention on ``attention [B, T, R, R]``, ``coords [B, T, 2]``,
            ``slot_maps [B, T, K, R, R]``, ``slot_centers [B, T, K, 2]`` (the group assignments
            are ``aime.attention.posterior.dominant_slot(slot_maps)``).
        """
        self._check_sequence(obs, action, is_first)
        b, t = obs.shape[:2]
        action = self._onehot(action)
        frames = self._encode(obs)
        state = dict(state) if state is not None else self.initial_state(b, obs.device)
        prev_action = state.pop("action")
        carried = self.perception.state_keys  # e.g. the last map, the slots: from each step's extras
        steps: list[dict] = []
        # one unbind per tensor, not a slice per step: the backward of T slices writes T full-size
        # zero gradients and adds them up (quadratic in T), unbind's backward is one stack
        per_step = [dict(zip(frames, values)) for values in zip(*(v.unbind(1) for v in frames.values()))]
        for i in range(t):
            state["action"] = prev_action
            state = self._reset(state, is_first[:, i])
            state.update(self._transition(state, state.pop("action")))
            post, extra = self._posterior_step(state["deter"], per_step[i], state)
            state["stoch"] = self.latent.sample(post)
            state.update({k: extra[k] for k in carried})
            step = {"deter": state["deter"], "stoch": state["stoch"], "post": post, **extra}
            if "cell" in state:  # an LSTM's recurrent state is (h, c): imagination starts from both
                step["cell"] = state["cell"]
            steps.append(step)
            prev_action = action[:, i]
        batched = set(self.perception.frame_outputs)  # already [B, T, ...]: not stacked again
        out = {k: torch.stack([s[k] for s in steps], 1) for k in steps[0] if k != "post" and k not in batched}
        out["post"] = stack_params([s["post"] for s in steps])
        out["prior"] = self.latent.prior(out["deter"])  # batched over B*T
        out["features"] = frames["features"]
        out.update({k: frames[k] for k in self.perception.frame_outputs})  # e.g. the sub-cell detail
        out["feat"] = torch.cat([out["deter"], out["stoch"]], -1)
        last = {"deter": state["deter"], "stoch": state["stoch"], "action": action[:, -1]}
        if "cell" in state:
            last["cell"] = state["cell"]
        last.update({k: state[k] for k in carried})
        out["state"] = last
        return out

    @torch.no_grad()
    def observe_step(
        self, state: State | None, obs: Tensor, is_first: Tensor, sample: bool = True
    ) -> tuple[State, dict]:
        """One filtering step for acting: ``obs uint8 [B, 3, S, S]``, ``is_first [B]``.

        ``state["action"]`` must hold the previous action (one-hot) — set it after choosing one.
        Returns the new state and the step's extras (``attention`` etc. with attention on).
        """
        if obs.dim() != 4:
            s = self.image_size
            raise ValueError(f"observe_step: expected obs [B, 3, {s}, {s}], got {tuple(obs.shape)}")
        b = obs.shape[0]
        state = dict(state) if state is not None else self.initial_state(b, obs.device)
        state = self._reset(state, is_first)
        state.update(self._transition(state, state.pop("action")))
        frame = {k: v[:, 0] for k, v in self._encode(obs[:, None]).items()}
        post, extra = self._posterior_step(state["deter"], frame, state)
        state["stoch"] = self.latent.sample(post) if sample else self.latent.mode(post)
        state.update({k: extra[k] for k in self.perception.state_keys})
        state["action"] = torch.zeros(b, self.num_actions, device=obs.device)
        return state, extra

    def imagine(
        self, policy: Policy, start: State, horizon: int, attention: bool = False, sample: bool = True
    ) -> dict[str, Tensor]:
        """Roll the model forward from ``start`` (``deter [N, D]``, ``stoch [N, S]``) with actions alone.

        Each step's ``stoch`` is drawn from the prior, or with ``sample=False`` is the prior's mode
        (to tell what the deterministic path keeps from what sampling adds or loses).

        ``policy(feat [N, F]) -> [N, A]`` (one-hot, straight-through allowed). Returns ``deter``,
        ``stoch``, ``feat`` of shape ``[N, H+1, ...]`` (the start included) and ``action [N, H, A]``;
        with ``attention=True`` (and the schema on) also the attention prior's maps
        ``attention [N, H+1, R, R]``, starting from ``start["attention"]``, and the attention-map
        head's maps from the states alone, ``attention_head [N, H+1, R, R]``.
        """
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, got {horizon}")
        state = {k: v for k, v in start.items() if k in ("deter", "stoch", "cell")}
        track = attention and self.perception.attends
        maps = [start["attention"]] if track else []
        steps, actions = [state], []
        for _ in range(horizon):
            act = policy(self.feat(state))
            if track:
                maps.append(self.perception.predict(maps[-1], state["deter"], state["stoch"]))
            state = self._transition(state, act)
            prior = self.latent.prior(state["deter"])
            state["stoch"] = self.latent.sample(prior) if sample else self.latent.mode(prior)
            steps.append(state)
            actions.append(act)
        out = {k: torch.stack([s[k] for s in steps], 1) for k in steps[0]}
        out["feat"] = torch.cat([out["deter"], out["stoch"]], -1)
        out["action"] = torch.stack(actions, 1)
        if track:
            out["attention"] = torch.stack(maps, 1)
            out["attention_head"] = self.perception.head_maps(out["feat"])
        return out

    @torch.no_grad()
    def open_loop(self, obs: Tensor, action: Tensor, is_first: Tensor, context: int) -> dict[str, Tensor]:
        """Observe ``context`` frames, then predict the rest from the actions alone.

        Args:
            obs: ``uint8 [B, T, 3, S, S]``; action: ``[B, T]``; is_first: ``[B, T]``;
            context: frames observed (``1 <= context < T``).
        Returns:
            ``frames [B, T - context, 3, S, S]`` (predicted, about [0, 1]), ``reward [B, T - context]``
            and, with the schema on, the attention prior's maps ``attention [B, T - context, R, R]``.
        """
        t = obs.shape[1]
        if not 1 <= context < t:
            raise ValueError(f"context must lie in [1, {t - 1}] for sequences of {t} frames, got {context}")
        onehot = self._onehot(action)
        out = self.observe(obs[:, :context], onehot[:, :context], is_first[:, :context])
        start = dict(out["state"])
        queue = iter(onehot[:, context - 1 :].unbind(1))  # the action at the last context frame first
        img = self.imagine(lambda feat: next(queue), start, t - context, attention=True)
        feat = img["feat"][:, 1:]
        frames = self.decode(feat, img["attention"][:, 1:] if "attention" in img else None)
        result = {"frames": frames, "reward": self.reward(feat).mean()}
        if "attention" in img:
            result["attention"] = img["attention"][:, 1:]
        return result

    # -- learning ------------------------------------------------------------------------------
    def loss(self, batch: dict[str, Tensor], state: State | None = None) -> tuple[Tensor, dict[str, Tensor], dict]:
        """The world-model loss on a batch of ``[B, T]`` windows.

        Args:
            batch: ``obs uint8 [B, T, 3, S, S]``, ``action [B, T]``, ``reward [B, T]``,
                ``is_first [B, T]``, ``is_terminal [B, T]`` (tensors on the model's device).
        Returns:
            ``(total, terms, out)``: the weighted sum, every term (unweighted, detached) and the
            :meth:`observe` outputs (posterior states for behaviour learning).
        """
        obs, is_first = batch["obs"], batch["is_first"].bool()
        out = self.observe(obs, batch["action"], is_first, state)
        # under bf16 autocast the schema's maps arrive in bf16: the losses on them are fp32
        out.update({k: out[k].float() for k in ("attention", "slot_maps") if k in out})
        feat = out["feat"]
        b, t = feat.shape[:2]
        target = obs.flatten(0, 1).float() / 255.0
        flat = feat.flatten(0, 1)
        weights = None
        if "attention" in out and self.precision_strength > 0:
            weights = objectives.attention_precision(
                out["attention"].flatten(0, 1), obs.shape[-1], self.precision_strength
            )
        terms: dict[str, Tensor] = {}
        maps = out["attention"].detach().flatten(0, 1) if self.decoder_attention else None
        fine = None
        if self.attention_detail:
            fine = out["attention_detail"].detach().flatten(0, 1)
            if self.training and self.attention_detail_dropout > 0:  # an even spread: what imagined frames get
                drop = torch.rand(fine.shape[0], 1, 1, 1, device=fine.device) < self.attention_detail_dropout
                fine = torch.where(drop, torch.full_like(fine, -math.log(fine.shape[1])), fine)
        terms["reconstruction"] = self.decoder.loss(flat, target, weights, maps, fine).mean()
        if self.scales.nca_refinement > 0:
            terms.update(self.decoder.aux_losses(flat, target, maps, fine))
        dyn, rep, stats = self.latent.kl(out["post"], out["prior"])
        terms["kl"] = objectives.balanced_kl(dyn, rep, self.free_bits, self.kl_balance).mean()
        if self.open_loop_horizon > 0 and self.scales.open_loop > 0 and t > 1:
            pixel_weights = None if weights is None else weights.unflatten(0, (b, t))
            terms["open_loop"] = self.open_loop_loss(batch, out, pixel_weights)
        terms["reward"] = -self.reward(feat).log_prob(batch["reward"].float()).mean()
        terms["continuation"] = objectives.continue_loss(self.cont(feat), batch["is_terminal"]).mean()
        terms.update(self.perception.losses(out, is_first, obs))
        if self.object_head is not None:
            terms["objects"] = self.object_head.loss(feat, out["slot_features"], out["slot_centers"]).mean()
        if self.scales.patch_coherence > 0 or self.scales.spatial_diversity > 0:
            terms.update(self._spatial_latent_losses(out["features"].flatten(0, 1).float()))
        total = sum(getattr(self.scales, name) * value for name, value in terms.items())
        metrics = {name: value.detach() for name, value in terms.items()}
        metrics["kl_value"] = rep.detach().mean()
        metrics.update({f"latent_{k}": v for k, v in stats.items()})
        metrics.update(self.perception.metrics(out))
        return total, metrics, out

    def open_loop_loss(self, batch: dict[str, Tensor], out: dict, weights: Tensor | None = None) -> Tensor:
        """Reconstruction from imagined states: scalar.

        From the posterior state at each step ``t < T - k`` of a window (``k`` the open-loop horizon,
        at most ``T - 1``) the prior is rolled ``j`` steps with the actions taken, ``j`` drawn from
        ``1..k`` per start, and the decoder draws frame ``t + j`` from the imagined state (with the
        attention prior's map where the decoder reads one, without the sub-cell detail, as in
        imagination). The error (the reconstruction's, pixels weighted by ``weights [B, T, S, S]``
        of the target frames if given) is averaged over the starts whose ``j`` steps do not cross an
        episode's start. Gradients reach the transition, the prior, the start states and, unless
        ``open_loop_decoder_grad`` is ``False``, the decoder's parameters.

        Args:
            batch: :meth:`loss`'s batch (``obs``, ``action``, ``is_first`` ``[B, T, ...]``).
            out: :meth:`observe`'s outputs on it.
        """
        obs, is_first = batch["obs"], batch["is_first"].bool()
        b, t = obs.shape[:2]
        k = min(self.open_loop_horizon, t - 1)
        n = t - k
        keys = ("deter", "stoch", "cell") + (("attention",) if self.decoder_attention else ())
        start = {key: out[key][:, :n].flatten(0, 1) for key in keys if key in out}
        onehot = self._onehot(batch["action"])
        queue = iter([onehot[:, j : j + n].flatten(0, 1) for j in range(k)])  # the actions taken from t on
        img = self.imagine(lambda feat: next(queue), start, k, attention=self.decoder_attention)
        steps = torch.randint(1, k + 1, (b * n,), device=obs.device)  # [b*n]
        rows = torch.arange(b * n, device=obs.device)
        feat = img["feat"][rows, steps]
        maps = img["attention"][rows, steps] if self.decoder_attention else None
        origin = torch.arange(n, device=obs.device).repeat(b)  # t of each start, batch-major as flatten
        target_index = (rows // n, origin + steps)
        target = obs[target_index].float() / 255.0  # [b*n, 3, S, S]
        pixel_weights = None if weights is None else weights[target_index]
        with _parameters_frozen(self.decoder, not self.open_loop_decoder_grad):
            error = self.decoder.loss(feat, target, pixel_weights, maps, None)
        # a start is kept when no episode begins in (t, t + j]
        started = torch.cumsum(is_first[:, 1:].long(), 1)  # episode starts in (0, i] at [:, i - 1]
        before = torch.cat([torch.zeros_like(started[:, :1]), started], 1)  # in (0, i] at [:, i]
        keep = before[target_index] == before[:, :n].flatten(0, 1)
        return (error * keep).sum() / keep.sum().clamp_min(1)

    def _spatial_latent_losses(self, features: Tensor) -> dict[str, Tensor]:
        """Seed 004's losses on the encoder's spatial latents ``[N, F, R, R]`` (off by default)."""
        terms = {}
        if self.scales.patch_coherence > 0:
            terms["patch_coherence"] = info_nce_patch_coherence(features, num_samples=16, temperature=0.1)
        if self.scales.spatial_diversity > 0:
            terms["spatial_diversity"] = spatial_diversity_loss(features)
        return terms

    # -- helpers -------------------------------------------------------------------------------
    def _onehot(self, action: Tensor) -> Tensor:
        if action.dim() == 2:
            return F.one_hot(action.long(), self.num_actions).float()
        return action.float()

    def _check_sequence(self, obs: Tensor, action: Tensor, is_first: Tensor) -> None:
        if obs.dim() != 5 or obs.shape[2] != 3:
            raise ValueError(f"obs: expected [B, T, 3, H, W], got {tuple(obs.shape)}")
        bt = tuple(obs.shape[:2])
        if tuple(action.shape[:2]) != bt or action.dim() not in (2, 3):
            raise ValueError(
                f"action: expected {bt} indices or {bt + (self.num_actions,)} one-hot, got {tuple(action.shape)}"
            )
        if tuple(is_first.shape) != bt:
            raise ValueError(f"is_first: expected {bt}, got {tuple(is_first.shape)}")


@contextlib.contextmanager
def _parameters_frozen(module: nn.Module, frozen: bool) -> Iterator[None]:
    """Within, if ``frozen``, the operations recorded give ``module``'s parameters no gradient;
    their inputs still get theirs, and each parameter's ``requires_grad`` is restored on exit."""
    params = [p for p in module.parameters() if p.requires_grad] if frozen else []
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in params:
            p.requires_grad_(True)


def _rename_perception_keys(module: nn.Module, state_dict: dict, prefix: str, *_: object) -> None:
    """Load-time hook: ``context.*``, ``schema.*``, ``phi.*``, ``attention_head.*`` of older
    checkpoints become ``perception.*`` (the same parameters, in the same order)."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        rest = key[len(prefix) :]
        if rest.startswith(_PERCEPTION_MODULES):
            state_dict[f"{prefix}perception.{rest}"] = state_dict.pop(key)
