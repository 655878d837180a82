"""Behaviour learning in imagination: actor and critic on ``s = [h, z]`` (DreamerV3-style).

From replayed posterior states the world model imagines ``H`` steps with the actor's actions.
Rewards come from the reward head at the next state and continuation from the continue head; the
lambda-return

    R_t = r_{t+1} + gamma c_{t+1} ((1 - lambda) v(s_{t+1}) + lambda R_{t+1}),   R_H = v(s_H)

is the critic's two-hot target and, normalised by a running 5th-95th percentile range
``S`` (``max(1, S)``), the actor's REINFORCE advantage, with an entropy bonus. The critic is also
pulled towards a slow (EMA) copy of itself. With ``replay_value > 0`` the critic also learns, at
the replayed posterior states, the lambda-return of the real rewards bootstrapped by imagination
(DreamerV3's replay value loss, :func:`replay_lambda_return`). Every loss is a pure function below.

With object tokens (``object_dim > 0``, the world model's ``object_tokens``) the actor and critic
also read ``K`` object tokens by cross-attention from ``s``
(:class:`~aime.agent.object_reader.ObjectMLP`): attention-based action selection.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from aime.agent.object_reader import ObjectMLP
from aime.nn.distributions import StraightThroughCategorical, TwoHot, symlog_bins
from aime.nn.mlp import mlp


def lambda_return(reward: Tensor, cont: Tensor, value: Tensor, discount: float, lam: float | Tensor) -> Tensor:
    """Lambda-returns ``[N, H]`` from ``reward, cont [N, H]`` (at steps 1..H) and ``value [N, H+1]``.

    ``reward[:, t]`` and ``cont[:, t]`` belong to the transition ``s_t -> s_{t+1}``; ``lam`` is one
    number or ``[N, H]`` (a ``lam[:, t]`` of 0 bootstraps ``R_t`` from ``value[:, t+1]`` alone).
    """
    if value.shape[1] != reward.shape[1] + 1 or reward.shape != cont.shape:
        raise ValueError(
            f"expected reward, cont [N, H] and value [N, H+1], got {tuple(reward.shape)}, "
            f"{tuple(cont.shape)}, {tuple(value.shape)}"
        )
    out = []
    ret = value[:, -1]
    for t in reversed(range(reward.shape[1])):  # the horizon, not batch: a short recurrence
        lam_t = lam[:, t] if isinstance(lam, Tensor) else lam
        ret = reward[:, t] + discount * cont[:, t] * ((1 - lam_t) * value[:, t + 1] + lam_t * ret)
        out.append(ret)
    return torch.stack(out[::-1], 1)


def replay_lambda_return(
    reward: Tensor, terminal: Tensor, last: Tensor, boot: Tensor, discount: float, lam: float
) -> Tensor:
    """Lambda-returns ``[B, T-1]`` along replayed windows, from real rewards and imagined returns.

    With ``reward, terminal, last, boot [B, T]`` (``reward[:, t]`` and ``terminal[:, t]`` belong to
    the step into ``t``; ``last[:, t]``: state ``t`` ends its episode for learning, so no return
    runs past it; ``boot[:, t]``: the imagined lambda-return from the posterior state ``t``)::

        R_t = r_{t+1} + gamma (1 - d_{t+1}) ((1 - l_t) b_{t+1} + l_t R_{t+1}),   l_t = lambda (1 - last_{t+1}),

    with ``R_{T-1} = b_{T-1}``: the window's real rewards as far as they go, then imagination.
    """
    if not (reward.shape == terminal.shape == last.shape == boot.shape) or reward.dim() != 2:
        raise ValueError(
            f"expected reward, terminal, last and boot [B, T], got {tuple(reward.shape)}, "
            f"{tuple(terminal.shape)}, {tuple(last.shape)}, {tuple(boot.shape)}"
        )
    live = 1.0 - terminal[:, 1:].float()
    return lambda_return(reward[:, 1:], live, boot, discount, lam * (1.0 - last[:, 1:].float()))


def actor_loss(log_prob: Tensor, entropy: Tensor, advantage: Tensor, weight: Tensor, entropy_scale: float) -> Tensor:
    """REINFORCE with an entropy bonus: ``mean(weight * -(log_prob * sg(advantage) + eta * entropy))``."""
    return (weight * -(log_prob * advantage.detach() + entropy_scale * entropy)).mean()


def critic_loss(dist: TwoHot, target: Tensor, slow_target: Tensor, weight: Tensor, slow_scale: float = 1.0) -> Tensor:
    """Two-hot log loss to the lambda-return plus to the slow critic's value, discount-weighted."""
    loss = -dist.log_prob(target.detach()) - slow_scale * dist.log_prob(slow_target.detach())
    return (weight * loss).mean()


def replay_value_loss(
    dist: TwoHot, slow_value: Tensor, replay: Mapping[str, Tensor], boot: Tensor, discount: float, lam: float
) -> tuple[Tensor, Tensor]:
    """The critic's two-hot loss at replayed posterior states (DreamerV3's ``repval``).

    Args:
        dist: the critic at the windows' posterior states, ``[B, T]`` values.
        slow_value: ``[B, T]``, the slow critic's values there (the same pull as :func:`critic_loss`).
        replay: the windows' ``reward``, ``is_terminal``, ``is_first`` ``[B, T]``.
        boot: ``[B, T]``, the imagined lambda-return from each of those states.
    Returns:
        ``(loss, returns [B, T-1])``; states that end their episode for learning (terminal, or
        followed by a new episode's first step) carry no weight.
    """
    terminal, first = replay["is_terminal"].bool(), replay["is_first"].bool()
    last = terminal | torch.cat([first[:, 1:], torch.zeros_like(first[:, :1])], 1)
    returns = replay_lambda_return(replay["reward"].float(), terminal, last, boot.detach(), discount, lam)
    weight = (~last[:, :-1]).float()
    head = TwoHot(dist.logits[:, :-1], dist.bins)
    loss = -head.log_prob(returns.detach()) - head.log_prob(slow_value[:, :-1].detach())
    return (weight * loss).mean(), returns


class ReturnNormalizer(nn.Module):
    """Running 5th-95th percentile range of returns (EMA); scales advantages by ``1 / max(1, S)``."""

    def __init__(self, decay: float = 0.99, low: float = 0.05, high: float = 0.95) -> None:
        super().__init__()
        self.decay, self.low, self.high = decay, low, high
        self.register_buffer("range", torch.zeros(()))
        self.register_buffer("initialised", torch.zeros((), dtype=torch.bool))

    def update(self, returns: Tensor) -> Tensor:
        """Update with a batch of returns; return the current scale ``max(1, S)``."""
        flat = returns.detach().flatten().float()
        spread = torch.quantile(flat, self.high) - torch.quantile(flat, self.low)
        # the first batch sets the range, later ones move it by EMA: a where, not a host read
        moved = self.range * self.decay + (1 - self.decay) * spread
        self.range.copy_(torch.where(self.initialised, moved, spread))
        self.initialised.fill_(True)
        return self.scale()

    def scale(self) -> Tensor:
        return self.range.clamp_min(1.0)


class Behavior(nn.Module):
    """Actor ``pi(a | s)`` and critic ``v(s)`` with a slow target critic.

    Args:
        feat_dim: size of ``s = [h, z]``.
        num_actions: discrete actions.
        hidden, layers: MLP sizes.
        horizon, discount, lam, entropy: imagination horizon H, gamma, lambda, entropy scale.
        slow_decay: EMA decay of the target critic.
        unimix: uniform mixture in the actor's distribution.
        object_dim: size of one object token the actor and critic also read (0: they read ``s``
            alone). Then every method takes the tokens, ``objects [..., K, object_dim]``.
        replay_value: weight of :func:`replay_value_loss` in the critic's loss (0: off; DreamerV3:
            0.3). Then :meth:`loss` needs the replayed windows the start states came from.
        sample: imagine each step's ``z`` as a sample from the prior (DreamerV3); ``False``: as the
            prior's mode (``train.imagination: mode``).
    """

    def __init__(
        self,
        feat_dim: int,
        num_actions: int,
        hidden: int = 512,
        layers: int = 2,
        horizon: int = 15,
        discount: float = 0.997,
        lam: float = 0.95,
        entropy: float = 3e-4,
        slow_decay: float = 0.98,
        unimix: float = 0.01,
        bins: int = 255,
        object_dim: int = 0,
        replay_value: float = 0.0,
        sample: bool = True,
    ) -> None:
        super().__init__()
        if replay_value < 0:
            raise ValueError(f"replay_value: expected a weight >= 0, got {replay_value}")
        self.replay_value = replay_value
        self.num_actions, self.horizon, self.discount, self.lam = num_actions, horizon, discount, lam
        self.entropy_scale, self.slow_decay, self.unimix = entropy, slow_decay, unimix
        self.object_dim = object_dim
        self.sample = sample
        if object_dim:
            self.actor = ObjectMLP(feat_dim, object_dim, hidden, num_actions, layers)
            self.critic = ObjectMLP(feat_dim, object_dim, hidden, bins, layers, zero_last=True)
        else:
            self.actor = mlp(feat_dim, hidden, num_actions, layers)
            self.critic = mlp(feat_dim, hidden, bins, layers, zero_last=True)
        self.slow_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.register_buffer("bins", symlog_bins(bins), persistent=False)
        self.normalizer = ReturnNormalizer()

    def _run(self, net: nn.Module, feat: Tensor, objects: Tensor | None) -> Tensor:
        """A network of the actor or critic on ``feat [..., F]`` (and ``objects [..., K, C]``)."""
        if (objects is not None) != bool(self.object_dim):
            need = "object tokens [..., K, C]" if self.object_dim else "no object tokens (object_dim is 0)"
            raise ValueError(f"Behavior: this actor and critic take {need}")
        return net(feat) if objects is None else net(feat, objects)

    def policy(self, feat: Tensor, objects: Tensor | None = None) -> StraightThroughCategorical:
        """The action distribution at ``feat [..., F]`` (one categorical of ``A`` classes)."""
        return self._distribution(self._run(self.actor, feat, objects))

    def _distribution(self, logits: Tensor) -> StraightThroughCategorical:
        """The actor's logits ``[..., A]`` -> its action distribution (with unimix)."""
        # fp32 whatever the actor computes in: the policy's log-probabilities and entropy enter the loss
        return StraightThroughCategorical(logits.float().unsqueeze(-2), self.unimix)

    def act(self, feat: Tensor, explore: bool = True, objects: Tensor | None = None) -> Tensor:
        """``[N]`` action indices: sampled when exploring, the mode otherwise."""
        dist = self.policy(feat, objects)
        onehot = dist.sample() if explore else dist.mode()
        return onehot.squeeze(-2).argmax(-1)

    def value(self, feat: Tensor, slow: bool = False, objects: Tensor | None = None) -> TwoHot:
        """The critic's (or the slow critic's) value distribution at ``feat [..., F]``."""
        return TwoHot(self._run(self.slow_critic if slow else self.critic, feat, objects).float(), self.bins)

    def loss(
        self,
        world_model: nn.Module,
        start: dict[str, Tensor],
        start_cont: Tensor,
        replay: Mapping[str, Tensor] | None = None,
    ) -> tuple[Tensor, Tensor, dict]:
        """Actor and critic losses from imagined rollouts.

        Args:
            world_model: a :class:`~aime.world_model.vrnn.VRNN` (its parameters are not trained here).
            start: posterior states ``deter [N, D]``, ``stoch [N, S]`` (``cell`` for LSTM), detached.
            start_cont: ``[N]`` 1 - is_terminal of the start states.
            replay: the windows the start states are the posterior of, ``reward``, ``is_terminal``,
                ``is_first`` ``[B, T]`` with ``N = B * T`` (row-major); needed when
                ``replay_value > 0``, ignored otherwise.
        Returns:
            ``(actor_loss, critic_loss, metrics)``.
        """
        logits: list[Tensor] = []  # the actor's outputs in imagination, kept for its loss
        tokens = world_model.object_tokens if self.object_dim else (lambda feat: None)

        def policy(feat: Tensor) -> Tensor:
            objects = tokens(feat)  # no gradient: the world model is not trained here
            with torch.enable_grad():  # one actor pass per state serves both acting and the loss
                logits.append(self._run(self.actor, feat, objects))
            return self._distribution(logits[-1].detach()).sample().squeeze(-2)

        with torch.no_grad():
            traj = world_model.imagine(policy, start, self.horizon, sample=self.sample)
            feat = traj["feat"]  # [N, H+1, F]
            reward = world_model.reward(feat[:, 1:]).mean()
            cont = torch.sigmoid(world_model.cont(feat[:, 1:]))
            cont = torch.cat([start_cont[:, None].float(), cont], 1)  # [N, H+1]
            weight = torch.cumprod(self.discount * cont, 1) / self.discount  # [N, H+1], weight[0] = c_0
            objects = tokens(feat)
            slow_value = self.value(feat, slow=True, objects=objects).mean()
        critic = self.value(feat, objects=objects)  # one pass over [N, H+1]
        value = critic.mean()
        returns = lambda_return(reward, cont[:, 1:], value.detach(), self.discount, self.lam)  # [N, H]
        scale = self.normalizer.update(returns)
        advantage = (returns - value[:, :-1].detach()) / scale
        dist = self._distribution(torch.stack(logits, 1))  # pi(. | s_t), t < H
        action = traj["action"].unsqueeze(-2)  # [N, H, 1, A]
        log_prob = (action * dist.log_probs).sum((-2, -1))
        entropy = dist.entropy()
        a_loss = actor_loss(log_prob, entropy, advantage, weight[:, :-1], self.entropy_scale)
        c_loss = critic_loss(TwoHot(critic.logits[:, :-1], self.bins), returns, slow_value[:, :-1], weight[:, :-1])
        replayed = {}
        if self.replay_value > 0:
            windows = self._windows(replay, feat.shape[0])
            at_replay = TwoHot(windows(critic.logits[:, 0]), self.bins)
            r_loss, r_returns = replay_value_loss(
                at_replay, windows(slow_value[:, 0]), replay, windows(returns[:, 0]), self.discount, self.lam
            )
            c_loss = c_loss + self.replay_value * r_loss
            replayed = {"replay_value_loss": r_loss.detach(), "replay_return": r_returns.mean().detach()}
        metrics = {
            "imagined_return": returns.mean().detach(),
            "imagined_reward": reward.mean(),
            "value": value.mean().detach(),
            "actor_entropy": entropy.mean().detach(),
            "return_scale": scale.detach(),
            "return_range": self.normalizer.range.detach().clone(),  # S before max(1, S)
            "advantage": advantage.mean().detach(),
            "advantage_std": advantage.std().detach(),  # the actor's signal, against the entropy bonus
            **replayed,
        }
        return a_loss, c_loss, metrics

    def replay_value_model_loss(
        self, feat: Tensor, replay: Mapping[str, Tensor], objects: Tensor | None = None
    ) -> Tensor:
        """The replay value loss with its gradient into the world model (``train.replay_value_grad``).

        Args:
            feat: ``[B, T, F]``, the replayed windows' posterior states, not detached.
            replay: their ``reward``, ``is_terminal``, ``is_first`` ``[B, T]``.
            objects: the object tokens at ``feat`` (``object_policy``), or None.
        Returns:
            the unweighted scalar :func:`replay_value_loss` of the critic at ``feat``, bootstrapped
            by the slow critic's values there. The critic's parameters also receive its gradient;
            the caller steps the world model's optimiser alone with it.
        """
        with torch.no_grad():
            slow = self.value(feat.detach(), slow=True, objects=None if objects is None else objects.detach()).mean()
        loss, _ = replay_value_loss(self.value(feat, objects=objects), slow, replay, slow, self.discount, self.lam)
        return loss

    @staticmethod
    def _windows(replay: Mapping[str, Tensor] | None, n: int):
        """``[N, ...] -> [B, T, ...]`` for the replayed windows' ``[B, T]`` (checked against ``N``)."""
        if replay is None:
            raise ValueError(
                "Behavior.loss: replay_value > 0 needs the replayed windows (reward, is_terminal, is_first)"
            )
        b, t = replay["reward"].shape
        if b * t != n:
            raise ValueError(f"Behavior.loss: {n} start states, but the replayed windows are [{b}, {t}]")
        return lambda x: x.reshape(b, t, *x.shape[1:])

    @torch.no_grad()
    def update_slow_critic(self, skip: Tensor | None = None) -> None:
        """EMA step of the target critic towards the critic; none where the 0-dim bool ``skip``
        holds (a skipped update), decided on the device."""
        weight = 1 - self.slow_decay if skip is None else (1 - self.slow_decay) * (~skip).float()
        for slow, fast in zip(self.slow_critic.parameters(), self.critic.parameters()):
            slow.lerp_(fast, weight)


def onehot_actions(index: Tensor, num_actions: int) -> Tensor:
    """``[...]`` indices -> ``[..., A]`` float one-hot."""
    return F.one_hot(index.long(), num_actions).float()
