"""GET /api/v1/search/: full-text search over the messages the user may read (search/selectors.py)."""

from typing import Annotated, TypedDict

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from messaging.params import validated
from rooms.api import WORKSPACE, documented
from rooms.payloads import DateTimeStr, UserPayload, UUIDStr, user_payload
from search import selectors
from search.selectors import Hit, SearchParams
from workspaces import selectors as workspace_selectors


class SnippetSegment(TypedDict):
    text: str
    match: Annotated[bool, "Whether this piece matched the search (shown highlighted)"]


class SearchRoom(TypedDict):
    id: UUIDStr
    name: str
    kind: str


class SearchHit(TypedDict):
    id: UUIDStr
    room: SearchRoom
    sequence: Annotated[int, "The message's position in its room: open the room there"]
    sender: Annotated[UserPayload | None, "Null once the sender's account is gone"]
    created_at: DateTimeStr
    edited_at: DateTimeStr | None
    rank: Annotated[float, "ts_rank_cd of the message for the query (higher is better)"]
    snippet: Annotated[list[SnippetSegment], "Plain text pieces of the message around the matches; never HTML"]


class SearchResults(TypedDict):
    results: list[SearchHit]
    has_more: bool
    next_offset: Annotated[int | None, "The `offset` of the next page, while `has_more`"]
    archived_days_not_searched: Annotated[
        int,
        "Archived days holding messages of the searched rooms (within the dates) that were not searched: "
        "they are no longer in PostgreSQL; restoring a day makes it searchable",
    ]
    archived_days: Annotated[list[str], "Those days (YYYY-MM-DD), newest first, at most 60"]


class SearchQueryParams(serializers.Serializer):
    q = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        help_text=(
            'What to look for: words (stemmed, English), "a phrase", `or`, `-word` to exclude. '
            f"At most {selectors.QUERY_MAX_LENGTH} characters"
        ),
    )
    room = serializers.UUIDField(required=False, help_text="Only this room")
    sender = serializers.IntegerField(min_value=1, required=False, help_text="Only messages of this user (id)")
    from_date = serializers.DateField(required=False, help_text="From this day (UTC, inclusive)")
    to_date = serializers.DateField(required=False, help_text="Up to this day (UTC, inclusive)")
    order = serializers.ChoiceField(["rank", "recent"], default="rank", help_text="Best matches first, or newest first")
    limit = serializers.IntegerField(min_value=1, max_value=selectors.PAGE_MAX, default=20)
    offset = serializers.IntegerField(min_value=0, max_value=selectors.OFFSET_MAX, default=0)

    class Meta:
        ref_name = "SearchQueryParams"


def hit_payload(hit: Hit) -> SearchHit:
    message = hit.message
    return {
        "id": str(message.id),
        "room": {"id": str(hit.room.pk), "name": hit.room.name, "kind": hit.room.kind},
        "sequence": message.sequence,
        "sender": user_payload(message.sender),
        "created_at": message.created_at.isoformat(),
        "edited_at": message.edited_at.isoformat() if message.edited_at else None,
        "rank": hit.rank,
        "snippet": [SnippetSegment(text=s["text"], match=s["match"]) for s in hit.snippet],
    }


class SearchApi(APIView):
    """Messages I may read that match `q`, best first (or newest first), with highlighted snippets.

    Errors for the query: `query_required` (empty), `query_too_long`, `query_no_terms` (only common
    words, punctuation or exclusions); other bad parameters are `invalid` with `fields`; a `room`
    I may not see is `not_found`, a public room I have not joined `not_member`. Deleted messages
    are never found; archived days are not searched and are counted in `archived_days_not_searched`.
    Without `room`, the current workspace's rooms are searched (`workspace`, docs/workspaces.md)."""

    @extend_schema(parameters=[SearchQueryParams, WORKSPACE], responses=documented(SearchResults, 400, 403, 404, 409))
    def get(self, request):
        params = validated(SearchQueryParams, request.query_params)
        workspace = workspace_selectors.membership_for_request(request)
        page = selectors.message_search(
            user=request.user,
            params=SearchParams(q=params.pop("q", ""), workspace_id=workspace.workspace_id, **params),
        )
        return Response(
            SearchResults(
                results=[hit_payload(hit) for hit in page.hits],
                has_more=page.has_more,
                next_offset=page.next_offset,
                archived_days_not_searched=page.archived_days_count,
                archived_days=[day.isoformat() for day in page.archived_days],
            )
        )
