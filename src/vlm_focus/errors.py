"""The exceptions vlm-focus raises for bad input. All derive from :class:`VlmFocusError`."""


class VlmFocusError(Exception):
    """Base class: a problem with what the user asked for, explained in the message."""


class ImageError(VlmFocusError, ValueError):
    """The image is missing, unreadable, corrupt, too small or too large."""


class InputError(VlmFocusError, ValueError):
    """A question, option or argument is invalid."""


class OutputError(InputError):
    """An output file or folder cannot be written (read-only, disk full, in the way); what was
    already written is left as it was."""


class ModelError(VlmFocusError):
    """The model cannot be loaded, or cannot do what is asked (e.g. it takes no images)."""


class MethodError(VlmFocusError):
    """A method cannot be applied to this model, or its optimisation broke down (NaN/inf)."""


class DataError(VlmFocusError):
    """A dataset file is missing or not in the published layout."""
