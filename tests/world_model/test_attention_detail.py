import pytest
import torch

from aime.world_model import objectives
from aime.world_model.attention_detail import AttentionDetailHead


def dots(n, generator):
    """Frames [N, 3, 3, 24, 24] (three steps) with a one-pixel dot jumping to a random place each step."""
    obs = torch.zeros(n, 3, 3, 24, 24, dtype=torch.uint8)
    places = torch.randint(0, 24, (n, 3, 2), generator=generator)
    for i, step in enumerate(places.tolist()):
        for t, (y, x) in enumerate(step):
            obs[i, t, :, y, x] = 255
    return obs, places[:, -1]


def test_detail_head_gives_log_probabilities_over_each_cells_pixels():
    head = AttentionDetailHead(8, image_size=24, resolution=6)
    logq = head(torch.randint(0, 256, (2, 3, 24, 24), dtype=torch.uint8), torch.randn(2, 8, 6, 6))
    assert logq.shape == (2, 16, 6, 6) and logq.dtype == torch.float32
    torch.testing.assert_close(logq.exp().sum(1), torch.ones(2, 6, 6))
    with pytest.raises(ValueError, match="multiple"):
        AttentionDetailHead(8, image_size=24, resolution=5)


def test_detail_head_learns_where_in_its_cell_the_moving_dot_is():
    """Trained on the current-motion target alone, it finds the dot's pixel inside its cell."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(0)
    head = AttentionDetailHead(8, image_size=24, resolution=6)
    optimiser = torch.optim.Adam(head.parameters(), lr=3e-2)
    features = torch.zeros(32, 8, 6, 6)  # the pyramid says nothing here: the pixels must do it

    def loss_and_hits(obs, place):
        detail, weight, moved = objectives.current_motion_detail(obs, 6)  # [N, 1, 16, 6, 6]
        logq = head(obs[:, -1], features[: len(obs)])
        loss = -(weight[:, 0] * (detail[:, 0] * logq).sum(1)).sum((-2, -1))
        cell_y, cell_x = place[:, 0] // 4, place[:, 1] // 4
        guess = logq[torch.arange(len(obs)), :, cell_y, cell_x].argmax(1)
        return objectives.masked_mean(loss, moved[:, 0]), guess == 4 * (place[:, 0] % 4) + place[:, 1] % 4

    for _ in range(150):
        loss, _ = loss_and_hits(*dots(32, g))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    with torch.no_grad():
        _, hits = loss_and_hits(*dots(32, g))
    assert hits.float().mean() > 0.9  # chance: 1 in 16
