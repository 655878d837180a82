"""Evaluation of what the world model and its attention schema do, against ground truth.

``aime.eval.objects``: attention lift, best-slot lift and centroid error, and object-window error
ratios of reconstructions and open-loop predictions, on frames with OCAtari object boxes.

``aime.eval.model_report``: a trained agent's world model and critic on its own newest experience
(reward events caught, the continue head at terminals, the value against the returns that followed,
the policy's action shares); ``scripts/model_report.py``.
"""

from aime.eval.model_report import discounted_returns, filter_rows, model_report
from aime.eval.objects import ObjectData, cell_oracle, evaluate_objects, format_seed_table, format_table

__all__ = [
    "ObjectData",
    "cell_oracle",
    "discounted_returns",
    "evaluate_objects",
    "filter_rows",
    "format_seed_table",
    "format_table",
    "model_report",
]
