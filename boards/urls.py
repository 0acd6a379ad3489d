"""Board routes, spread into /api/v1/ (config/api_urls.py). Engineers adding board endpoints
(history, state, export, comments) add their paths here."""

from django.urls import path

from boards.api import BoardDetailApi, BoardUpdateListApi, RoomBoardListApi

urlpatterns = [
    path("rooms/<str:room_id>/boards/", RoomBoardListApi.as_view(), name="api-room-boards"),
    path("boards/<str:board_id>/", BoardDetailApi.as_view(), name="api-board"),
    path("boards/<str:board_id>/updates/", BoardUpdateListApi.as_view(), name="api-board-updates"),
]
