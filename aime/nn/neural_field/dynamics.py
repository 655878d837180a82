r"""Potential dynamics of the simplified neural field: functions :math:`\dot p = g(p, s, h, \tau, \kappa, C)`.

Each function takes the potentials ``p`` ``[B, N]``, the summed stimuli ``s`` ``[B, N]``, the resting level ``h``
``[N]``, the time constant ``tau`` ``[1]``, the cubic decay ``kappa`` ``[1]`` and the capacity ``capacity``
``[1]`` (the last two may be unused), and returns :math:`\dot p` ``[B, N]``. The signature is the
``neuralfields`` package's, so any function with it can drive a :class:`~aime.nn.neural_field.SimpleNeuralField`.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

PotentialsDynamicsType = Callable[
    [torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None],
    torch.Tensor,
]

# The Euler step clips the potentials to +-POTENTIALS_MAX (package behaviour), so a diverging field stays finite.
POTENTIALS_MAX = 100.0

__all__ = [
    "POTENTIALS_MAX",
    "PotentialsDynamicsType",
    "pd_capacity_21",
    "pd_capacity_21_abs",
    "pd_capacity_32",
    "pd_capacity_32_abs",
    "pd_cubic",
    "pd_linear",
]


def _verify_tau(tau: torch.Tensor) -> None:
    if bool((torch.as_tensor(tau) <= 0).any()):
        raise ValueError(f"the time constant tau must be > 0, got {tau}")


def _verify_kappa(kappa: torch.Tensor | None) -> None:
    if kappa is not None and bool((torch.as_tensor(kappa) < 0).any()):
        raise ValueError(f"the cubic decay kappa must be >= 0, got {kappa}")


def _verify_capacity(capacity: torch.Tensor | None) -> None:
    if not isinstance(capacity, torch.Tensor):
        raise ValueError(f"capacity-based dynamics need a capacity tensor, got {type(capacity)}")


def pd_linear(
    p: torch.Tensor,
    s: torch.Tensor,
    h: torch.Tensor,
    tau: torch.Tensor,
    kappa: torch.Tensor | None,
    capacity: torch.Tensor | None,
) -> torch.Tensor:
    r"""Proportional dynamics :math:`\tau \dot p = s + h - p` (use with a sigmoid activation).

    Args:
        p: potentials, ``[B, N]`` (any shape broadcastable with ``s`` and ``h``).
        s: stimuli, ``[B, N]``.
        h: resting level, ``[N]``.
        tau: time constant, ``[1]``, > 0.
        kappa: ignored.
        capacity: ignored.

    Returns:
        :math:`\dot p`, ``[B, N]``.
    """
    _verify_tau(tau)
    return (s + h - p) / tau


def pd_cubic(
    p: torch.Tensor,
    s: torch.Tensor,
    h: torch.Tensor,
    tau: torch.Tensor,
    kappa: torch.Tensor | None,
    capacity: torch.Tensor | None,
) -> torch.Tensor:
    r"""Proportional dynamics with cubic decay :math:`\tau \dot p = s + h - p + \kappa (h - p)^3`.

    Args: as :func:`pd_linear`; ``kappa`` (``[1]``, >= 0) is used, ``capacity`` ignored.

    Returns:
        :math:`\dot p`, ``[B, N]``.
    """
    _verify_tau(tau)
    _verify_kappa(kappa)
    return (s + h - p + kappa * torch.pow(h - p, 3)) / tau


def pd_capacity_21(
    p: torch.Tensor,
    s: torch.Tensor,
    h: torch.Tensor,
    tau: torch.Tensor,
    kappa: torch.Tensor | None,
    capacity: torch.Tensor | None,
) -> torch.Tensor:
    r"""Capacity dynamics, 2 stable and 1 unstable fixed point for :math:`s = 0` (use with tanh).

    :math:`\tau \dot p = s - (h - p)\,(1 - (h - p)^2 / C^2)`

    Args: as :func:`pd_linear`; ``capacity`` :math:`C` (``[1]``) is used, ``kappa`` ignored.

    Returns:
        :math:`\dot p`, ``[B, N]``.
    """
    _verify_tau(tau)
    _verify_capacity(capacity)
    return (s - (h - p) * (torch.ones_like(p) - (h - p) ** 2 / capacity**2)) / tau


def pd_capacity_21_abs(
    p: torch.Tensor,
    s: torch.Tensor,
    h: torch.Tensor,
    tau: torch.Tensor,
    kappa: torch.Tensor | None,
    capacity: torch.Tensor | None,
) -> torch.Tensor:
    r"""Absolute-value variant of :func:`pd_capacity_21` (lower polynomial order).

    :math:`\tau \dot p = s - (h - p)\,(1 - |h - p| / C)`

    Returns:
        :math:`\dot p`, ``[B, N]``.
    """
    _verify_tau(tau)
    _verify_capacity(capacity)
    return (s - (h - p) * (torch.ones_like(p) - torch.abs(h - p) / capacity)) / tau


def pd_capacity_32(
    p: torch.Tensor,
    s: torch.Tensor,
    h: torch.Tensor,
    tau: torch.Tensor,
    kappa: torch.Tensor | None,
    capacity: torch.Tensor | None,
) -> torch.Tensor:
    r"""Capacity dynamics, 3 stable and 2 unstable fixed points for :math:`s = 0` (use with tanh).

    :math:`\tau \dot p = s + (h - p)\,(1 - (h - p)^2 / C^2)\,(1 - (2 (h - p))^2 / C^2)`

    Returns:
        :math:`\dot p`, ``[B, N]``.
    """
    _verify_tau(tau)
    _verify_capacity(capacity)
    return (
        s
        + (h - p)
        * (torch.ones_like(p) - (h - p) ** 2 / capacity**2)
        * (torch.ones_like(p) - ((2 * (h - p)) ** 2 / capacity**2))
    ) / tau


def pd_capacity_32_abs(
    p: torch.Tensor,
    s: torch.Tensor,
    h: torch.Tensor,
    tau: torch.Tensor,
    kappa: torch.Tensor | None,
    capacity: torch.Tensor | None,
) -> torch.Tensor:
    r"""Absolute-value variant of :func:`pd_capacity_32`.

    :math:`\tau \dot p = s + (h - p)\,(1 - |h - p| / C)\,(1 - 2 |h - p| / C)`

    Returns:
        :math:`\dot p`, ``[B, N]``.
    """
    _verify_tau(tau)
    _verify_capacity(capacity)
    return (
        s
        + (h - p)
        * (torch.ones_like(p) - torch.abs(h - p) / capacity)
        * (torch.ones_like(p) - 2 * torch.abs(h - p) / capacity)
    ) / tau


# The dynamics that use the capacity C: SimpleNeuralField initialises C for its activation only for these.
CAPACITY_DYNAMICS = (pd_capacity_21, pd_capacity_21_abs, pd_capacity_32, pd_capacity_32_abs)
