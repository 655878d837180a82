"""Training loops of the seed experiments, as library code behind the thin CLIs in ``scripts/``.

- ``aime.experiments.nca_training``: shortsighted single-trajectory training of the NCA
  (``ShortsightedConfig``, ``ShortsightedTrainer``, ``train_single_trajectory``); CLI ``scripts/train_nca.py``.
"""

from aime.experiments.nca_training import ShortsightedConfig, ShortsightedTrainer, TrainResult, train_single_trajectory

__all__ = ["ShortsightedConfig", "ShortsightedTrainer", "TrainResult", "train_single_trajectory"]
