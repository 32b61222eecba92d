"""The one exception type for mistakes a user can fix (bad input, wrong file, bad config).

The CLI prints these as a single line and exits non-zero; anything else is a bug and keeps its traceback.
"""


class StochliftError(Exception):
    """A user-facing error: the message alone must say what is wrong and how to fix it."""
