"""Simulator routes, spread into /api/v1/ (config/api_urls.py)."""

from django.urls import path

from simulator.api import (
    BoardDesignApi,
    BoardFromTemplateApi,
    BoardRunListApi,
    PaletteApi,
    RunCancelApi,
    RunCompareApi,
    RunCsvApi,
    RunDetailApi,
    RunExportApi,
    RunFaultApi,
    TemplateListApi,
)

urlpatterns = [
    path("simulator/palette/", PaletteApi.as_view(), name="api-simulator-palette"),
    path("simulator/templates/", TemplateListApi.as_view(), name="api-simulator-templates"),
    path("rooms/<str:room_id>/boards/from-template/", BoardFromTemplateApi.as_view(), name="api-board-from-template"),
    path("boards/<str:board_id>/design/", BoardDesignApi.as_view(), name="api-board-design"),
    path("boards/<str:board_id>/simulations/", BoardRunListApi.as_view(), name="api-board-simulations"),
    path("simulations/compare/", RunCompareApi.as_view(), name="api-simulations-compare"),  # before {run_id}
    path("simulations/<str:run_id>/", RunDetailApi.as_view(), name="api-simulation"),
    path("simulations/<str:run_id>/cancel/", RunCancelApi.as_view(), name="api-simulation-cancel"),
    path("simulations/<str:run_id>/faults/", RunFaultApi.as_view(), name="api-simulation-faults"),
    path("simulations/<str:run_id>/export/", RunExportApi.as_view(), name="api-simulation-export"),
    path("simulations/<str:run_id>/export/csv/", RunCsvApi.as_view(), name="api-simulation-export-csv"),
]
