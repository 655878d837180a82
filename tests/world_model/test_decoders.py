import pytest
import torch

from aime.config import LossScales
from aime.world_model.decoders import DECODERS, FieldImageDecoder, NCARefinementDecoder
from aime.world_model.heads import AttentionMapHead
from aime.world_model.vrnn import VRNN

SMALL = dict(deter=16, stoch=2, classes=3, hidden=16, cnn_depth=4, context_dim=8, num_slots=2)


def batch(b=2, t=3):
    g = torch.Generator().manual_seed(0)
    out = {
        "obs": torch.randint(0, 256, (b, t, 3, 84, 84), dtype=torch.uint8, generator=g),
        "action": torch.randint(0, 3, (b, t), generator=g),
        "reward": torch.randn(b, t, generator=g),
        "is_first": torch.zeros(b, t, dtype=torch.bool),
        "is_terminal": torch.zeros(b, t, dtype=torch.bool),
    }
    out["is_first"][:, 0] = True
    return out


def test_field_decoder_on_a_pixel_subset_equals_the_full_frame_there():
    torch.manual_seed(0)
    dec = FieldImageDecoder(10, depth=2)
    feat = torch.randn(3, 10)
    full = dec(feat)  # [3, 3, 84, 84]
    assert full.shape == (3, 3, 84, 84)
    index = torch.randint(0, 84 * 84, (3, 50))
    subset = dec.at(feat, index)  # [3, 50, 3]
    expected = full.flatten(2).gather(2, index.unsqueeze(1).expand(-1, 3, -1)).transpose(1, 2)
    torch.testing.assert_close(subset, expected, atol=1e-5, rtol=1e-5)


def test_field_decoder_subset_loss_estimates_the_full_loss():
    torch.manual_seed(0)
    dec = FieldImageDecoder(10, depth=2, train_pixels=2000)
    feat, target = torch.randn(4, 10), torch.rand(4, 3, 84, 84)
    full = dec.eval().loss(feat, target)
    sampled = torch.stack([dec.train().loss(feat, target) for _ in range(20)]).mean(0)
    torch.testing.assert_close(sampled, full, rtol=0.05, atol=0)


def test_nca_decoder_refines_the_coarse_frame_and_has_a_refinement_loss():
    torch.manual_seed(0)
    dec = NCARefinementDecoder(10, depth=2, steps=2, refine_frames=2)
    feat, target = torch.randn(3, 10), torch.rand(3, 3, 84, 84)
    assert dec(feat).shape == (3, 3, 84, 84)
    aux = dec.aux_losses(feat, target)["nca_refinement"]
    aux.backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in dec.nca.parameters())
    assert all(p.grad is None for p in dec.coarse.parameters())  # the coarse frame is detached


def test_attention_map_head_gives_normalised_maps():
    head = AttentionMapHead(12, resolution=21, neurons=8, hidden_dim=4)
    probs = head.probs(torch.randn(2, 5, 12))
    assert probs.shape == (2, 5, 21, 21)
    torch.testing.assert_close(probs.sum((-2, -1)), torch.ones(2, 5))


@pytest.mark.parametrize("decoder", list(DECODERS))
def test_each_decoder_trains_in_the_world_model(decoder):
    torch.manual_seed(0)
    scales = LossScales(nca_refinement=1.0, patch_coherence=0.1, spatial_diversity=0.1)
    model = VRNN(3, decoder=decoder, loss_scales=scales, free_bits=0.0, **SMALL)
    total, terms, _ = model.loss(batch())
    assert torch.isfinite(total)
    assert {"patch_coherence", "spatial_diversity", "attention_map"} <= set(terms)
    assert ("nca_refinement" in terms) == (decoder == "nca")
    total.backward()
    # zero-initialised output layers (reward head, NCA update) pass no gradient upstream at step 0
    zero_init = ("reward.net", "decoder.nca")
    dead = [
        n
        for n, m in model.named_modules()
        if list(m.parameters(recurse=False))
        and not n.startswith(zero_init)
        and all(p.grad is None or p.grad.abs().sum() == 0 for p in m.parameters(recurse=False))
    ]
    assert not dead, dead
    if decoder == "nca":
        assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.decoder.nca.parameters())
    assert model.decoder(model.feat({"deter": torch.zeros(1, 16), "stoch": torch.zeros(1, 6)})).shape == (1, 3, 84, 84)


def test_conv_decoder_draws_where_the_attention_map_points():
    """With ``reads_attention`` and a constant state, the map alone says where the square goes."""
    torch.manual_seed(0)
    decoder = DECODERS["conv"](4, depth=8, reads_attention=True)
    optimiser = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    feat = torch.zeros(16, 4)

    def sample(n):
        cells = torch.randint(2, 19, (n, 2))
        maps = torch.full((n, 21, 21), 1e-4)
        maps[torch.arange(n), cells[:, 0], cells[:, 1]] = 1.0
        frames = torch.zeros(n, 3, 84, 84)
        for i, (y, x) in enumerate(cells.tolist()):
            frames[i, :, 4 * y : 4 * y + 4, 4 * x : 4 * x + 4] = 1.0
        return maps / maps.sum((-2, -1), keepdim=True), frames

    for _ in range(160):
        maps, frames = sample(16)
        optimiser.zero_grad()
        decoder.loss(feat, frames, attention=maps).mean().backward()
        optimiser.step()
    maps, frames = sample(16)
    with torch.no_grad():
        drawn = decoder(feat, maps)
        shuffled = decoder(feat, maps.roll(1, 0))
    square = frames[:, 0] > 0.5
    assert drawn[:, 0][square].mean() > 0.6  # the square is drawn where the map points...
    assert shuffled[:, 0][square].mean() < 0.3  # ...and not where another frame's map points
    with pytest.raises(ValueError, match="attention"):
        decoder(feat)


def test_decoder_attention_in_the_world_model():
    torch.manual_seed(0)
    model = VRNN(3, decoder_attention=True, **SMALL)
    b = batch()
    total, _, out = model.loss(b)
    total.backward()
    assert model.decoder.net[3].weight.grad.abs().sum() > 0
    frames = model.decode(out["feat"], out["attention"])
    assert frames.shape == (2, 3, 3, 84, 84)
    # the map is an input of the frames: another map, other frames
    assert not torch.allclose(frames, model.decode(out["feat"], out["attention"].flip(-1)))
    with pytest.raises(ValueError, match="decoder_attention"):
        model.decode(out["feat"])
    assert model.open_loop(b["obs"], b["action"], b["is_first"], 1)["frames"].shape == (2, 2, 3, 84, 84)
    with pytest.raises(ValueError, match="field"):
        VRNN(3, decoder="field", decoder_attention=True, **SMALL)
    # without it the decoder keeps the layout of older checkpoints
    plain = VRNN(3, **SMALL)
    assert plain.decoder.net[3].in_channels == 2 * SMALL["cnn_depth"]
    assert model.decoder.net[3].in_channels == 2 * SMALL["cnn_depth"] + 1
