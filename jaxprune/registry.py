"""Name -> factory registries: one per kind of thing (criteria, channel criteria, schedules, ...).

  CRITERIA = Registry("criterion")
  CRITERIA.register("snip", snip, data=True)          # metadata travels with the entry
  CRITERIA.get("snip", loss_fn=loss_fn)               # factory(**kwargs), arguments checked
  CRITERIA.names(), "snip" in CRITERIA, CRITERIA.info("snip")["data"]

An unknown name raises ``ValueError`` listing the valid names; arguments the factory does not take
(or required ones missing) raise ``TypeError`` listing what it takes. Imports nothing of jaxprune.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Factories by name, each with a metadata dict (``info``)."""

    def __init__(self, kind: str):
        self.kind = kind
        self._factories: dict[str, Callable[..., T]] = {}
        self._info: dict[str, dict[str, Any]] = {}

    def register(self, name: str, factory: Callable[..., T], **info: Any) -> Callable[..., T]:
        """Add ``factory`` as ``name`` (with metadata ``info``); returns ``factory``."""
        if name in self._factories:
            raise ValueError(f"{self.kind} {name!r} is registered already")
        self._factories[name] = factory
        self._info[name] = dict(info)
        return factory

    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def check(self, name: str) -> str:
        """``name`` if registered, else ``ValueError`` listing the valid names."""
        if name not in self._factories:
            raise ValueError(f"unknown {self.kind} {name!r}; valid names: {self.names()}")
        return name

    def factory(self, name: str) -> Callable[..., T]:
        """The factory registered as ``name``."""
        return self._factories[self.check(name)]

    def info(self, name: str) -> Mapping[str, Any]:
        """The metadata registered with ``name``."""
        return self._info[self.check(name)]

    def get(self, name: str, **factory_kwargs: Any) -> T:
        """``factory(**factory_kwargs)`` for ``name``, after checking the arguments bind.

        Raises:
          ValueError: unknown name (the message lists the valid ones).
          TypeError: missing or unexpected arguments (the message lists the expected ones).
        """
        factory = self.factory(name)
        sig = inspect.signature(factory)
        try:
            sig.bind(**factory_kwargs)
        except TypeError as e:
            required = [
                p.name
                for p in sig.parameters.values()
                if p.default is inspect.Parameter.empty
                and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
            ]
            raise TypeError(
                f"{self.kind} {name!r}: {e}. It takes {list(sig.parameters)} "
                f"(required: {required or 'none'}); got {sorted(factory_kwargs)}"
            ) from None
        return factory(**factory_kwargs)
