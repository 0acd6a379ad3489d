"""Objects that belong to one event loop: a server process has one loop, tests have one each."""

import asyncio
import weakref
from collections.abc import Callable
from typing import Protocol, TypeVar, cast

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class PerLoop(Protocol[T_co]):
    """What per_loop returns: call it for the running loop's instance (made on first use)."""

    def __call__(self) -> T_co: ...

    def peek(self) -> T_co | None:
        """The running loop's instance if it has one; never makes one."""
        ...


def per_loop(factory: Callable[[], T]) -> PerLoop[T]:
    """A getter that returns the running loop's own `factory()`, made on first use."""
    instances: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    # A plain function, not an object with __call__: the getter runs on every send (it costs a
    # closure call, nothing more); peek() rides on it as an attribute, as PerLoop declares.
    def get() -> T:
        loop = asyncio.get_running_loop()
        instance = instances.get(loop)
        if instance is None:
            instance = instances[loop] = factory()
        return instance

    def peek() -> T | None:
        return instances.get(asyncio.get_running_loop())

    getter = cast(PerLoop[T], get)
    setattr(getter, "peek", peek)  # noqa: B010 - mypy refuses assigning to a Protocol method
    return getter
