"""GuSA Studio core: a headless library for Guided Soft Attention networks.

Projects, images and masks, colour normalisation, augmentation, the GuSA model
family (Yang et al., IEEE TMI 2020), training, inference with attention maps,
metrics and the ``gusa`` command line. Nothing here imports Qt.
"""

__version__ = "0.1.0"

#: The four BACH classes, in the order of the classifier's outputs.
DEFAULT_CLASSES = ("Normal", "Benign", "InSitu", "Invasive")

#: Display colours of the default classes (RGB).
DEFAULT_CLASS_COLORS = {
    "Normal": (76, 175, 80),
    "Benign": (33, 150, 243),
    "InSitu": (255, 152, 0),
    "Invasive": (229, 57, 53),
}

#: Default network input (width, height): BACH's 2048x1536 down-sampled by 4.
DEFAULT_INPUT_SIZE = (512, 384)

__all__ = ["__version__", "DEFAULT_CLASSES", "DEFAULT_CLASS_COLORS", "DEFAULT_INPUT_SIZE"]
