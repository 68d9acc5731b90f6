"""Failures an operator can act on. Each one's message is one line: what failed, why and
what to do; the command prints it as `error: <message>` and exits with `exit_code`
(1: the run failed, 2: a usage or configuration error)."""

from __future__ import annotations


class OperatorError(Exception):
    """A failed run the operator can act on (exit code 1)."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


class ConfigurationError(OperatorError):
    """A setting, a path or the environment is wrong; nothing was written (exit code 2)."""

    exit_code = 2


class KeyMismatchError(ConfigurationError):
    """The working state was built with another pseudonym key."""


class RunLockedError(OperatorError):
    """Another run holds the warehouse's working state."""


class PublishedFileLockedError(OperatorError):
    """Another program holds a writing connection on the published file."""


class NothingToIngestError(OperatorError):
    """The landing folder is empty and nothing was ingested before."""


def one_line(text: str) -> str:
    """`text` on a single line (line breaks become spaces)."""
    return " ".join(part.strip() for part in str(text).splitlines() if part.strip())


def exit_codes() -> dict[str, int]:
    """Exit code by class name of every operator error (for errors that crossed a
    process or a Dagster step and arrive as a class name and message)."""
    found, pending = {}, [OperatorError]
    while pending:
        cls = pending.pop()
        found[cls.__name__] = cls.exit_code
        pending.extend(cls.__subclasses__())
    return found
