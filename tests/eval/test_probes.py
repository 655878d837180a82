"""Probes from the world model's state to object positions: the fits, the states, the centres."""

import numpy as np
import pytest
import torch

from aime.eval.objects import ObjectData
from aime.eval.probes import latent_states, object_centres, probe_error
from aime.world_model.vrnn import VRNN


def split(rows: int) -> tuple[torch.Tensor, torch.Tensor]:
    train = torch.arange(rows) < rows * 3 // 4
    return train, ~train


def test_ridge_probe_reads_a_linear_target_and_not_noise():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(400, 16, generator=gen)
    train, test = split(400)
    linear = (x @ torch.randn(16, 1, generator=gen)) * 5 + 40
    fit = probe_error(x, linear, train, test)
    assert fit["r2_0"] > 0.99 and fit["mae_0"] < fit["mae_mean_0"] / 10
    assert fit["rows_train"] == 300 and fit["rows_test"] == 100
    noise = torch.randn(400, 1, generator=gen)
    fit = probe_error(x, noise, train, test)
    assert fit["r2_0"] < 0.1 and fit["mae_0"] > 0.9 * fit["mae_mean_0"]


def test_mlp_probe_reads_what_a_linear_one_cannot():
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(600, 2, generator=gen) * 2 - 1
    y = (x[:, :1] * 3).cos()  # even in x: a linear probe sees no trend
    train, test = split(600)
    ridge = probe_error(x, y, train, test, "ridge")
    mlp = probe_error(x, y, train, test, "mlp", steps=300)
    assert ridge["r2_0"] < 0.2 < 0.8 < mlp["r2_0"]


def test_probe_error_rejects_bad_arguments():
    x, y = torch.randn(10, 3), torch.randn(10, 1)
    train, test = split(10)
    with pytest.raises(ValueError, match="kind must be"):
        probe_error(x, y, train, test, "tree")
    with pytest.raises(ValueError, match="too few rows"):
        probe_error(x, y, torch.zeros(10, dtype=torch.bool), test)


def small_model_and_streams(rows: int, seed: int) -> tuple[VRNN, np.ndarray, np.ndarray, np.ndarray]:
    """A small world model without the schema, and 2 streams of ``rows`` noise frames, one episode each."""
    torch.manual_seed(0)
    model = VRNN(3, deter=16, stoch=4, classes=4, hidden=16, cnn_depth=4, attention=False)
    rng = np.random.default_rng(seed)
    obs = rng.integers(0, 255, (2, rows, 3, 84, 84), dtype=np.uint8)
    is_first = np.zeros((2, rows), bool)
    is_first[:, 0] = True
    return model, obs, rng.integers(0, 3, (2, rows)), is_first


def test_latent_states_carry_the_state_across_chunks():
    model, obs, action, is_first = small_model_and_streams(10, seed=0)
    before = torch.get_rng_state()
    whole = latent_states(model, obs, action, is_first, chunk=64)
    assert torch.equal(torch.get_rng_state(), before)  # seeded on a stream of its own
    pieces = latent_states(model, obs, action, is_first, chunk=3)
    assert whole["deter"].shape == (2, 10, 16) and whole["post"].shape == whole["prior"].shape == (2, 10, 32)
    torch.testing.assert_close(pieces["deter"], whole["deter"])  # h_t does not restart at a chunk's edge
    torch.testing.assert_close(whole["post"][..., :16], whole["deter"])
    torch.testing.assert_close(whole["prior"][..., :16], whole["deter"])
    with pytest.raises(ValueError, match="expected obs"):
        latent_states(model, obs[0], action[0], is_first[0])


def test_imagined_states_start_from_the_posterior_k_rows_back_within_an_episode():
    model, obs, action, is_first = small_model_and_streams(12, seed=1)
    is_first[1, 6] = True  # stream 1 starts a new episode at row 6
    states = latent_states(model, obs, action, is_first, chunk=5, horizons=(1, 3))
    one, valid = states["imagined_1"], states["imagined_1_valid"]
    assert one.shape == (2, 12, 32) and valid.dtype == torch.bool
    assert valid[0, 1:].all() and not valid[:, 0].any() and not valid[1, 6] and valid[1, 7]
    # one step of imagination from row t - 1 with its recorded action is the filter's h_t
    torch.testing.assert_close(one[..., :16][valid], states["deter"][valid])
    three = states["imagined_3_valid"]
    assert three[0, 3:].all() and not three[0, :3].any()
    assert three[1].tolist() == [False] * 3 + [True] * 3 + [False] * 3 + [True] * 3
    # further ahead, z comes from the prior: h drifts from the filter's
    assert not torch.allclose(states["imagined_3"][..., :16][three], states["deter"][three])
    with pytest.raises(ValueError, match="horizons must lie"):
        latent_states(model, obs, action, is_first, horizons=(12,))


def test_object_centres_are_box_centres_with_stream_dimensions():
    boxes = np.zeros((2, 3, 2, 4), np.float32)
    boxes[..., 1, :] = [10.0, 20.0, 14.0, 22.0]
    visible = np.zeros((2, 3, 2), bool)
    visible[0, 1, 1] = True
    data = ObjectData(
        np.zeros((2, 3, 3, 84, 84), np.uint8),
        np.zeros((2, 3), int),
        np.zeros((2, 3)),
        np.zeros((2, 3), bool),
        boxes,
        visible,
        ("ball", "paddle"),
    )
    centres, seen = object_centres(data, "paddle")
    assert centres.shape == (2, 3, 2) and (centres == torch.tensor([12.0, 21.0])).all()
    assert seen.sum() == 1 and seen[0, 1]
    with pytest.raises(ValueError, match="no class 'brick'"):
        object_centres(data, "brick")
