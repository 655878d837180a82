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


def test_hyperparameters_write_the_hparams_summary_into_the_runs_own_event_file(tmp_path):
    from tensorboard.plugins.hparams import plugin_data_pb2

    logger = Logger(tmp_path)
    logger.hyperparameters(
        {"model.deter": 512, "env.name": "Breakout", "eval.greedy": False, "device": "cpu"},
        metric_tags=["hparams/eval_return"],
    )
    logger.scalars({"hparams/eval_return": 3.5}, step=100)
    logger.close()
    assert [p.name for p in tmp_path.iterdir() if p.is_dir()] == []  # no sub-run, unlike add_hparams
    acc = read_events(tmp_path)
    content = acc.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {h.name for h in experiment.hparam_infos} == {"model.deter", "env.name", "eval.greedy", "device"}
    assert [m.name.tag for m in experiment.metric_infos] == ["hparams/eval_return"]
    session = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert session.hparams["model.deter"].number_value == 512
    assert session.hparams["env.name"].string_value == "Breakout"
    assert session.hparams["eval.greedy"].bool_value is False
    assert session.hparams["device"].string_value == "cpu"
    assert [(e.step, e.value) for e in acc.Scalars("hparams/eval_return")] == [(100, 3.5)]
