"""Classifying images with a trained run.

:mod:`.predictor` holds :class:`Predictor` (one fold or the ensemble, torch or
onnxruntime) and :class:`Prediction`; :mod:`.pipeline` classifies many files
(:func:`collect_images`, :func:`classify_paths`); :mod:`.outputs` writes CSV
files and attention overlays; :mod:`.gradcam` computes Grad-CAM and
:mod:`.export` exports to ONNX. Importing the package does not import torch.
"""

from .pipeline import classify_paths, collect_images
from .predictor import Prediction, Predictor

__all__ = ["Prediction", "Predictor", "classify_paths", "collect_images"]
