"""The user's-input error of spectac, in a module that imports nothing (the command line needs it
before anything else, and its help should load no numpy)."""


class SpectacError(Exception):
    """An error caused by the user's input: the CLI prints its message as one line and exits 2."""
