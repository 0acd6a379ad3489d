"""The board page (/rooms/<room>/boards/<board>/). Everything on it happens over the socket and the
REST API (docs/protocol.md, Boards); the page only hands static/js/board/page.js the board, the
reader and their role in the room."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from boards.models import Board
from core.errors import NotFound
from rooms import selectors
from rooms.payloads import user_payload


@require_GET
@login_required
def board_page(request, room_id, board_id) -> HttpResponse:
    try:
        room, membership = selectors.room_get_visible(room_id=room_id, user=request.user)
    except NotFound:
        raise Http404 from None
    if membership is None:  # a public room one has not joined: its page offers to join
        return redirect("room", room_id=room.pk)
    board = Board.objects.filter(pk=board_id, room=room).first()
    if board is None:
        raise Http404
    data = {
        "board": {
            "id": str(board.pk),
            "room": str(room.pk),
            "title": board.title,
            "created_by": user_payload(board.created_by),
        },
        "me": user_payload(request.user),
        "role": membership.role,
    }
    context = {"room": room, "board": board, "membership": membership, "board_json": data}
    return render(request, "boards/board.html", context)
