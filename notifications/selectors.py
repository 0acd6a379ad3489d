"""Reading the inbox and the levels. A user sees their own items of the rooms they are still in:
another user's item, or one of a room they left, is `not_found` like anything one may not see."""

from django.conf import settings
from django.db.models import QuerySet

from accounts.models import User
from core.errors import InvalidInput, NotFound
from messaging.models import Message
from notifications.models import Notification, RoomSetting
from notifications.payloads import NotificationPayload, RoomLevelPayload, excerpt
from rooms.models import Membership

MAX_ID = 2**63 - 1  # ids are PostgreSQL bigints


def visible_items(user_id: int) -> QuerySet[Notification]:
    """The user's items in the rooms they are in now."""
    return Notification.objects.filter(
        user_id=user_id, room_id__in=Membership.objects.filter(user_id=user_id).values("room_id")
    )


def unread_count(*, user: User) -> int:
    return visible_items(user.pk).filter(read_at__isnull=True).count()


def _cursor(before: object) -> int | None:
    if before is None or before == "":
        return None
    try:
        value = int(str(before))
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_ID:
        raise InvalidInput("before must be a cursor from a previous page.", fields={"before": ["Not a cursor."]})
    return value


def notifications_page(
    *, user: User, before: object = None, limit: int | None = None, unread_only: bool = False
) -> tuple[list[NotificationPayload], str | None]:
    """A page of the inbox, newest first, and the cursor of the next (older) page, or None.

    The items show each message as it is now (its text, or deleted); the messages of a page are
    read in one query."""
    limit = max(1, min(int(limit or 50), settings.NOTIFICATION_PAGE_MAX))
    items = visible_items(user.pk).select_related("room", "actor").order_by("-id")
    cursor = _cursor(before)
    if cursor is not None:
        items = items.filter(id__lt=cursor)
    if unread_only:
        items = items.filter(read_at__isnull=True)
    rows = list(items[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    messages = {
        m.id: m
        for m in Message.objects.filter(
            id__in=[item.message_id for item in rows], created_at__in={item.message_created_at for item in rows}
        ).only("id", "room", "sequence", "content", "reply_to", "deleted_at", "created_at")
    }
    return [item_payload(item, messages.get(item.message_id)) for item in rows], (str(rows[-1].pk) if more else None)


def item_payload(item: Notification, message: Message | None) -> NotificationPayload:
    """An item; `message` None when it is no longer in PostgreSQL (an archived day)."""
    deleted = message is not None and message.deleted_at is not None
    actor = item.actor
    return {
        "id": item.pk,
        "kind": item.kind,  # type: ignore[typeddict-item]  # one of Notification.Kind
        "room": {"id": str(item.room_id), "name": item.room.name, "kind": item.room.kind},
        "message": {
            "id": str(item.message_id),
            "sequence": message.sequence if message is not None else 0,
            "reply_to": str(message.reply_to) if message is not None and message.reply_to else None,
            "excerpt": excerpt(message.content) if message is not None and not deleted else "",
            "deleted": deleted,
        },
        "actor": {"id": actor.pk, "username": actor.username} if actor is not None else None,
        "created_at": item.created_at.isoformat(),
        "read": item.read_at is not None,
    }


def notification_get(*, user: User, notification_id: object) -> Notification:
    """One of the user's visible items; anything else (missing, someone else's, a room the user
    left, not an id) is not_found."""
    try:
        pk = int(str(notification_id))
    except ValueError:
        raise NotFound() from None
    if not 1 <= pk <= MAX_ID:
        raise NotFound()
    item = visible_items(user.pk).select_related("room", "actor").filter(pk=pk).first()
    if item is None:
        raise NotFound()
    return item


def item_message(item: Notification) -> Message | None:
    return (
        Message.objects.filter(id=item.message_id, created_at=item.message_created_at)
        .only("id", "room", "sequence", "content", "reply_to", "deleted_at", "created_at")
        .first()
    )


def room_levels(*, user: User) -> list[RoomLevelPayload]:
    """The user's level in each of their rooms (the default, `mentions`, where none was chosen)."""
    chosen = dict(RoomSetting.objects.filter(user=user).values_list("room_id", "level"))
    rooms = Membership.objects.filter(user=user).order_by("room_id").values_list("room_id", flat=True)
    return [
        {"room": str(room_id), "level": chosen.get(room_id, RoomSetting.Level.MENTIONS)}  # type: ignore[typeddict-item]
        for room_id in rooms
    ]
