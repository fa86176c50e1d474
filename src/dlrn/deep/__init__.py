"""Deep learning, in layers (each imports only those below it; see docs/ARCHITECTURE.md):
settings, runtime, memory (bottom); data (crops, augmentation, loaders); networks
(classifier backbones, the U-Net); engine (the one training loop) and inference
(batched forward passes); classifier/ (the classifier CNNs: their task, training,
cross-fitting, features, Grad-CAM and the deep stage)."""
