"""The classifier CNNs: a backbone with a one-logit head fine-tuned on lesion crops
(task, settings, train), K fold CNNs side by side (lockstep), cross-fitted deep
features and scores (crossfit, foldmean, diagnostics), Platt scaling (calibration),
scores, deep features + PCA (features), Grad-CAM (gradcam) and the deep stage (workflow).
Built on the layers of :mod:`dlrn.deep` below it."""
