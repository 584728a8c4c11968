"""Errors raised by the data package."""

from __future__ import annotations


class DataFormatError(ValueError):
    """A data file exists but is not what it should be (corrupted, truncated, another file)."""


class DatasetNotFoundError(FileNotFoundError):
    """Neither local files nor TensorFlow Datasets could provide the requested dataset."""
