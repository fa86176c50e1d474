"""The bootstrap calibration plot of a validated nomogram, as rms ``plot(calibrate(fit, B))``.

Apparent (dotted), bias-corrected (solid) and ideal (dashed) lines, the spread of the
predicted risks as spikes along the top (rms ``scat1d``), and rms's subtitles: the
bootstrap repetitions, the mean absolute error and n. It
reads a :class:`~dlrn.nomogram.validation.BootstrapValidation`; nothing calls it
from the statistics.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from matplotlib.figure import Figure

if TYPE_CHECKING:
    from dlrn.nomogram.validation import BootstrapValidation

__all__ = ["draw_calibration"]

_SPIKE_BINS = 100  # spikes of the predicted risks' histogram (rms scat1d: nhistSpike)


def draw_calibration(validation: BootstrapValidation, *, title: str | None = None) -> Figure:
    """Apparent, bias-corrected and ideal calibration lines over the predicted risk."""
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from dlrn.evaluation.figures import STYLE

    curve = validation.calibration
    with rc_context(STYLE):
        figure = Figure(figsize=(3.6, 3.6), layout="constrained")
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        axes.plot([0, 1], [0, 1], color="0.5", linewidth=0.9, linestyle="--", label="Ideal")
        axes.plot(curve["predicted"], curve["apparent"], color="black", linewidth=1.1,
                  linestyle=":", label="Apparent")
        axes.plot(curve["predicted"], curve["bias_corrected"], color="#0072B2", linewidth=1.4,
                  label="Bias-corrected")
        counts, edges = np.histogram(validation.predicted, bins=_SPIKE_BINS, range=(0, 1))
        heights = 0.05 * counts / max(counts.max(), 1)
        centres = (edges[:-1] + edges[1:]) / 2
        axes.vlines(centres[counts > 0], 1.02, 1.02 + heights[counts > 0], color="0.3",
                    linewidth=0.6, clip_on=False)
        axes.set(xlim=(0, 1), ylim=(0, 1), xlabel="Predicted probability",
                 ylabel="Actual probability", aspect="equal")
        axes.legend(loc="lower right")
        axes.text(0.0, -0.17, f"B = {validation.B - validation.failed} bootstrap repetitions\n"
                              f"Mean absolute error = {validation.mean_absolute_error:.3f}, "
                              f"n = {len(validation.predicted)}",
                  transform=axes.transAxes, fontsize=7, ha="left", va="top")
        if title:
            axes.set_title(title, pad=14)
    return figure
