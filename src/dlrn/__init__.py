"""dlrn: deep learning radiomics for 2D medical images."""

__version__ = "0.1.0"
