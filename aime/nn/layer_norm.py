"""Layer normalisation that stays accurate under CPU bf16 autocast.

CPU autocast leaves ``layer_norm`` in its input's dtype (CUDA autocast runs it in fp32), so a norm
after a bf16 ``Linear`` runs PyTorch's mixed kernel: bf16 in and out, fp32 weight and bias. Its input
gradient is accurate, but it sums the weight's and the bias's gradients over the rows in bf16. With
PyTorch 2.13 on this project's CPUs, against float64 (normal inputs, normal output gradients,
relative error of the whole gradient):

    rows x channels      weight     bias
    16 x 512             0.34 %     0.36 %
    1,024 x 512          2.5 %      2.9 %
    16,384 x 512         11 %       10 %
    451,584 x 64         58 %       42 %

Two remedies, by what the norm feeds:

- :class:`LayerNorm` (the MLPs, the heads): a low-precision input with more than
  :data:`BF16_MAX_ROWS` rows is promoted to fp32 first, as CUDA autocast does (the next ``Linear``
  casts it back). Per step of a time loop (``B`` rows) it stays in bf16: autograd sums those steps'
  gradients in fp32.
- :func:`normalize` (the attention schema's tokens, ``[B*T, 441, 64]``): no affine map on the large
  tensor at all. The consumer folds the weight and the bias into its own small projections
  (``W (g * x + b) = (W diag(g)) x + W b``), so their gradients come from autograd on those small
  matrices, and the tokens stay in bf16.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["BF16_MAX_ROWS", "LayerNorm", "normalize"]

BF16_MAX_ROWS = 256  # rows a bf16 norm may sum its affine gradients over (0.34 % error at 16 rows)


def normalize(x: Tensor, eps: float = 1e-5) -> Tensor:
    """``(x - E[x]) / sqrt(Var[x] + eps)`` over the last dim, in ``x``'s dtype (statistics in fp32):
    ``[..., C] -> [..., C]``. No affine map: fold it into what reads the result."""
    return F.layer_norm(x, x.shape[-1:], None, None, eps)


class LayerNorm(nn.LayerNorm):
    """``nn.LayerNorm`` (the same arguments, parameters and checkpoints) whose weight and bias get
    accurate gradients under CPU bf16 autocast:

        y = (x - E[x]) / sqrt(Var[x] + eps) * weight + bias

    A bf16 or fp16 input with more than :data:`BF16_MAX_ROWS` rows on the CPU is promoted to fp32
    (the output is then fp32, as under CUDA autocast); anything else is ``nn.LayerNorm``.

    Forward:
        x: ``[..., *normalized_shape]`` -> the same shape.
    """

    def forward(self, x: Tensor) -> Tensor:
        if x.device.type == "cpu" and x.dtype in (torch.bfloat16, torch.float16) and self.elementwise_affine:
            if x.numel() // self.weight.numel() > BF16_MAX_ROWS:  # rows summed into the gradients
                x = x.float()
        return super().forward(x)
