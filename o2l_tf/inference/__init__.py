"""Whole-volume inference on NIfTI files: model loading, slice batching, post-processing, output naming."""
