"""The nomogram: a logistic model with the scales of R's rms::nomogram, as a classifier.

:class:`Nomogram` (estimator) fits the model through the clinical encoder and
gives points and probabilities; :mod:`~dlrn.nomogram.scales` holds rms's scale
rules; :mod:`~dlrn.nomogram.drawing` draws it.
"""

from dlrn.nomogram.estimator import Nomogram
from dlrn.nomogram.scales import PredictorScale, r_pretty

__all__ = ["Nomogram", "PredictorScale", "r_pretty"]
