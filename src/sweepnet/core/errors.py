"""The exceptions the CLI turns into one line: :class:`SweepnetError` (exit code 2) and
:class:`Interrupted` (a sweep stopped by Ctrl-C or SIGTERM: 130 or 143)."""

import signal


class SweepnetError(Exception):
    """Bad user input: a spec key, a value, a file or a results folder.

    The message is one line and names what is wrong (``spec.toml: model.width: ...``).
    """


class Interrupted(KeyboardInterrupt):
    """A sweep stopped by signal ``signum`` (SIGINT: Ctrl-C; SIGTERM: a scheduler's
    pre-emption), its finished parts written and its manifest saying so.

    ``message`` is the line the CLI prints last; ``code`` its exit status (128 + the signal:
    130, 143). A ``KeyboardInterrupt``, so code that catches Ctrl-C catches it too.
    """

    def __init__(self, signum: int, message: str = ""):
        self.signum = signum
        self.name = "interrupted" if signum == signal.SIGINT else "terminated"
        self.message = message or f"{self.name} ({signal.Signals(signum).name})"
        super().__init__(self.message)

    @property
    def code(self) -> int:
        return 128 + self.signum
