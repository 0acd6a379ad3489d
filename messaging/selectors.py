from django.conf import settings

from accounts.models import User
from messaging.models import Message
from rooms.selectors import membership_get


def _clamp_limit(limit: int | None) -> int:
    if limit is None:
        return 50
    return max(1, min(int(limit), settings.MESSAGE_PAGE_MAX))


def messages_page(
    *,
    user: User,
    room_id: object,
    after_sequence: int | None = None,
    before_sequence: int | None = None,
    limit: int | None = None,
) -> tuple[list[Message], bool]:
    """A page of a room's messages and whether more exist in that direction.

    `after_sequence` pages forward (oldest first); `before_sequence` pages back (newest first);
    neither gives the newest page, newest first.
    """
    membership = membership_get(room_id=room_id, user=user)
    limit = _clamp_limit(limit)
    messages = Message.objects.filter(room_id=membership.room.pk).select_related("sender")
    if after_sequence is not None:
        messages = messages.filter(sequence__gt=after_sequence).order_by("sequence")
    else:
        if before_sequence is not None:
            messages = messages.filter(sequence__lt=before_sequence)
        messages = messages.order_by("-sequence")
    rows = list(messages[: limit + 1])
    return rows[:limit], len(rows) > limit
