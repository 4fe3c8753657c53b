"""Offline work: datasets, keypoint extraction, models, trainers, metrics."""
