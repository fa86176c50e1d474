"""An interactive nomogram for the HTML report: sliders and choices, live points and risk.

The fragment is self-contained (inline script and style, no server, no network): it
carries the nomogram's saved description (:meth:`dlrn.nomogram.Nomogram.to_dict`) and
computes each predictor's points, the total, the linear predictor and the risk in the
page with the arithmetic of :meth:`~dlrn.nomogram.Nomogram.points`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from importlib.resources import files
from itertools import count

from dlrn.errors import DlrnError

_STYLE = """
.dlrn-interactive-nomogram table { border-collapse: collapse; }
.dlrn-interactive-nomogram :is(td, th) { padding: .2rem .6rem; text-align: left; }
.dlrn-interactive-nomogram input[type=range] { width: 14rem; vertical-align: middle; }
.dlrn-interactive-nomogram .dlrn-num { text-align: right; font-variant-numeric: tabular-nums; }
.dlrn-interactive-nomogram .dlrn-bar-cell { width: 10rem; }
.dlrn-interactive-nomogram .dlrn-bar { height: .6rem; background: #468; }
.dlrn-interactive-nomogram .dlrn-risk { font-weight: bold; font-size: 1.2rem; }
"""
_IDS = count(1)


def values_from_points(state: Mapping, points: Mapping[str, float]) -> dict[str, object]:
    """A patient's value on each axis, from the points the nomogram gave it: the inverse of
    the page's arithmetic (an imputed value included), to start the controls at; a
    category is the level with those points."""
    def xbeta(scale: Mapping, value: object) -> float:
        return (scale["coefficient"][str(value)] if scale["kind"] == "categorical"
                else scale["coefficient"] * float(value))

    axes = [[xbeta(scale, v) for v in scale["values"]] for scale in state["scales"]]
    per_unit = state["params"]["maxscale"] / max(max(a) - min(a) for a in axes)
    values: dict[str, object] = {}
    for scale, axis in zip(state["scales"], axes, strict=True):
        if scale["name"] not in points:
            continue
        beta = points[scale["name"]] / per_unit + min(axis)
        if scale["kind"] == "continuous" and scale["coefficient"]:
            values[scale["name"]] = beta / scale["coefficient"]
        else:
            values[scale["name"]] = min(scale["values"], key=lambda v: abs(xbeta(scale, v) - beta))
    return values


def interactive_nomogram(state: Mapping, *, labels: Mapping[str, str] | None = None,
                         levels: Mapping[str, Mapping[str, str]] | None = None,
                         start: Mapping[str, object] | None = None) -> str:
    """HTML fragment (a ``<div>``) of the interactive nomogram for ``Nomogram.to_dict()``.

    ``labels`` renames predictors and ``levels`` their levels for display (as
    :meth:`Nomogram.plot`'s); ``start``: the values the controls start at (a patient's),
    else each range's middle and the first level. A page moves them later with
    ``window.dlrnNomogram.show(root, values)``.
    """
    if state.get("format") != "dlrn-nomogram" or not state.get("scales"):
        raise DlrnError("interactive nomogram: not a dlrn nomogram description "
                        "(expected Nomogram.to_dict())")
    data = {"intercept": state["intercept"], "params": {"maxscale": state["params"]["maxscale"]},
            "scales": state["scales"], "labels": dict(labels or {}),
            "levels": {k: dict(v) for k, v in (levels or {}).items()},
            "start": dict(start or {})}
    payload = json.dumps(data, allow_nan=False).replace("</", "<\\/")
    script = files("dlrn.report").joinpath("assets/interactive_nomogram.js").read_text()
    return (f'<div class="dlrn-interactive-nomogram" id="dlrn-nomogram-{next(_IDS)}">'
            f"<style>{_STYLE}</style>"
            f'<script type="application/json" class="dlrn-nomogram-state">{payload}</script>'
            f"<script>{script}</script></div>")
