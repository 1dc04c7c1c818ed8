"""The one exception type users see: its message is a complete one-line explanation."""


class LensrError(Exception):
    """A problem with the user's input (config, file, argument), reported in one line."""
