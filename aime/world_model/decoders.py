"""Image decoders from the model state ``s = [h, z]``, chosen by name (:data:`DECODERS`).

- ``conv``: transposed convolutions ``s -> [4d, 7, 7] -> 21 -> 42 -> 84``.

All decoders return frames ``[N, 3, 84, 84]`` on the scale of ``obs / 255`` (about [0, 1]).
"""

from __future__ import annotations

from torch import Tensor, nn


class ConvDecoder(nn.Module):
    """``feat [N, F]`` -> ``[N, 3, S, S]`` by transposed convolutions (S = 84 = 7 * 3 * 2 * 2).

    Args:
        feat_dim: ``F``.
        depth: channel base ``d``.
        image_size: must be 84 (the architecture's fixed upsampling path).
    """

    def __init__(self, feat_dim: int, depth: int = 32, image_size: int = 84) -> None:
        super().__init__()
        if image_size != 84:
            raise ValueError(f"ConvDecoder: image_size must be 84, got {image_size}")
        self.depth = depth
        self.project = nn.Linear(feat_dim, 4 * depth * 7 * 7)
        self.net = nn.Sequential(
            nn.SiLU(),
            nn.ConvTranspose2d(4 * depth, 2 * depth, 3, stride=3), nn.SiLU(),  # 7 -> 21
            nn.ConvTranspose2d(2 * depth, depth, 4, stride=2, padding=1), nn.SiLU(),  # 21 -> 42
            nn.ConvTranspose2d(depth, 3, 4, stride=2, padding=1),  # 42 -> 84
        )

    def forward(self, feat: Tensor) -> Tensor:
        x = self.project(feat).unflatten(-1, (4 * self.depth, 7, 7))
        return self.net(x) + 0.5


DECODERS: dict[str, type[nn.Module]] = {"conv": ConvDecoder}
