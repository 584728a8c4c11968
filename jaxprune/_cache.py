"""``cached_factory``: memoize a function that builds (compiled) functions, when it can."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def cached_factory(factory: F) -> F:
    """``functools.lru_cache(factory)`` that calls ``factory`` uncached on unhashable arguments
    (a Flax module with a list field), so caching never changes what is computed.

    A factory returning ``jax.jit``-ed functions built from its arguments makes every later call
    with equal arguments reuse the compiled programs instead of tracing new closures.
    """
    cached = functools.lru_cache(maxsize=32)(factory)

    @functools.wraps(factory)
    def get(*args: Any) -> Any:
        try:
            hash(args)
        except TypeError:
            return factory(*args)
        return cached(*args)

    return get  # type: ignore[return-value]
