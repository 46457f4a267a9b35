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
