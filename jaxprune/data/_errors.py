"""Errors raised by the data package."""

from __future__ import annotations


class DataFormatError(ValueError):
    """A data file exists but is not what it should be (corrupted, truncated, another file)."""


class DatasetNotFoundError(FileNotFoundError):
    """Neither local files nor TensorFlow Datasets could provide the requested dataset.

    ``str(e)`` is the full story for a Python user (where we looked, which files go where, how
    TFDS could provide them); ``e.brief`` is one line for a command line, without Python
    arguments (the CLI names its own flags).
    """

    def __init__(self, message: str, *, brief: str | None = None):
        super().__init__(message)
        self.brief = brief or (message.splitlines() or [''])[0]
