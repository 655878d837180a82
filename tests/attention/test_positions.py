import pytest
import torch

from aime.attention.positions import fourier_grid


def test_fourier_grid_averages_say_where_the_mass_lies():
    code = fourier_grid(21, frequencies=3)
    assert code.shape == (12, 21, 21)
    one_hot = torch.zeros(2, 441)
    one_hot[0, 3 * 21 + 17], one_hot[1, 15 * 21 + 2] = 1.0, 1.0
    pooled = one_hot @ code.flatten(1).T  # [2, 12]
    # the lowest frequency's sines are sin(pi/2 * x) and sin(pi/2 * y): monotonic in the position
    x, y = torch.linspace(-1, 1, 21)[[17, 2]], torch.linspace(-1, 1, 21)[[3, 15]]
    torch.testing.assert_close(pooled[:, 0], torch.sin(torch.pi / 2 * x))
    torch.testing.assert_close(pooled[:, 3], torch.sin(torch.pi / 2 * y))


def test_fourier_grid_refuses_bad_sizes():
    with pytest.raises(ValueError, match="positive int"):
        fourier_grid(0)
