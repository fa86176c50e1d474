"""``dlrn serve``: a clinic calculator over a verified bundle (web form and JSON API).

:mod:`dlrn.serve.predictor` is the only bridge to ``dlrn predict``'s functions;
:mod:`dlrn.serve.form` generates the form from the bundle; :mod:`dlrn.serve.roi`
rasterises a polygon and draws the ROI used; :mod:`dlrn.serve.messages` says image and
ROI problems in the clinician's words; :mod:`dlrn.serve.uploads` checks uploaded files;
:mod:`dlrn.serve.app` is the FastAPI app.
"""
