"""Objects that belong to one event loop: a server process has one loop, tests have one each."""

import asyncio
import weakref
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def per_loop(factory: Callable[[], T]) -> Callable[[], T]:
    """A getter that returns the running loop's own `factory()`, made on first use."""
    instances: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, T] = weakref.WeakKeyDictionary()

    def get() -> T:
        loop = asyncio.get_running_loop()
        instance = instances.get(loop)
        if instance is None:
            instance = instances[loop] = factory()
        return instance

    def peek() -> T | None:
        """The running loop's instance if it has one; never makes one."""
        return instances.get(asyncio.get_running_loop())

    get.peek = peek
    return get
