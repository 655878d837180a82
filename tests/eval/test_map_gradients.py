"""aime.eval.map_gradients: which loss terms sharpen the posterior's maps and which flatten them."""

import numpy as np
import pytest
import torch

from aime.config.schema import LossScales
from aime.eval.map_gradients import map_gradient_alignment
from aime.world_model.vrnn import VRNN

SMALL = dict(deter=32, stoch=4, classes=4, hidden=32, cnn_depth=8, context_dim=16, num_slots=2)


def sliding_square(b: int = 4, t: int = 6) -> dict[str, torch.Tensor]:
    """Windows of a bright 6x6 square sliding right on grey: the frame difference marks it."""
    obs = np.full((b, t, 3, 84, 84), 128, np.uint8)
    for i in range(b):
        x, y = 8 + 10 * i, 12 + 14 * i
        for s in range(t):
            obs[i, s, :, y : y + 6, x + 4 * s : x + 4 * s + 6] = 250
    is_first = torch.zeros(b, t, dtype=torch.bool)
    is_first[:, 0] = True
    return {
        "obs": torch.as_tensor(obs),
        "action": torch.zeros(b, t, dtype=torch.long),
        "reward": torch.zeros(b, t),
        "is_first": is_first,
        "is_terminal": torch.zeros(b, t, dtype=torch.bool),
    }


def test_the_motion_target_sharpens_an_even_map_and_an_unweighted_term_has_no_gradient():
    torch.manual_seed(0)
    model = VRNN(3, loss_scales=LossScales(slot_diversity=0.0), **SMALL)
    before = dict(vars(model.scales))
    state = torch.get_rng_state()
    result = map_gradient_alignment(model, sliding_square(), ["attention_target", "reconstruction", "slot_diversity"])
    assert torch.equal(torch.get_rng_state(), state) and dict(vars(model.scales)) == before  # left as it was
    assert result["entropy_ratio"] > 0.95  # untrained: near even
    # the target is the frame difference, on the square: descending it concentrates the map there
    target = result["terms"]["attention_target"]
    assert target["alignment"] < -0.1 and target["grad_norm"] > 0
    assert -1 <= result["terms"]["reconstruction"]["alignment"] <= 1
    assert result["terms"]["slot_diversity"] == {"alignment": 0.0, "grad_norm": 0.0}  # weight 0
    # the same draws each time: the same figures
    assert map_gradient_alignment(model, sliding_square(), ["attention_target"])["terms"]["attention_target"] == target


def test_bad_requests_raise_value_error():
    with pytest.raises(ValueError, match="no attention schema"):
        map_gradient_alignment(VRNN(3, attention=False, **SMALL), sliding_square(), ["kl"])
    with pytest.raises(ValueError, match="unknown terms"):
        map_gradient_alignment(VRNN(3, **SMALL), sliding_square(), ["sharpness"])
