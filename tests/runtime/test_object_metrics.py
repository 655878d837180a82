"""The loop's ``objects/...`` scalars: recorded once, named by tag and class, off where there are no
boxes, and measured without touching the run's random streams."""

import numpy as np
import torch

from aime.runtime import object_metrics
from aime.runtime.object_metrics import OBJECT_TAGS, ObjectMetrics
from aime.world_model.vrnn import VRNN


def square_record(rows: int, seed: int) -> dict:
    """``record_objects``' dict for a bright 6x6 square sliding right on grey, 20-row episodes."""
    rng = np.random.default_rng(seed)
    obs = np.full((rows, 3, 84, 84), 128, np.uint8)
    boxes = np.zeros((rows, 1, 4), np.float32)
    for t in range(rows):
        if t % 20 == 0:
            x, y = int(rng.integers(4, 40)), int(rng.integers(4, 70))
        x += 2
        obs[t, :, y : y + 6, x : x + 6] = 250
        boxes[t, 0] = (x, y, x + 6, y + 6)
    return {
        "obs": obs,
        "action": np.zeros(rows, np.int64),
        "reward": np.zeros(rows, np.float32),
        "is_first": np.arange(rows) % 20 == 0,
        "boxes": boxes,
        "visible": np.ones((rows, 1), bool),
        "classes": np.array(["square"]),
    }


def test_scalars_are_tagged_per_class_recorded_once_and_leave_the_random_streams(monkeypatch):
    calls = []

    def record(game, rows, seed):
        calls.append((game, seed))
        return square_record(80, seed)

    monkeypatch.setattr(object_metrics, "record_objects", record)
    torch.manual_seed(0)
    model = VRNN(3, deter=32, stoch=4, classes=4, hidden=32, cnn_depth=8, context_dim=16, num_slots=2)
    metrics = ObjectMetrics("Breakout", seed=7)
    state = torch.get_rng_state()
    first = metrics.scalars(model, torch.device("cpu"))
    assert torch.equal(torch.get_rng_state(), state)  # measuring does not change the training run
    second = metrics.scalars(model, torch.device("cpu"))
    assert calls == [("breakout", 7)]  # the rows are recorded once, with the metrics' own seed
    assert first == second  # the same rows and the same model read the same
    expected = {f"objects/{tag}_square" for tag in OBJECT_TAGS.values()} | {"objects/smallest_slot_share"}
    assert set(first) == expected and all(np.isfinite(v) for v in first.values())
    assert 0 < first["objects/smallest_slot_share"] <= 0.5  # 2 slots: the smaller holds at most half


def test_metrics_are_off_for_a_game_without_boxes_or_without_the_optional_package(monkeypatch):
    model = VRNN(3, deter=32, stoch=4, classes=4, hidden=32, cnn_depth=8, context_dim=16, num_slots=2)
    assert ObjectMetrics("Catch", seed=0).scalars(model, torch.device("cpu")) is None

    def missing(game, rows, seed):
        raise ModuleNotFoundError("No module named 'ocatari'")

    monkeypatch.setattr(object_metrics, "record_objects", missing)
    metrics = ObjectMetrics("Pong", seed=0)
    assert metrics.data() is None and metrics.scalars(model, torch.device("cpu")) is None
