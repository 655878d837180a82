import torch

from aime.runtime.metrics import mean_metrics


def test_mean_metrics_average_device_tensors_per_key_and_skip_empty_updates():
    pending = [
        {"losses/kl": torch.tensor(1.0), "grad_norm/actor": torch.tensor(4.0)},
        {},
        {"losses/kl": torch.tensor(2.0)},
        {"losses/kl": torch.tensor(6.0), "grad_norm/actor": 2.0},
    ]
    assert mean_metrics(pending) == {"losses/kl": 3.0, "grad_norm/actor": 3.0}
    assert mean_metrics([{}, {}]) == {} and mean_metrics([]) == {}
