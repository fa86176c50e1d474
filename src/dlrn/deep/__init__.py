"""Deep learning stage: lesion crops (data), backbones (nets), fine-tuning (train),
deep features + PCA (features), Grad-CAM (gradcam), and the whole stage (workflow)."""
