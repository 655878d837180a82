import pytest
import torch

from aime.config import LossScales
from aime.world_model import objectives
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


def test_conv_decoder_draws_a_small_object_where_the_detail_puts_it_inside_a_cell():
    """A one-pixel dot whose cell the map gives and whose pixel inside the cell only ``detail`` gives
    (24x24 frames, 6x6 cells of 4x4 pixels; precision-weighted as in the world model)."""
    torch.manual_seed(0)
    decoder = DECODERS["conv"](4, depth=8, image_size=24, reads_attention=True, detail_cells=16)
    optimiser = torch.optim.Adam(decoder.parameters(), lr=3e-3)
    feat = torch.zeros(16, 4)

    def sample(n):
        cells, inner = torch.randint(0, 6, (n, 2)), torch.randint(0, 4, (n, 2))
        maps = torch.full((n, 6, 6), 1e-4)
        maps[torch.arange(n), cells[:, 0], cells[:, 1]] = 1.0
        detail = torch.full((n, 16, 6, 6), 1e-3)
        detail[torch.arange(n), 4 * inner[:, 0] + inner[:, 1]] = 1.0
        pixels = 4 * cells + inner
        frames = torch.zeros(n, 3, 24, 24)
        frames[torch.arange(n), :, pixels[:, 0], pixels[:, 1]] = 1.0
        return maps / maps.sum((-2, -1), keepdim=True), (detail / detail.sum(1, keepdim=True)).log(), frames

    for _ in range(400):
        maps, detail, frames = sample(16)
        optimiser.zero_grad()
        weights = objectives.attention_precision(maps, 24, 1.0)
        decoder.loss(feat, frames, weights, attention=maps, detail=detail).mean().backward()
        optimiser.step()
    maps, detail, frames = sample(16)
    with torch.no_grad():
        drawn = decoder(feat, maps, detail)[:, 0]
        elsewhere = decoder(feat, maps, detail.roll(1, 0))[:, 0]  # another frame's place in the cell
    dot = frames[:, 0] > 0.5
    assert drawn[dot].mean() > 0.6  # the dot is drawn at its pixel...
    assert elsewhere[dot].mean() < drawn[dot].mean() - 0.3  # ...which the map alone does not say
    with pytest.raises(ValueError, match="detail"):
        decoder(feat, maps, detail[:, :4])
    with pytest.raises(ValueError, match="reads_attention"):
        DECODERS["conv"](4, depth=8, detail_cells=16)


def test_attention_detail_in_the_world_model():
    torch.manual_seed(0)
    model = VRNN(3, decoder_attention=True, attention_detail=True, **SMALL)
    b = batch(t=4)
    total, terms, out = model.loss(b)
    assert out["attention_detail"].shape == (2, 4, 16, 21, 21)
    torch.testing.assert_close(out["attention_detail"].exp().sum(2), torch.ones(2, 4, 21, 21))
    assert terms["attention_detail"] > 0
    total.backward()
    head = model.perception.detail_head
    assert head.from_pixels.weight.grad.abs().sum() > 0 and head.from_features.weight.grad.abs().sum() > 0
    assert model.decoder.net[3].in_channels == 2 * SMALL["cnn_depth"] + 1 + 16
    frames = model.decode(out["feat"], out["attention"], out["attention_detail"])
    # the detail is an input of the frames: other detail, other frames
    assert not torch.allclose(frames, model.decode(out["feat"], out["attention"], out["attention_detail"].flip(2)))
    assert model.open_loop(b["obs"], b["action"], b["is_first"], 2)["frames"].shape == (2, 2, 3, 84, 84)
    with pytest.raises(ValueError, match="decoder_attention"):
        VRNN(3, attention_detail=True, **SMALL)
    with pytest.raises(ValueError, match="attention_detail_dropout"):
        VRNN(3, decoder_attention=True, attention_detail=True, attention_detail_dropout=1.5, **SMALL)
    # dropout 1: every training frame is drawn as an imagined one is, without the detail
    model.attention_detail_dropout = 1.0
    _, terms, out = model.loss(b)
    weights = objectives.attention_precision(out["attention"].flatten(0, 1), 84, model.precision_strength)
    target = b["obs"].flatten(0, 1).float() / 255
    plain = objectives.image_loss(model.decode(out["feat"], out["attention"]).flatten(0, 1), target, weights)
    torch.testing.assert_close(terms["reconstruction"], plain.mean())
    detailed = model.decode(out["feat"], out["attention"], out["attention_detail"]).flatten(0, 1)
    assert not torch.allclose(terms["reconstruction"], objectives.image_loss(detailed, target, weights).mean())
    assert "attention_detail" not in VRNN(3, decoder_attention=True, **SMALL).loss(b)[1]
