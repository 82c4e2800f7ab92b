"""One family of errors, turned into one line and an exit code at the CLI edge."""

from __future__ import annotations

from collections.abc import Sequence


class EdgekitError(Exception):
    """A problem the user can fix: `message` says what is wrong, `hint` how to fix it."""

    exit_code = 2

    def __init__(self, message: str, hint: str = "", report: object | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.report = report  # the measurement behind a failure, for callers that want to show it

    def one_line(self) -> str:
        text = self.message.rstrip(".")
        return f"{text}. {self.hint}" if self.hint else text


class InputError(EdgekitError):
    """Bad file, bad option or bad data: exit 2."""


class UnsupportedModelError(EdgekitError):
    """The model uses something the compiler cannot handle: exit 2."""


class ArtifactError(EdgekitError):
    """An artifact is missing, incomplete or tampered with: exit 2."""


class GateFailure(EdgekitError):
    """A measured result missed its threshold (export parity, accuracy budget, a check's gates): exit 1.

    `failures` holds one line per missed gate, by default the message and hint as one line; the
    CLI prints each as `edgekit: gate failed: LINE`, the one form every gate failure takes.
    """

    exit_code = 1

    def __init__(self, message: str, hint: str = "", report: object | None = None, failures: Sequence[str] = ()) -> None:
        super().__init__(message, hint, report)
        self.failures = tuple(failures) or (self.one_line(),)


def first_line(exc: BaseException) -> str:
    """The first non-empty line of an exception's message (Python libraries lead with the point)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def last_line(exc: BaseException) -> str:
    """The last non-empty line of an exception's message (TVM errors end with the point)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
