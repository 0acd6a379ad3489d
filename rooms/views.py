"""Server-rendered pages. Writes go through rooms.services, like the REST API."""

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from core.errors import ApplicationError, NotFound
from rooms import selectors, services
from rooms.models import Membership, Room
from rooms.payloads import room_payload


class RoomForm(forms.Form):
    name = forms.CharField(max_length=80)
    topic = forms.CharField(max_length=250, required=False)
    kind = forms.ChoiceField(choices=[(Room.Kind.PUBLIC, "Public"), (Room.Kind.PRIVATE, "Private")])


class InviteForm(forms.Form):
    user = forms.CharField(max_length=150, label="Username")
    role = forms.ChoiceField(choices=Membership.Role.choices, initial=Membership.Role.MEMBER)


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
    if form.is_valid():
        try:
            room = services.room_create(creator=request.user, **form.cleaned_data)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            return redirect("room", room_id=room.pk)
    else:
        messages.error(request, "A room needs a name of at most 80 characters.")
    return redirect("home")


@require_POST
@login_required
def direct_open(request):
    try:
        other = selectors.user_find(user_ref=request.POST.get("user", "").strip())
        room = services.direct_room_get_or_create(user=request.user, other=other)
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
            "room_json": room_payload(room, role=membership.role),
            "me_json": {"id": request.user.pk, "username": request.user.username},
        },
    )


@require_POST
@login_required
def room_join(request, room_id):
    room, _ = _visible(room_id, request.user)
    try:
        services.room_join(room=room, user=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
        return redirect("home")
    return redirect("room", room_id=room.pk)


@require_POST
@login_required
def room_leave(request, room_id):
    room, membership = _visible(room_id, request.user)
    if membership is not None:
        try:
            services.room_leave(membership=membership)
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect("room", room_id=room.pk)
    return redirect("home")


@require_POST
@login_required
def member_invite(request, room_id):
    room, membership = _visible(room_id, request.user)
    if membership is None:
        raise Http404
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            user = selectors.user_find(user_ref=form.cleaned_data["user"].strip())
            services.membership_add(actor=membership, user=user, role=form.cleaned_data["role"])
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"{user.username} can now see this room.")
    else:
        messages.error(request, "Enter a username and a role.")
    return redirect("room", room_id=room.pk)
