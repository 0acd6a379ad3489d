"""Server-rendered pages. Writes go through rooms.services, like the REST API."""

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.timesince import timesince
from django.views.decorators.http import require_GET, require_POST

from core.errors import ApplicationError, NotFound
from rooms import access, selectors, services
from rooms.models import OPEN_ROOM_KINDS, Membership, Room
from rooms.payloads import room_payload, user_payload
from workspaces import selectors as workspace_selectors
from workspaces.views import no_workspace_page, remember


class RoomForm(forms.Form):
    name = forms.CharField(max_length=Room.NAME_MAX_LENGTH)
    topic = forms.CharField(max_length=Room.TOPIC_MAX_LENGTH, required=False)
    kind = forms.ChoiceField(choices=OPEN_ROOM_KINDS)


class RoomSettingsForm(RoomForm):
    topic = forms.CharField(max_length=Room.TOPIC_MAX_LENGTH, required=False, widget=forms.Textarea(attrs={"rows": 2}))


class InviteForm(forms.Form):
    user = forms.CharField(max_length=150, label="Username")
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)


REFUSED = object()


def _attempt(request: HttpRequest, action: Callable[[], Any]) -> Any:
    """Run a service for a page: its result, or REFUSED once the reason is queued for the next page."""
    try:
        return action()
    except ApplicationError as error:
        messages.error(request, error.message)
        return REFUSED


@dataclass(frozen=True)
class RoomRow:
    """A room as the page lists it: its title (a direct room's is the other person), and a hint
    that tells it apart from my other rooms of the same name (docs/rooms-ui.md)."""

    room: Room
    title: str
    hint: str
    summary: selectors.RoomSummary
    role: str | None = None

    @property
    def activity(self) -> str:
        at = self.summary.last_message_at
        if at is None:
            return "no recent messages"
        if timezone.now() - at < timedelta(minutes=1):
            return "last message just now"
        return f"last message {timesince(at)} ago"


def _room_rows(rooms: Iterable[Room], user, roles: dict | None = None) -> list[RoomRow]:
    rooms = list(rooms)
    summaries = selectors.room_summaries(rooms=rooms, user=user)
    titles = {room.pk: summaries[room.pk].direct_with or room.name for room in rooms}
    clashes = Counter(title.casefold() for title in titles.values())
    rows = []
    for room in rooms:
        hint = ""
        if clashes[titles[room.pk].casefold()] > 1:
            creator = room.created_by.username if room.created_by_id and room.created_by else None
            hint = room.topic or (f"by {creator}" if creator else f"since {room.created_at:%d %b %Y}")
        rows.append(RoomRow(room, titles[room.pk], hint, summaries[room.pk], (roles or {}).get(room.pk)))
    return rows


def _my_room_rows(user, workspace_id: int) -> list[RoomRow]:
    memberships = list(selectors.room_list_for_user(user=user, workspace_id=workspace_id))
    rows = _room_rows([m.room for m in memberships], user, {m.room_id: m.role for m in memberships})
    return sorted(rows, key=lambda row: (row.title.casefold(), str(row.room.pk)))  # as titled, like sidebar.js


def _workspaces(request, current_id: int) -> dict[str, Any]:
    """The switcher's context: my workspaces and the current one (templates/includes/workspace_switcher.html)."""
    mine = list(workspace_selectors.workspace_list_for_user(user=request.user))
    current = next((m for m in mine if m.workspace_id == current_id), None)
    return {"workspaces": mine, "current_workspace": current}


def _visible(room_id, user):
    try:
        return selectors.room_get_visible(room_id=room_id, user=user)
    except NotFound:
        raise Http404 from None


@require_GET
@login_required
def home(request):
    """My rooms and the public rooms of my current workspace (the session's, else my first); a
    page to create a workspace or accept an invitation when I am in none."""
    try:
        workspace = workspace_selectors.membership_for_request(request)
    except workspace_selectors.NoWorkspace:
        return no_workspace_page(request)
    except NotFound:  # ?workspace= names one I am not in
        raise Http404 from None
    return render(
        request,
        "rooms/home.html",
        {
            "my_rooms": _my_room_rows(request.user, workspace.workspace_id),
            "discover": _room_rows(
                selectors.room_list_public(user=request.user, workspace=workspace)[:50], request.user
            ),
            "form": RoomForm(initial={"kind": Room.Kind.PUBLIC}),
            "me_json": user_payload(request.user),
            **_workspaces(request, workspace.workspace_id),
        },
    )


@require_POST
@login_required
def room_create(request):
    form = RoomForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"A room needs a name of at most {Room.NAME_MAX_LENGTH} characters.")
        return redirect("home")
    room = _attempt(
        request,
        lambda: services.room_create(
            creator=request.user, workspace=workspace_selectors.membership_for_request(request), **form.cleaned_data
        ),
    )
    return redirect("home") if room is REFUSED else redirect("room", room_id=room.pk)


@require_POST
@login_required
def direct_open(request):
    try:
        workspace = workspace_selectors.membership_for_request(request)
        other = selectors.user_find(user_ref=request.POST.get("user", "").strip(), workspace_id=workspace.workspace_id)
        room, _ = services.direct_room_get_or_create(user=request.user, other=other, workspace=workspace)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("home")
    return redirect("room", room_id=room.pk)


@require_GET
@login_required
def room_detail(request, room_id):
    room, membership = _visible(room_id, request.user)
    if membership is None:  # a public room the user has not joined: show it with a join button
        return render(request, "rooms/preview.html", {"room": room})
    members = list(selectors.room_members(room=room))
    remember(request, room.workspace_id)  # a room's page shows its workspace's rooms beside it
    my_rooms = _my_room_rows(request.user, room.workspace_id)
    this = next(row for row in my_rooms if row.room.pk == room.pk)
    return render(
        request,
        "rooms/room.html",
        {
            "room": room,
            "title": this.title,
            "is_direct": room.kind == Room.Kind.DIRECT,
            "membership": membership,
            "members": members,
            "my_rooms": my_rooms,
            "invite_form": InviteForm(),
            "settings_form": RoomSettingsForm(initial={"name": room.name, "topic": room.topic, "kind": room.kind}),
            "can": access.role_abilities()[membership.role],
            "room_json": room_payload(room, role=membership.role),
            "me_json": user_payload(request.user),
            **_workspaces(request, room.workspace_id),
        },
    )


@require_POST
@login_required
def room_join(request, room_id):
    room, _ = _visible(room_id, request.user)
    if _attempt(request, lambda: services.room_join(room=room, user=request.user)) is REFUSED:
        return redirect("home")
    return redirect("room", room_id=room.pk)


@require_POST
@login_required
def room_leave(request, room_id):
    """Leave (after the page's confirmation); the last owner names the next owner (`new_owner`)."""
    room, membership = _visible(room_id, request.user)
    if membership is None:
        return redirect("home")

    def leave() -> None:
        ref = request.POST.get("new_owner", "").strip()
        new_owner = selectors.user_find(user_ref=ref, workspace_id=room.workspace_id) if ref else None
        services.room_leave(membership=membership, new_owner=new_owner)

    if _attempt(request, leave) is REFUSED:
        return redirect("room", room_id=room.pk)
    messages.success(request, f"You left {room.name}.")
    return redirect("home")


@require_POST
@login_required
def room_settings(request, room_id):
    """Rename, change the topic or the kind: owners and admins (rooms.services.room_update)."""
    room, membership = _visible(room_id, request.user)
    if membership is None:
        raise Http404
    form = RoomSettingsForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"A room needs a name of at most {Room.NAME_MAX_LENGTH} characters and a kind.")
        return redirect("room", room_id=room.pk)
    membership.room = room
    if _attempt(request, lambda: services.room_update(actor=membership, **form.cleaned_data)) is not REFUSED:
        messages.success(request, "Room settings saved.")
    return redirect("room", room_id=room.pk)


@require_POST
@login_required
def room_delete(request, room_id):
    """Delete the room and its history: its owner only (rooms.services.room_delete)."""
    room, membership = _visible(room_id, request.user)
    if membership is None:
        raise Http404
    membership.room = room
    if _attempt(request, lambda: services.room_delete(actor=membership)) is REFUSED:
        return redirect("room", room_id=room.pk)
    messages.success(request, f"{room.name} was deleted.")
    return redirect("home")


@require_POST
@login_required
def member_invite(request, room_id):
    room, membership = _visible(room_id, request.user)
    if membership is None:
        raise Http404
    form = InviteForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Enter a username and a role.")
        return redirect("room", room_id=room.pk)

    def invite() -> None:
        user = selectors.user_find(user_ref=form.cleaned_data["user"].strip(), workspace_id=room.workspace_id)
        services.membership_add(actor=membership, user=user, role=form.cleaned_data["role"])
        messages.success(request, f"{user.username} can now see this room.")

    _attempt(request, invite)
    return redirect("room", room_id=room.pk)
