"""Board routes, spread into /api/v1/ (config/api_urls.py). Engineers adding board endpoints
(history, state, export, comments) add their paths here."""

from django.urls import path

from boards.api import BoardAwarenessApi, BoardDetailApi, BoardUpdateListApi, RoomBoardListApi
from boards.api_history import (
    BoardCommentDetailApi,
    BoardCommentListApi,
    BoardExportApi,
    BoardHistoryApi,
    BoardStateApi,
)

urlpatterns = [
    path("rooms/<str:room_id>/boards/", RoomBoardListApi.as_view(), name="api-room-boards"),
    path("boards/<str:board_id>/", BoardDetailApi.as_view(), name="api-board"),
    path("boards/<str:board_id>/updates/", BoardUpdateListApi.as_view(), name="api-board-updates"),
    path("boards/<str:board_id>/awareness/", BoardAwarenessApi.as_view(), name="api-board-awareness"),
    path("boards/<str:board_id>/history/", BoardHistoryApi.as_view(), name="api-board-history"),
    path("boards/<str:board_id>/state/", BoardStateApi.as_view(), name="api-board-state"),
    path("boards/<str:board_id>/export/", BoardExportApi.as_view(), name="api-board-export"),
    path("boards/<str:board_id>/comments/", BoardCommentListApi.as_view(), name="api-board-comments"),
    path(
        "boards/<str:board_id>/comments/<str:comment_id>/",
        BoardCommentDetailApi.as_view(),
        name="api-board-comment",
    ),
]
