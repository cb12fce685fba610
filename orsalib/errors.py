"""Errors a user can cause that several rooms raise (each message names the file and what was expected).

:class:`orsalib.config.ConfigError` (a config value), :class:`orsalib.data.sources.DatasetError` (a dataset) and
:class:`orsalib.priors.landmarks.WeightsError` (a prior network's weights) live with their room; the checkpoint
error is raised by the trainer (``last.pt`` / ``best.pt``) and by the converter of released checkpoints alike.
"""

from __future__ import annotations


class CheckpointError(ValueError):
    """A checkpoint file is missing, truncated, corrupt, not a checkpoint of the expected kind, or does not fit the
    model (the message names the file)."""


__all__ = ["CheckpointError"]
