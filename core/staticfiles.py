"""WhiteNoise (static files), as a middleware that also runs on the event loop.

WhiteNoise 6's middleware is synchronous only. Under ASGI, Django then runs it, and everything
after it in MIDDLEWARE down to the view, from a worker thread that waits for the async rest
(sync_to_async around WhiteNoise, async_to_sync inside it): every request pays two thread hops,
and a request that waits (a long-poll, 25 s; transports/) holds that thread blocked for as long as
it waits. This subclass is async capable: on the loop, a request for no static file goes straight
on (a dictionary lookup); a static file is opened in a thread, as before.
"""

from collections.abc import Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest
from whitenoise.middleware import WhiteNoiseMiddleware as SyncWhiteNoiseMiddleware  # type: ignore[import-untyped]


class WhiteNoiseMiddleware(SyncWhiteNoiseMiddleware):
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable, *args: Any, **kwargs: Any) -> None:
        super().__init__(get_response, *args, **kwargs)
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.async_mode:
            return self._acall(request)
        return super().__call__(request)

    def _static_response(self, request: HttpRequest) -> Any:
        static_file = self.find_file(request.path_info) if self.autorefresh else self.files.get(request.path_info)
        return None if static_file is None else self.serve(static_file, request)

    async def _acall(self, request: HttpRequest) -> Any:
        if self.autorefresh:  # DEBUG: looked up on disk at each request
            response = await sync_to_async(self._static_response, thread_sensitive=False)(request)
        elif request.path_info in self.files:
            response = await sync_to_async(self._static_response, thread_sensitive=False)(request)
        else:
            response = None
        if response is not None:
            return response
        return await self.get_response(request)
