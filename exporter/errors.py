"""The one error root of tgexport. The CLI turns these into `Error:` / `Hint:` lines."""

from __future__ import annotations


class TgExportError(Exception):
    """A problem the user can act on. `hint` says what to do; `exit_code` is the CLI's."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, **fields: object) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.fields = fields

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple:
        # Keep the hint when the error crosses a process boundary (worker -> driver).
        return (_rebuild, (self.__class__, self.message, self.hint, self.fields))


def _rebuild(cls: type[TgExportError], message: str, hint: str | None, fields: dict) -> TgExportError:
    return cls(message, hint, **fields)


class InputError(TgExportError):
    """An input file cannot be read as a whole (truncated, not a dump, missing)."""


class OutputError(TgExportError):
    """The output location cannot be written."""


class UsageError(TgExportError):
    """Options that do not fit together."""

    exit_code = 2


class SchemaError(TgExportError):
    """The JSON Schema uses a construct the Arrow derivation does not support."""
