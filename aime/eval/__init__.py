"""Evaluation of what the world model and its attention schema do, against ground truth.

``aime.eval.objects``: attention lift, best-slot lift and centroid error, and object-window error
ratios of reconstructions and open-loop predictions, on frames with OCAtari object boxes.
"""

from aime.eval.objects import ObjectData, cell_oracle, evaluate_objects, format_seed_table, format_table

__all__ = ["ObjectData", "cell_oracle", "evaluate_objects", "format_seed_table", "format_table"]
