"""o2l: teacher-student liver and lesion segmentation from mixed supervision (TensorFlow / Keras 3)."""

__version__ = "0.1.0"
