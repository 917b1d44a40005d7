"""Every mistake of a configuration at once: `ConfigErrors` and the `Problems` that gathers them.

A newcomer with three bad pools should hear about three, not fix one and run again. The loader checks each
object (and each address of a pool) on its own, gathering what each check raises; when it is done, one
mistake is raised as itself (the message a single mistake always had) and several as `ConfigErrors`, still a
ConfigError, so whoever keeps the last good configuration on a ConfigError keeps doing so.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from metallb_py.errors import ConfigError

__all__ = ["ConfigErrors", "Problems", "each_error"]


class ConfigErrors(ConfigError):  # noqa: N818 (several ConfigErrors: the plural names it)
    """Several mistakes in one configuration; `errors` holds each, in the order found, its message naming
    the object, the source and the field as a single ConfigError's does."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        self.errors: tuple[ConfigError, ...] = tuple(each for error in errors for each in each_error(error))
        lines = "\n".join(f"- {error}" for error in self.errors)
        super().__init__(f"{len(self.errors)} mistakes in the configuration:\n{lines}")

    def __reduce__(self) -> tuple[type[ConfigErrors], tuple[tuple[ConfigError, ...]]]:
        return type(self), (self.errors,)


def each_error(error: ConfigError) -> tuple[ConfigError, ...]:
    """The single mistakes `error` stands for: its `errors` for a ConfigErrors, else itself."""
    return error.errors if isinstance(error, ConfigErrors) else (error,)


class Problems:
    """Gathers the ConfigErrors of independent checks (`with problems.each(): ...`), then raises them
    together (`raise_any`)."""

    __slots__ = ("errors",)

    def __init__(self) -> None:
        self.errors: list[ConfigError] = []

    def __bool__(self) -> bool:
        return bool(self.errors)

    @contextmanager
    def each(self) -> Iterator[None]:
        """One check: a ConfigError it raises is kept, and the code after the `with` block goes on."""
        try:
            yield
        except ConfigError as exc:
            self.errors += each_error(exc)

    def add(self, error: ConfigError) -> None:
        self.errors += each_error(error)

    def raise_any(self) -> None:
        """Nothing when no check failed; the one mistake as itself; several as ConfigErrors."""
        if len(self.errors) == 1:
            raise self.errors[0]
        if self.errors:
            raise ConfigErrors(self.errors)
