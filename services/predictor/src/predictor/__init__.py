"""Flywheel's predictor: low-latency HTTP serving of each task's champion LightGBM model."""

from predictor.config import Settings
from predictor.service import PredictorService

__all__ = ["PredictorService", "Settings"]
