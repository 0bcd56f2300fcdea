"""What a user can fix: a bad input, missing data, a bad setting. The command line shows such
an error as one line with exit status 2; any other exception is a bug and shows its traceback."""

from __future__ import annotations


class SeamError(Exception):
    """Base of the errors a user can fix; its message says what is wrong and what to do."""


class InputError(SeamError, ValueError):
    """A bad input, setting or dataset."""


class MissingFile(SeamError, FileNotFoundError):
    """A file or folder the command needs is not there."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C while a pipeline stage ran; ``stage`` names it (its outputs resume on a rerun)."""

    def __init__(self, stage: str) -> None:
        super().__init__(stage)
        self.stage = stage
