"""The parameters of history and sync reads, validated by the same code over REST (query
strings) and on the socket (frame fields): the same rules, defaults and `invalid` errors."""

from typing import Any

from django.conf import settings
from rest_framework import serializers

from core.errors import InvalidInput


class HistoryParams(serializers.Serializer):
    """A page of a room's timeline: `after_sequence` pages forward (oldest first),
    `before_sequence` back (newest first), neither gives the newest page."""

    after_sequence = serializers.IntegerField(min_value=0, required=False)
    before_sequence = serializers.IntegerField(min_value=1, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=settings.MESSAGE_PAGE_MAX, default=50)

    def validate(self, attrs: dict) -> dict:
        if "after_sequence" in attrs and "before_sequence" in attrs:
            raise serializers.ValidationError("Use after_sequence or before_sequence, not both.")
        return attrs


class ChangesParams(serializers.Serializer):
    """Sync: every change after `after_sequence`, in pages of `limit`."""

    after_sequence = serializers.IntegerField(min_value=0)
    limit = serializers.IntegerField(
        min_value=1, max_value=settings.MESSAGE_PAGE_MAX, default=settings.MESSAGE_PAGE_MAX
    )


def validated(params: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """`data` checked against `params`; bad input raises `invalid` with the field errors."""
    serializer = params(data=data)
    if not serializer.is_valid():
        errors = serializer.errors
        raise InvalidInput(fields={name: [str(message) for message in messages] for name, messages in errors.items()})
    return dict(serializer.validated_data)
