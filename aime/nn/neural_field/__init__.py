r"""Amari neural fields: potential-based recurrent networks with lateral excitation and inhibition.

A neural field keeps one *potential* :math:`u_i` per neuron. Neurons sit on a line (``NeuralField``,
``SimpleNeuralField``) or on a 2-D grid (``NeuralField2d``), and they excite or inhibit each other through
their activations :math:`f(u)`. The continuous-time dynamics of Amari (1977) are

.. math::
    \tau \dot u = -u + h + s_{ext} + w \ast f(u) \; [+ \kappa (h - u)^3]

with time constant :math:`\tau`, resting level :math:`h`, external stimulus :math:`s_{ext}` (an embedding of the
inputs), lateral interaction kernel :math:`w` (a convolution over the neurons) and an optional cubic decay
:math:`\kappa`. Every module integrates them with one explicit Euler step per input step,

.. math::
    u_{t+1} = \mathrm{clip}_{\pm 100}\big(u_t + \Delta t \, \dot u(u_t, s_t)\big),

and its output is a (linear) read-out of the new activations :math:`f(u_{t+1})`.

``NeuralField`` and ``SimpleNeuralField`` reproduce the public API, the parameter and buffer names (state dicts
are interchangeable) and the numerics of the ``neuralfields`` package (0.5.2) with its defaults; they add two
options the package does not have: the Euler step ``dt`` (package: 1) and ``detach_hidden`` (package: ``True``,
the incoming potentials are detached every step, so no gradient flows through time; ``False`` gives full
back-propagation through time). ``NeuralField2d`` is a 2-D field over ``[B, H, W]`` maps with a learnable
difference-of-Gaussians ("Mexican hat") kernel, whose self-sustained localised bump makes a natural attention
focus.

The modules, one concept each:

- :mod:`~aime.nn.neural_field.dynamics`: the potential dynamics functions ``pd_*`` of ``SimpleNeuralField``;
- :mod:`~aime.nn.neural_field.layers`: per-neuron nonlinearities, mirrored 1-D convolutions, the package's
  parameter initialisation ``init_param_``;
- :mod:`~aime.nn.neural_field.potential_based`: ``PotentialBased``, the Euler step and time loop of the 1-D fields;
- :mod:`~aime.nn.neural_field.field_1d`: ``NeuralField`` and ``SimpleNeuralField``;
- :mod:`~aime.nn.neural_field.field_2d`: ``NeuralField2d`` and its difference-of-Gaussians kernel.

References:
    S.-I. Amari, "Dynamics of pattern formation in lateral-inhibition type neural fields", Biological
    Cybernetics, 1977.
    T. Luksch, M. Gienger, M. Muehlig, T. Yoshiike, "Adaptive movement sequences and predictive decisions based
    on hierarchical dynamical systems", IROS, 2012.
"""

from aime.nn.neural_field.dynamics import (
    PotentialsDynamicsType,
    pd_capacity_21,
    pd_capacity_21_abs,
    pd_capacity_32,
    pd_capacity_32_abs,
    pd_cubic,
    pd_linear,
)
from aime.nn.neural_field.field_1d import NeuralField, SimpleNeuralField
from aime.nn.neural_field.field_2d import NeuralField2d, difference_of_gaussians_kernel
from aime.nn.neural_field.layers import ActivationFunction, IndependentNonlinearitiesLayer, MirroredConv1d, init_param_
from aime.nn.neural_field.potential_based import PotentialBased

__all__ = [
    "ActivationFunction",
    "IndependentNonlinearitiesLayer",
    "MirroredConv1d",
    "NeuralField",
    "NeuralField2d",
    "PotentialBased",
    "PotentialsDynamicsType",
    "SimpleNeuralField",
    "difference_of_gaussians_kernel",
    "init_param_",
    "pd_capacity_21",
    "pd_capacity_21_abs",
    "pd_capacity_32",
    "pd_capacity_32_abs",
    "pd_cubic",
    "pd_linear",
]
