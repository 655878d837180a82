import pytest
import torch
import torch.nn.functional as F

from aime.agent.behavior import Behavior
from aime.agent.object_reader import ObjectMLP, ObjectReader
from aime.nn.mlp import mlp


def flagged_objects(n, k=3, d=4, seed=0):
    """``n`` scenes of ``k`` random tokens ``[features, x, y]``; one carries the flag ``feature 0 = 3``,
    and the label is whether that one lies right of centre. The others' places are noise."""
    g = torch.Generator().manual_seed(seed)
    objects = torch.randn(n, k, d + 2, generator=g)
    objects[..., 0] = 0.0
    flagged = torch.randint(0, k, (n,), generator=g)
    objects[torch.arange(n), flagged, 0] = 3.0
    label = (objects[torch.arange(n), flagged, d] > 0).long()
    return objects, label


def fit(net, reads_objects, steps=150):
    """Train ``net`` on fresh scenes each step (nothing to memorise); its accuracy on new ones."""
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    for step in range(steps + 1):
        feat = torch.randn(256, 8)  # carries nothing about the label
        objects, label = flagged_objects(256, seed=step)
        logits = net(feat, objects) if reads_objects else net(feat)
        if step == steps:
            return (logits.argmax(-1) == label).float().mean()
        loss = F.cross_entropy(logits, label)
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_the_reader_finds_the_flagged_object_wherever_its_slot_is():
    torch.manual_seed(0)
    assert fit(ObjectMLP(8, 6, hidden=32, out=2), reads_objects=True) > 0.9
    # the state alone cannot do it: an MLP on feat stays at chance
    assert fit(mlp(8, 32, 2), reads_objects=False) < 0.65


def test_the_reader_ignores_the_order_of_the_objects():
    torch.manual_seed(0)
    reader = ObjectReader(8, 6, dim=16, heads=2)
    feat, objects = torch.randn(5, 7, 8), torch.randn(5, 7, 3, 6)
    torch.testing.assert_close(reader(feat, objects), reader(feat, objects[..., [2, 0, 1], :]))
    assert reader(feat, objects).shape == (5, 7, 16)
    with pytest.raises(ValueError, match="multiple of heads"):
        ObjectReader(8, 6, dim=10, heads=4)


def test_behavior_with_objects_needs_them_and_without_refuses_them():
    feat, objects = torch.randn(4, 6), torch.randn(4, 2, 5)
    reading = Behavior(6, 3, hidden=8, object_dim=5)
    assert reading.act(feat, objects=objects).shape == (4,)
    assert reading.value(feat, objects=objects).mean().shape == (4,)
    with pytest.raises(ValueError, match="object tokens"):
        reading.policy(feat)
    with pytest.raises(ValueError, match="no object tokens"):
        Behavior(6, 3, hidden=8).policy(feat, objects)
    with pytest.raises(ValueError, match="leading shape"):
        reading.policy(feat, objects[:2])
