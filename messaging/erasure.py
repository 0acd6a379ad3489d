"""What an account erasure does to one message (accounts.erasure; docs/accounts.md "Erasing an
account"): one rule, applied to messages in PostgreSQL (messaging.services.messages_erase_batch)
and to the rows of archived days (messaging.archive.erase_user) alike.

- the person's reactions leave every message (a `reaction` change when nothing else changes);
- their own messages lose their sender (shown as "Deleted user"); with ERASURE_MESSAGES=delete they
  also become tombstones: no text, no attachments, no reactions, no mentions (the change is a
  `message.delete`), with `anonymise` the text stays (a `message.update`, change_kind "erased").

The caller gives the changed message its next number and announces it, as for an edit."""

import datetime as dt

from messaging.models import Message

DELETE, ANONYMISE = "delete", "anonymise"
MODES = (DELETE, ANONYMISE)


def reacted(reactions: object, user_id: int) -> bool:
    return isinstance(reactions, list) and any(
        isinstance(user, dict) and user.get("id") == user_id
        for reaction in reactions
        if isinstance(reaction, dict)
        for user in reaction.get("users", ())
    )


def erase_in_message(message: Message, *, user_id: int, mode: str, now: dt.datetime) -> bool:
    """Apply the erasure of `user_id` to `message` in memory. True when it changed."""
    changed = False
    if reacted(message.reactions, user_id):
        kept = [
            {"emoji": r["emoji"], "users": [u for u in r["users"] if u.get("id") != user_id]}
            for r in message.reactions or ()
        ]
        message.reactions = [r for r in kept if r["users"]] or None
        message.change_kind = "reaction"
        changed = True
    if message.sender_id == user_id:
        message.sender = None
        if mode == DELETE:
            if message.deleted_at is None:
                message.deleted_at = now
            message.content, message.attachments, message.reactions, message.mentions = "", None, None, None
            message.change_kind = None
        elif message.deleted_at is None:
            message.change_kind = "erased"  # the text stays; who wrote it does not
        changed = True
    return changed
