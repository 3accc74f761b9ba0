"""Segmentation metrics: streaming Dice for training, the official LiTS metrics for evaluation."""
