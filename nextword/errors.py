"""The exceptions nextword raises for people: each message is one line saying what went wrong and what to do.

Only the CLI catches them; it prints the message and exits with code 2 (bad input)."""


class NextwordError(Exception):
    """Base class: a problem the user can fix, with a one-line message that says how."""


class ConfigError(NextwordError):
    """An option, from a flag or a YAML file, is unknown or out of range."""


class CorpusError(NextwordError):
    """A corpus file cannot be used for training or evaluation."""


class ModelDirError(NextwordError):
    """A model directory is missing, incomplete, from a newer version, or unsafe to load."""


class WriteError(NextwordError):
    """A file could not be written (a full disk, no permission); the file it was to replace is unchanged."""


class TrainingInterrupted(NextwordError):
    """Training was stopped by a signal after saving a checkpoint it can resume from."""


class TrainingDiverged(NextwordError):
    """The loss stopped being a finite number; the last good checkpoint was kept."""


class ExportError(NextwordError):
    """A model cannot be exported in the format asked for."""
