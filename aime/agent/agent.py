"""The agent: a world model, behaviour learnt in its imagination, their optimisers, and acting.

``Agent.train_step(batch)`` does one world-model update and one actor-critic update;
``Agent.act(obs, state, explore)`` filters one real step per environment and picks actions.

The update reads the device as little as it can: its metrics stay tensors (the training loop
averages them when it logs), and whether a loss was not finite is one flag on the device. With
fused optimisers (the default on CUDA) the skip of a non-finite update is decided on the device
(``found_inf``, as torch's GradScaler does) and the update reads one value, that flag, at its end.
With unfused ones (the default on CPU, where reading a value costs nothing and the foreach Adam
keeps the fp32 numerics the learning runs were measured with) it reads the flag twice, once
before each optimiser step, as before.

The world-model half of the update is :func:`world_model_update` and the replay-to-device copy is
:func:`to_tensors`: ``scripts/train_world_model.py`` trains a world model alone with the same two.
They live here, not in ``aime.runtime``, because the agent needs them and imports point from the
runtime to the agent, never back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import torch
from torch import Tensor, nn

from aime.agent.behavior import Behavior, onehot_actions
from aime.config import Config
from aime.world_model.vrnn import VRNN

# The networks ``train.compile`` hands to ``torch.compile``: the batched ones (encoder, decoder,
# heads, actor, critic) and the transition pieces called once per time step. Module.compile keeps
# parameter names, so checkpoints are the same with and without it.
COMPILED = (
    "world_model.encoder",
    "world_model.decoder",
    "world_model.reward",
    "world_model.cont",
    "world_model.img_in",
    "world_model.cell",
    "world_model.latent.prior_net",
    "world_model.latent.post_net",
    "behavior.actor",
    "behavior.critic",
    "behavior.slow_critic",
)


# ... and the world model's time step, run T times per sequence: compiled whole, its many small
# operations fuse (the posterior's slot attention, the fusion, the readout; on a GPU each is a kernel
# launch, and the update is bound by them: docs/benchmarks.md). The methods are replaced on the
# instance by their compiled versions; parameters and checkpoints are untouched.
COMPILED_STEPS = ("world_model._posterior_step", "world_model._transition")


def compile_world_model_loss(world_model: nn.Module) -> str:
    """``torch.compile`` ``world_model.loss`` whole, in place (``train.compile_world_model``): the
    instance's method is replaced, the class's stays eager, and parameters and checkpoints are
    untouched. ``dynamic=False``: the training batch keeps one shape, and a static graph is the
    faster one (another shape compiles anew). Returns the name compiled."""
    world_model.loss = torch.compile(world_model.loss, dynamic=False)
    return "world_model.loss"


def compile_networks(
    agent: nn.Module, names: Iterable[str] = COMPILED, steps: Iterable[str] = COMPILED_STEPS
) -> list[str]:
    """``torch.compile`` the named submodules of ``agent`` and its named methods ``steps`` in place;
    returns the names compiled (a name the agent lacks, e.g. ``latent.prior_net`` of another latent
    kind, is skipped)."""
    done = []
    for name in names:
        try:
            module = agent.get_submodule(name)
        except AttributeError:
            continue
        module.compile()
        done.append(name)
    for name in steps:
        owner, method = name.rsplit(".", 1)
        module = agent.get_submodule(owner)
        setattr(module, method, torch.compile(getattr(module, method)))
        done.append(name)
    return done


NONFINITE = {"nonfinite_loss": 1.0}  # train_step's metrics for a skipped update


class Adam(torch.optim.Adam):
    """``torch.optim.Adam`` whose implementation (``fused``, ``foreach``) is its own, not a checkpoint's.

    ``load_state_dict`` would otherwise restore the param groups' flags as they were saved, so a
    checkpoint written with foreach optimisers would turn fused ones back into foreach on resume
    (and leave their step counts on the wrong device).
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        own = [{k: g[k] for k in ("fused", "foreach") if k in g} for g in self.param_groups]
        groups = [{**saved, **mine} for saved, mine in zip(state_dict["param_groups"], own)]
        super().load_state_dict({**state_dict, "param_groups": groups})


def step_unless(optimizer: torch.optim.Optimizer, skip: Tensor) -> None:
    """A fused optimiser's step that changes nothing (parameters, moments, step count) where the
    0-dim bool ``skip`` holds, decided on the device: no host read."""
    optimizer.found_inf = skip.float()  # read by fused Adam's step, as torch's GradScaler passes it
    try:
        optimizer.step()
    finally:
        del optimizer.found_inf


def optimizer_step(optimizer: torch.optim.Optimizer, skip: Tensor, fused: bool) -> None:
    """Step ``optimizer``; a fused one skips where the 0-dim bool ``skip`` holds (:func:`step_unless`),
    an unfused one is only stepped once ``skip`` was read as False."""
    if fused:
        step_unless(optimizer, skip)
    else:
        optimizer.step()


class GradientSync(Protocol):
    """Data-parallel replicas' agreement (``aime.runtime.distributed.GradientSync`` implements it)."""

    def all_reduce_gradients(self, parameters: Iterable[nn.Parameter]) -> None:
        """Average the parameters' ``.grad`` over the replicas, in place."""

    def any_rank(self, flag: Tensor) -> Tensor:
        """Whether the 0-dim bool ``flag`` holds on some replica, as a tensor (no host read)."""

    def average_buffers(self, module: nn.Module) -> None:
        """Average the module's floating-point buffers over the replicas, in place."""


def nonfinite(*losses: Tensor, sync: GradientSync | None = None) -> Tensor:
    """One 0-dim bool on the device: some of the (0-dim) ``losses`` is not finite (on some replica,
    with ``sync``). No host read."""
    flag = ~torch.isfinite(torch.stack([loss.detach().float() for loss in losses])).all()
    return flag if sync is None else sync.any_rank(flag)


def to_tensors(batch: Mapping[str, np.ndarray | Tensor], device: torch.device | str) -> dict[str, Tensor]:
    """Replay numpy arrays -> tensors on ``device``, each with its shape and dtype (frames ``uint8
    [B, T, 3, 84, 84]`` stay uint8 until the model). On CUDA each array is copied into pinned memory
    first, so that the transfer to the device runs asynchronously. Tensors already on ``device``
    (a batch the loop's prefetcher converted) pass through."""
    device = torch.device(device)
    pin = device.type == "cuda"
    out = {}
    for key, value in batch.items():
        if isinstance(value, Tensor):
            out[key] = value.to(device, non_blocking=True)
            continue
        tensor = torch.from_numpy(np.ascontiguousarray(value))
        if pin:
            tensor = tensor.pin_memory()
        out[key] = tensor.to(device, non_blocking=pin)
    return out


@dataclass
class WorldModelStep:
    """What :func:`world_model_update` did.

    Attributes:
        loss: the world model's total loss, 0-dim (attached to the graph).
        metrics: its loss terms as ``VRNN.loss`` names them, detached 0-dim tensors.
        out: ``VRNN.loss``'s outputs (posterior states ``deter``, ``stoch`` ``[B, T, ...]``, ...).
        skip: 0-dim bool on the device: the loss was not finite (on some replica), so the step
            changed nothing.
        grad_norm: the gradients' norm before clipping, 0-dim; None when an unfused optimiser's
            step was skipped on the host (then nothing ran past the loss).
    """

    loss: Tensor
    metrics: dict[str, Tensor]
    out: dict[str, Tensor]
    skip: Tensor
    grad_norm: Tensor | None


def world_model_update(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    data: Mapping[str, Tensor],
    grad_clip: float,
    autocast: bool = False,
    fused: bool = False,
    sync: GradientSync | None = None,
    extra_loss: Callable[[Mapping[str, Tensor], dict], tuple[Tensor, dict[str, Tensor]]] | None = None,
) -> WorldModelStep:
    """One world-model update on a batch of windows: loss, backward, clip, step -- unless the loss is
    not finite, when parameters and optimiser state stay as they were.

    The agent's update and ``scripts/train_world_model.py`` both take this step.

    Args:
        model: a ``VRNN`` (anything whose ``loss(data)`` returns ``(loss, metrics, out)``).
        optimizer: the model's optimiser.
        data: the batch on the model's device (:func:`to_tensors`): ``obs`` uint8 ``[B, T, 3, 84, 84]``,
            ``action`` ``[B, T]``, ``reward``, ``is_first``, ``is_terminal`` ``[B, T]``.
        grad_clip: the largest gradient norm (``train.grad_clip``).
        autocast: run the loss under bf16 autocast on the model's device (the optimiser and the
            parameters stay fp32).
        fused: ``optimizer`` is a fused Adam: a non-finite loss skips its step on the device, with no
            host read. Otherwise the flag is read once, before the backward pass.
        sync: data-parallel replicas' agreement: gradients are averaged before clipping, and every
            replica skips when any one's loss is not finite.
        extra_loss: ``(data, out) -> (term, metrics)``, a term added to the model's loss from its
            outputs (``train.replay_value_grad``), and its detached metrics.
    """
    device_type = next(model.parameters()).device.type
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=autocast):
        loss, metrics, out = model.loss(data)
        if extra_loss is not None:
            term, extra = extra_loss(data, out)
            loss, metrics = loss + term, {**metrics, **extra}
    skip = nonfinite(loss, sync=sync)
    if not fused and bool(skip):  # unfused optimisers cannot skip on the device
        return WorldModelStep(loss, metrics, out, skip, None)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if sync is not None:
        sync.all_reduce_gradients(model.parameters())
    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer_step(optimizer, skip, fused)
    return WorldModelStep(loss, metrics, out, skip, grad_norm)


def default_precision(setting: str, device: torch.device) -> str:
    """``train.precision`` without the CPU's feature flags: ``fp32`` and ``bf16`` as given, ``auto``
    bf16 on a CUDA device with bf16 and fp32 elsewhere (where the agent stood before the setting).

    The whole rule, which also reads the CPU's flags (AMX, AVX512-BF16), is
    ``aime.runtime.device.resolve_precision``: the training loop resolves it and passes the result.
    """
    if setting != "auto":
        return setting
    return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"


class Agent(nn.Module):
    """World model + behaviour + optimisers.

    Args:
        cfg: the run configuration (``model`` and ``train`` sections are used).
        num_actions: size of the discrete action space.
        device: where the networks live.
        sync: for data-parallel training, how replicas agree: gradients are averaged after each
            ``backward()`` (before clipping), all replicas skip an update when any one's loss is
            not finite, and the return normaliser is averaged. ``None``: a single process.
        precision: ``fp32`` or ``bf16`` (the networks of the world model and the behaviour under
            bf16 autocast, when acting and learning). Default: ``cfg.train.precision`` with ``auto``
            resolved by :func:`default_precision`.
        fused: fused Adam optimisers, which skip a non-finite update without a host read (see the
            module's docstring). Default: on CUDA only; elsewhere foreach Adam, whose fp32 results
            equal the per-tensor loop's bit for bit (fused Adam rounds differently, ~1e-7 after 20
            steps) in 40% less time.
    """

    def __init__(
        self,
        cfg: Config,
        num_actions: int,
        device: torch.device | str = "cpu",
        sync: GradientSync | None = None,
        precision: str | None = None,
        fused: bool | None = None,
    ) -> None:
        super().__init__()
        self.cfg, self.num_actions, self.device = cfg, num_actions, torch.device(device)
        self.precision = precision or default_precision(cfg.train.precision, self.device)
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16 (resolved), got {self.precision!r}")
        self.sync = sync
        t = cfg.train
        self.world_model = VRNN.from_config(cfg.model, num_actions, t)
        self.behavior = Behavior(
            self.world_model.feat_size,
            num_actions,
            hidden=cfg.model.hidden,
            horizon=t.horizon,
            discount=t.discount,
            lam=t.lambda_,
            entropy=t.entropy,
            replay_value=t.loss_scales.replay_value,
            sample=t.imagination == "sample",
            object_dim=0 if self.world_model.object_head is None else self.world_model.object_head.token_dim,
        )
        self.to(self.device)
        self.fused = self.device.type == "cuda" if fused is None else fused
        # unfused: foreach, asked for by name (torch's own default on CPU is a loop over the
        # tensors, the same numbers in 9 operations per tensor: 2,085 per full atari100k update)
        impl = {"fused": True} if self.fused else {"foreach": True}
        self.model_opt = Adam(self.world_model.parameters(), t.model_lr, eps=1e-8, **impl)
        self.actor_opt = Adam(self.behavior.actor.parameters(), t.actor_lr, eps=1e-5, **impl)
        self.critic_opt = Adam(self.behavior.critic.parameters(), t.critic_lr, eps=1e-5, **impl)
        self.autocast = self.precision == "bf16"
        self.compiled = compile_networks(self) if t.compile else []
        if t.compile_world_model:
            self.compiled.append(compile_world_model_loss(self.world_model))

    def autocast_context(self) -> torch.autocast:
        """bf16 autocast on the agent's device when its precision is bf16 (a no-op context for fp32)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": self.model_opt, "actor": self.actor_opt, "critic": self.critic_opt}

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per part: world model (and its attention schema), actor, critic."""
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        out = {
            "world_model": count(self.world_model),
            "actor": count(self.behavior.actor),
            "critic": count(self.behavior.critic),
        }
        if hasattr(self.world_model, "schema"):
            out["attention_schema"] = count(self.world_model.schema)
        return out

    # -- acting --------------------------------------------------------------------------------
    @torch.no_grad()
    def act(
        self, obs: dict[str, np.ndarray], state: dict | None, explore: bool = True
    ) -> tuple[np.ndarray, dict, dict]:
        """Filter one real step and choose actions.

        Args:
            obs: ``{"obs": uint8 [N, 3, 84, 84], "is_first": bool [N]}``.
            state: the previous state (``None`` at the start).
            explore: sample from the policy (True) or take its mode.
        Returns:
            ``(actions int64 [N], state, extras)``; ``extras`` holds the attention map of the step
            (attention on) for overlays.
        """
        frames = torch.as_tensor(obs["obs"], device=self.device)
        is_first = torch.as_tensor(obs["is_first"], device=self.device)
        was_training = self.training
        self.eval()  # no dropout or slot noise when acting: the greedy policy is deterministic
        try:
            with self.autocast_context():
                state, extras = self.world_model.observe_step(state, frames, is_first, sample=explore)
                feat = self.world_model.feat(state).float()
                action = self.behavior.act(feat, explore, self.world_model.object_tokens(feat))
        finally:
            self.train(was_training)
        state["action"] = onehot_actions(action, self.num_actions)
        return action.cpu().numpy(), state, extras

    # -- learning ------------------------------------------------------------------------------
    def to_tensors(self, batch: Mapping[str, np.ndarray]) -> dict[str, Tensor]:
        """Replay numpy arrays -> tensors on the agent's device (:func:`to_tensors`)."""
        return to_tensors(batch, self.device)

    def train_step(
        self, batch: Mapping[str, np.ndarray | Tensor], *, learn_actor: bool = True
    ) -> tuple[dict[str, Tensor | float], bool]:
        """One world-model and one behaviour update; with ``learn_actor=False`` the actor takes no
        step (nor does its optimiser's state change) while the critic does (``train.actor_start``).

        Returns ``(metrics, finite)``: ``metrics`` are detached 0-dim tensors on the device (read
        them when logging); when a loss is not finite the update is skipped -- no parameter,
        optimiser moment, slow critic or return range changes -- ``finite`` is False and
        ``metrics`` is ``{"nonfinite_loss": 1.0}`` (the caller counts these). The world model's
        step is taken when its own loss is finite, before the behaviour learns in it; a non-finite
        behaviour loss skips only the behaviour's step. With ``sync``, every replica skips when any
        one's loss is not finite, so the replicas never diverge.
        """
        data = self.to_tensors(batch)
        t = self.cfg.train
        wm = world_model_update(
            self.world_model,
            self.model_opt,
            data,
            t.grad_clip,
            autocast=self.autocast,
            fused=self.fused,
            sync=self.sync,
            extra_loss=self._replay_value_term if t.replay_value_grad else None,
        )
        if wm.grad_norm is None:  # an unfused optimiser read the flag: nothing was stepped
            return dict(NONFINITE), False
        wm_loss, metrics, out, wm_bad = wm.loss, wm.metrics, wm.out, wm.skip

        learned = self._learn_behavior(data, out, wm_bad, learn_actor)
        if learned is None:
            return dict(NONFINITE), False
        # world-model metrics are losses unless they name their own section (attention/...)
        result: dict[str, Any] = {(k if "/" in k else f"losses/{k}"): v for k, v in metrics.items()}
        result.update(learned)
        result.update({"losses/world_model": wm_loss.detach(), "grad_norm/world_model": wm.grad_norm})
        return result, True

    def _replay_value_term(self, data: Mapping[str, Tensor], out: dict) -> tuple[Tensor, dict[str, Tensor]]:
        """``train.replay_value_grad``: the replay value loss at the posterior states ``out["feat"]``
        ``[B, T, F]``, weighted, for the world model's update (its metric: ``replay_value_model``)."""
        feat = out["feat"]
        loss = self.behavior.replay_value_model_loss(feat, data, self.world_model.object_tokens(feat))
        return self.cfg.train.loss_scales.replay_value * loss, {"replay_value_model": loss.detach()}

    def behavior_step(self, batch: Mapping[str, np.ndarray | Tensor]) -> tuple[dict[str, Tensor | float], bool]:
        """One behaviour update in the imagination of the world model as it stands (not trained).

        The posterior states of ``batch`` (replay windows, as for :meth:`train_step`) start the
        imagined rollouts, and the actor and critic take the same step; for experiments that hold a world model fixed,
        e.g. ``scripts/relearn_behavior.py``. Returns ``(metrics, finite)`` with the ``behavior/``,
        actor and critic entries of :meth:`train_step`.
        """
        data = self.to_tensors(batch)
        with torch.no_grad(), self.autocast_context():
            out = self.world_model.observe(data["obs"], data["action"], data["is_first"])
        learned = self._learn_behavior(data, out, torch.zeros((), dtype=torch.bool, device=self.device))
        return (dict(NONFINITE), False) if learned is None else (learned, True)

    def _learn_behavior(
        self, data: Mapping[str, Tensor], out: Mapping[str, Tensor], wm_bad: Tensor, learn_actor: bool = True
    ) -> dict[str, Tensor] | None:
        """The actor's and critic's step from the posterior states ``out`` of ``data``'s windows
        (the critic's alone unless ``learn_actor``).

        Returns the ``behavior/...`` metrics with the actor's and critic's losses and gradient
        norms (no ``grad_norm/actor`` when the actor took no step), or ``None`` when the step was
        skipped (``wm_bad``, or a behaviour loss not finite): then no parameter, optimiser moment,
        slow critic or return range changed.
        """
        keys = [k for k in ("deter", "stoch", "cell") if k in out]
        start = {k: out[k].detach().flatten(0, 1).float() for k in keys}
        start_cont = 1.0 - data["is_terminal"].flatten().float()
        normalizer = [b.clone() for b in self.behavior.normalizer.buffers()]
        with self.autocast_context():
            a_loss, c_loss, b_metrics = self.behavior.loss(self.world_model, start, start_cont, replay=data)
        if self.sync is not None:  # the return range comes from each replica's own imagined returns
            self.sync.average_buffers(self.behavior.normalizer)
        bad = wm_bad | self._nonfinite(a_loss, c_loss)  # a skipped world model skips the behaviour too
        if not self.fused and bool(bad):
            self._restore_normalizer(normalizer, bad)
            return None
        scales = self.cfg.train.loss_scales
        self.actor_opt.zero_grad(set_to_none=True)
        self.critic_opt.zero_grad(set_to_none=True)
        learners = {"actor": self.behavior.actor} if learn_actor else {}
        learners["critic"] = self.behavior.critic
        (scales.critic * c_loss + (scales.actor * a_loss if learn_actor else 0.0)).backward()
        if self.sync is not None:  # one collective for both optimisers' parameters
            self.sync.all_reduce_gradients([p for net in learners.values() for p in net.parameters()])
        norms = {
            f"grad_norm/{name}": nn.utils.clip_grad_norm_(net.parameters(), 100.0) for name, net in learners.items()
        }
        if learn_actor:
            self._step(self.actor_opt, bad)
        self._step(self.critic_opt, bad)
        self.behavior.update_slow_critic(skip=bad if self.fused else None)
        if self.fused:
            self._restore_normalizer(normalizer, bad)
            if bool(bad):  # the update's one host read
                return None
        replay_value = (
            {"losses/replay_value": b_metrics.pop("replay_value_loss")} if "replay_value_loss" in b_metrics else {}
        )
        return {
            **{f"behavior/{k}": v for k, v in b_metrics.items()},
            "losses/actor": a_loss.detach(),
            "losses/critic": c_loss.detach(),
            **replay_value,
            **norms,
        }

    def _nonfinite(self, *losses: Tensor) -> Tensor:
        """One 0-dim bool on the device: some loss is not finite (on some replica, with ``sync``)."""
        return nonfinite(*losses, sync=self.sync)

    def _step(self, optimizer: torch.optim.Optimizer, skip: Tensor) -> None:
        """Step ``optimizer`` unless ``skip`` (see :func:`optimizer_step`)."""
        optimizer_step(optimizer, skip, self.fused)

    def _restore_normalizer(self, saved: list[Tensor], skip: Tensor) -> None:
        """Put the return normaliser back as it was before a skipped update (branch-free)."""
        for buffer, old in zip(self.behavior.normalizer.buffers(), saved):
            buffer.copy_(torch.where(skip, old, buffer))

    def learning_rates(self) -> dict[str, float]:
        return {f"lr/{name}": opt.param_groups[0]["lr"] for name, opt in self.optimizers().items()}
