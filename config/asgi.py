import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()  # set up Django before importing consumers

from channels.security.websocket import WebsocketDenier  # noqa: E402

from accounts.middleware import SocketAuthMiddleware  # noqa: E402
from core import health, threads  # noqa: E402
from core.hub import get_hub  # noqa: E402
from messaging.consumers import ChatConsumer  # noqa: E402

SOCKET_PATH = "/ws/"  # the one WebSocket (docs/protocol.md)
# Called straight from application(), without Channels' routers: a socket's call stack lives as
# long as the socket, and ProtocolTypeRouter and URLRouter kept a frame each on it, URLRouter
# also its own copy of the scope (~1.3 KB a socket; docs/performance.md). Another path is
# refused (403) before anything is read.
socket_app = SocketAuthMiddleware(ChatConsumer.as_asgi())
# HTTP: Django's handler, each request's sync code on a thread kept between requests (core/threads.py).
http_app = threads.serve(django_asgi_app)


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["path"] in health.PATHS:  # before Django (core/health.py)
        return await health.serve(scope, receive, send)
    # This loop serves: the events it publishes go through its hub (core.events), which keeps
    # one Redis connection for them rather than one per publish.
    get_hub()
    if scope["type"] == "websocket":
        if scope["path"] != scope.get("root_path", "") + SOCKET_PATH:
            return await WebsocketDenier()(scope, receive, send)
        return await socket_app(scope, receive, send)
    await http_app(scope, receive, send)  # HTTP; Django refuses any other type


# Everything loaded so far lives as long as the process: keep it out of the cyclic collector's
# full passes, whose pauses grow with the heap and show up as latency spikes under load.
gc.freeze()
# And make those passes rarer: with Python's default (a young collection every 700 net
# allocations), a worker taking 5,000 new sockets ran a full pass every 1-2 s, each 0.1-0.7 s
# long (the sockets' objects are long-lived and the heap grows). Every 10,000 allocations:
# connects 649 -> 774 a second, 58 -> 4 full passes in the run, chat at 1,000 msg/s 6-8 % less
# server CPU at the same latency (docs/performance.md, "connecting in batches").
gc.set_threshold(10_000, 10, 10)
