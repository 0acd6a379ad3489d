"""Server-rendered pages. Writes go through rooms.services, like the REST API."""

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from core.errors import ApplicationError, NotFound
from rooms import access, selectors, services
from rooms.models import OPEN_ROOM_KINDS, Membership, Room
from rooms.payloads import room_payload, user_payload


class RoomForm(forms.Form):
    name = forms.CharField(max_length=Room.NAME_MAX_LENGTH)
    topic = forms.CharField(max_length=Room.TOPIC_MAX_LENGTH, required=False)
    kind = forms.ChoiceField(choices=OPEN_ROOM_KINDS)


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


def _visible(room_id, user):
    try:
        return selectors.room_get_visible(room_id=room_id, user=user)
    except NotFound:
        raise Http404 from None


@require_GET
@login_required
def home(request):
    memberships = selectors.room_list_for_user(user=request.user)
    return render(
        request,
        "rooms/home.html",
        {
            "memberships": memberships,
            "discover": selectors.room_list_public(user=request.user)[:50],
            "form": RoomForm(initial={"kind": Room.Kind.PUBLIC}),
        },
    )


@require_POST
@login_required
def room_create(request):
    form = RoomForm(request.POST)
    if not form.is_valid():
        messages.error(request, f"A room needs a name of at most {Room.NAME_MAX_LENGTH} characters.")
        return redirect("home")
    room = _attempt(request, lambda: services.room_create(creator=request.user, **form.cleaned_data))
    return redirect("home") if room is REFUSED else redirect("room", room_id=room.pk)


@require_POST
@login_required
def direct_open(request):
    try:
        other = selectors.user_find(user_ref=request.POST.get("user", "").strip())
        room, _ = services.direct_room_get_or_create(user=request.user, other=other)
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
    members = selectors.room_members(room=room)
    return render(
        request,
        "rooms/room.html",
        {
            "room": room,
            "membership": membership,
            "members": members,
            "memberships": selectors.room_list_for_user(user=request.user),
            "invite_form": InviteForm(),
            "can": access.role_abilities()[membership.role],
            "room_json": room_payload(room, role=membership.role),
            "me_json": user_payload(request.user),
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
    room, membership = _visible(room_id, request.user)
    if membership is not None and _attempt(request, lambda: services.room_leave(membership=membership)) is REFUSED:
        return redirect("room", room_id=room.pk)
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
        user = selectors.user_find(user_ref=form.cleaned_data["user"].strip())
        services.membership_add(actor=membership, user=user, role=form.cleaned_data["role"])
        messages.success(request, f"{user.username} can now see this room.")

    _attempt(request, invite)
    return redirect("room", room_id=room.pk)
