"""Training of the networks of spectac.nn: data, steps, checkpoints and the training loop."""

from spectac.training.options import TrainOptions
from spectac.training.train import train_model

__all__ = ["TrainOptions", "train_model"]
