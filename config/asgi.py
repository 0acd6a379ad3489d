import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()  # set up Django before importing consumers

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

from accounts.middleware import SocketAuthMiddleware  # noqa: E402
from core import health  # noqa: E402
from core.hub import get_hub  # noqa: E402
from messaging.consumers import ChatConsumer  # noqa: E402

websocket_urlpatterns = [path("ws/", ChatConsumer.as_asgi())]

router = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SocketAuthMiddleware(URLRouter(websocket_urlpatterns)),
    }
)


async def application(scope, receive, send):
    if scope["type"] == "http" and scope["path"] in health.PATHS:  # before Django (core/health.py)
        return await health.serve(scope, receive, send)
    # This loop serves: the events it publishes go through its hub (core.events), which keeps
    # one Redis connection for them rather than one per publish.
    get_hub()
    await router(scope, receive, send)


# Everything loaded so far lives as long as the process: keep it out of the cyclic collector's
# full passes, whose pauses grow with the heap and show up as latency spikes under load.
gc.freeze()
