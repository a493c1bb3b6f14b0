"""Whole-slide inference in the app: the Slide heatmap dock and its overlay on the slide viewer."""
