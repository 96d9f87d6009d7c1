"""The base of every error that reports bad input (config, MJCF, checkpoint, cache dir).

Entry points catch `UserError`, print its one-line message and exit with status 2,
before anything compiles; any other exception is a bug and keeps its traceback.
"""


class UserError(ValueError):
    """Bad input; the message names what is wrong in one line."""
