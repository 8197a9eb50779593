"""The contract's per-sample anomaly scores: re-exported from the service's runtime.

The definition lives in :mod:`service.runtime.scoring`, the very function the service
recomputes at request time, so training's evaluation, calibration and the served scores share
one implementation. The training losses in :mod:`training.losses` are the per-sample sums of
the same quantities.
"""

from service.runtime.scoring import EPS, ScoreKind, scores

__all__ = ["EPS", "ScoreKind", "scores"]
