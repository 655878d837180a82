"""The agent: a world model, behaviour learnt in its imagination, their optimisers, and acting.

``Agent.train(batch)`` does one world-model update and one actor-critic update;
``Agent.act(obs, state, explore)`` filters one real step per environment and picks actions.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
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
    "world_model.encoder", "world_model.decoder", "world_model.reward", "world_model.cont",
    "world_model.img_in", "world_model.cell", "world_model.latent.prior_net", "world_model.latent.post_net",
    "behavior.actor", "behavior.critic", "behavior.slow_critic",
)


def compile_networks(agent: nn.Module, names: Iterable[str] = COMPILED) -> list[str]:
    """``torch.compile`` the named submodules of ``agent`` in place; returns the names compiled
    (a name the agent lacks, e.g. ``latent.prior_net`` of another latent kind, is skipped)."""
    done = []
    for name in names:
        try:
            module = agent.get_submodule(name)
        except AttributeError:
            continue
        module.compile()
        done.append(name)
    return done


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu; otherwise the named device."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class GradientSync(Protocol):
    """Data-parallel replicas' agreement (``aime.runtime.distributed.GradientSync`` implements it)."""

    def all_reduce_gradients(self, parameters: Iterable[nn.Parameter]) -> None:
        """Average the parameters' ``.grad`` over the replicas, in place."""

    def all_true(self, flag: bool | Tensor) -> bool:
        """Whether ``flag`` holds on every replica."""

    def average_buffers(self, module: nn.Module) -> None:
        """Average the module's floating-point buffers over the replicas, in place."""


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
    """

    def __init__(self, cfg: Config, num_actions: int, device: torch.device | str = "cpu",
                 sync: GradientSync | None = None, precision: str | None = None) -> None:
        super().__init__()
        self.cfg, self.num_actions, self.device = cfg, num_actions, torch.device(device)
        self.precision = precision or default_precision(cfg.train.precision, self.device)
        if self.precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16 (resolved), got {self.precision!r}")
        self.sync = sync
        t = cfg.train
        self.world_model = VRNN.from_config(cfg.model, num_actions, t)
        self.behavior = Behavior(
            self.world_model.feat_size, num_actions, hidden=cfg.model.hidden, horizon=t.horizon,
            discount=t.discount, lam=t.lambda_, entropy=t.entropy,
        )
        self.to(self.device)
        self.model_opt = torch.optim.Adam(self.world_model.parameters(), t.model_lr, eps=1e-8)
        self.actor_opt = torch.optim.Adam(self.behavior.actor.parameters(), t.actor_lr, eps=1e-5)
        self.critic_opt = torch.optim.Adam(self.behavior.critic.parameters(), t.critic_lr, eps=1e-5)
        self.autocast = self.precision == "bf16"
        self.compiled = compile_networks(self) if t.compile else []

    def autocast_context(self) -> torch.autocast:
        """bf16 autocast on the agent's device when its precision is bf16 (a no-op context for fp32)."""
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.autocast)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"model": self.model_opt, "actor": self.actor_opt, "critic": self.critic_opt}

    def parameter_counts(self) -> dict[str, int]:
        """Parameters per part: world model (and its attention schema), actor, critic."""
        count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
        out = {"world_model": count(self.world_model), "actor": count(self.behavior.actor),
               "critic": count(self.behavior.critic)}
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
                action = self.behavior.act(self.world_model.feat(state).float(), explore)
        finally:
            self.train(was_training)
        state["action"] = onehot_actions(action, self.num_actions)
        return action.cpu().numpy(), state, extras

    # -- learning ------------------------------------------------------------------------------
    def to_tensors(self, batch: dict[str, np.ndarray]) -> dict[str, Tensor]:
        """Replay numpy arrays -> tensors on the device (frames stay uint8 until the model)."""
        pin = self.device.type == "cuda"
        out = {}
        for key, value in batch.items():
            tensor = torch.from_numpy(np.ascontiguousarray(value))
            if pin:
                tensor = tensor.pin_memory()
            out[key] = tensor.to(self.device, non_blocking=pin)
        return out

    def train_step(self, batch: dict[str, np.ndarray]) -> tuple[dict[str, float], bool]:
        """One world-model and one behaviour update.

        Returns ``(metrics, finite)``; when a loss is not finite the update is skipped and
        ``finite`` is False (the caller counts these). With ``sync``, every replica skips when
        any one's loss is not finite, so the replicas never diverge.
        """
        data = self.to_tensors(batch)
        t = self.cfg.train
        sync = self.sync
        with self.autocast_context():
            wm_loss, metrics, out = self.world_model.loss(data)
        if not self._all_finite(wm_loss):
            return {"nonfinite_loss": 1.0}, False
        self.model_opt.zero_grad(set_to_none=True)
        wm_loss.backward()
        if sync is not None:
            sync.all_reduce_gradients(self.world_model.parameters())
        wm_norm = nn.utils.clip_grad_norm_(self.world_model.parameters(), t.grad_clip)
        self.model_opt.step()

        keys = [k for k in ("deter", "stoch", "cell") if k in out]
        start = {k: out[k].detach().flatten(0, 1).float() for k in keys}
        start_cont = 1.0 - data["is_terminal"].flatten().float()
        with self.autocast_context():
            a_loss, c_loss, b_metrics = self.behavior.loss(self.world_model, start, start_cont)
        if sync is not None:  # the return range comes from each replica's own imagined returns
            sync.average_buffers(self.behavior.normalizer)
        scales = t.loss_scales
        if not self._all_finite(a_loss, c_loss):
            return {"nonfinite_loss": 1.0}, False
        self.actor_opt.zero_grad(set_to_none=True)
        self.critic_opt.zero_grad(set_to_none=True)
        (scales.actor * a_loss + scales.critic * c_loss).backward()
        if sync is not None:  # one collective for both optimisers' parameters
            sync.all_reduce_gradients([*self.behavior.actor.parameters(), *self.behavior.critic.parameters()])
        actor_norm = nn.utils.clip_grad_norm_(self.behavior.actor.parameters(), 100.0)
        critic_norm = nn.utils.clip_grad_norm_(self.behavior.critic.parameters(), 100.0)
        self.actor_opt.step()
        self.critic_opt.step()
        self.behavior.update_slow_critic()

        # world-model metrics are losses unless they name their own section (attention/...)
        result: dict[str, Any] = {(k if "/" in k else f"losses/{k}"): v for k, v in metrics.items()}
        result.update({f"behavior/{k}": v for k, v in b_metrics.items()})
        result.update({
            "losses/world_model": wm_loss.detach(), "losses/actor": a_loss.detach(), "losses/critic": c_loss.detach(),
            "grad_norm/world_model": wm_norm, "grad_norm/actor": actor_norm, "grad_norm/critic": critic_norm,
        })
        return {k: float(v) for k, v in result.items()}, True

    def _all_finite(self, *losses: Tensor) -> bool:
        finite = all(bool(torch.isfinite(loss)) for loss in losses)
        return finite if self.sync is None else self.sync.all_true(finite)

    def learning_rates(self) -> dict[str, float]:
        return {f"lr/{name}": opt.param_groups[0]["lr"] for name, opt in self.optimizers().items()}


def updates_due(credit: float, env_steps: int, train_ratio: float, batch_size: int, seq_len: int) -> tuple[int, float]:
    """How many updates ``env_steps`` new environment steps buy at ``train_ratio``.

    ``train_ratio`` replayed steps per environment step, ``batch_size * seq_len`` replayed per
    update; the fractional remainder carries over as ``credit``. Returns ``(updates, credit)``.
    """
    credit += env_steps * train_ratio / (batch_size * seq_len)
    updates = math.floor(credit)
    return updates, credit - updates
