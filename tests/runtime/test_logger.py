import json

import numpy as np
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from aime.runtime.logger import Logger


def read_events(logdir):
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_scalars_images_and_text_round_trip(tmp_path):
    logger = Logger(tmp_path)
    logger.scalars({"charts/episodic_return": 1.5, "losses/kl": float("nan")}, step=10)
    logger.scalars({"charts/episodic_return": 2.5}, step=20)
    logger.images({"attention/posterior": torch.rand(2, 3, 8, 8), "raw": np.full((1, 3, 4, 4), 255, np.uint8)}, step=20)
    logger.hyperparameters({"model.deter": 512, "env.name": "Breakout"})
    logger.close()
    acc = read_events(tmp_path)
    returns = [(e.step, e.value) for e in acc.Scalars("charts/episodic_return")]
    assert returns == [(10, 1.5), (20, 2.5)]
    assert {"attention/posterior", "raw"} <= set(acc.Tags()["images"])
    image = acc.Images("attention/posterior")[0]
    assert (image.width, image.height) == (16, 8)  # the two images side by side
    assert "hyperparameters/text_summary" in acc.Tags()["tensors"]
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert lines[0]["step"] == 10 and lines[0]["charts/episodic_return"] == 1.5
    assert lines[0]["losses/kl"] is None  # non-finite values are null in JSON


def test_disabled_logger_writes_nothing(tmp_path):
    logger = Logger(tmp_path / "off", enabled=False)
    logger.scalars({"a": 1.0}, 0)
    logger.images({"b": torch.zeros(1, 3, 2, 2)}, 0)
    logger.close()
    assert not (tmp_path / "off").exists()
