"""User-facing errors: the CLI prints their message as one line instead of a traceback."""


class DetboxError(Exception):
    """A mistake the user can fix; the message names the file or key and what to do."""


class ConfigError(DetboxError):
    """A config that cannot be loaded or built."""


class DatasetError(DetboxError):
    """An annotation file or image that cannot be used."""


class CheckpointError(DetboxError):
    """A checkpoint that cannot be read or does not fit the model."""


class TrainingError(DetboxError):
    """Training cannot go on (e.g. a non-finite loss)."""


class ImageReadError(DatasetError):
    """An image file that cannot be read.

    Attributes:
        path: the file.
        reason: why, in a few words: ``missing``, ``permission denied``, ``empty file``,
            ``not an image``, ``truncated``, ``too large``, ``unsupported mode`` or ``corrupt``.
    """

    def __init__(self, path: str, reason: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason
