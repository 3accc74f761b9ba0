"""Dataclass configs for data, models and training, with named presets."""
