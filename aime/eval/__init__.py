"""Evaluation of what the world model and its attention schema do, against ground truth.

``aime.eval.objects``: attention lift, best-slot lift and centroid error, and object-window error
ratios of reconstructions and open-loop predictions, on frames with OCAtari object boxes.
"""

from aime.eval.objects import ObjectData, evaluate_objects, format_table

__all__ = ["ObjectData", "evaluate_objects", "format_table"]
