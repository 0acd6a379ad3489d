"""Template context shared by every page."""

from django.conf import settings

from presence.services import TYPING_INTERVAL_MS
from rooms import access


def client_config(request):
    """Limits and intervals the server enforces, for the page's scripts: templates/base.html renders
    them with json_script as #client-config, so the JavaScript never keeps copies of its own."""
    return {
        "client_config": {
            "message_max_length": settings.MESSAGE_MAX_LENGTH,
            "message_page_max": settings.MESSAGE_PAGE_MAX,
            "typing_interval_ms": TYPING_INTERVAL_MS,
            "roles": access.role_abilities(),
        }
    }
