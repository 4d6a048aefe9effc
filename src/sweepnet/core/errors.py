"""The one exception type that the CLI turns into a one-line error and exit code 2."""


class SweepnetError(Exception):
    """Bad user input: a spec key, a value, a file or a results folder.

    The message is one line and names what is wrong (``spec.toml: model.width: ...``).
    """
