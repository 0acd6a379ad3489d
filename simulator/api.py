"""REST for the simulator (docs/protocol.md "Simulations"): the palette and the template gallery, a
board from a template, a board's design and its problems, runs (start, list, read, cancel, inject a
fault, export as JSON or CSV, compare two). Routes in simulator/urls.py."""

import csv
import io
import json
import re
from typing import Any, TypedDict

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from boards.api import BOARD_ID
from boards.payloads import BoardPayload, board_payload
from boards.selectors import board_get_for
from core.api import json_object
from rooms.api import ROOM_ID, documented
from simulator import designs, exports, gallery, selectors, services
from simulator.engine.palette import palette_json
from simulator.payloads import (
    BoardDesignPayload,
    SimulationComparePayload,
    SimulationFaultAckPayload,
    SimulationRunDetailPayload,
    SimulationRunList,
    SimulationRunPayload,
    SimulationTemplateList,
    run_detail_payload,
    run_payload,
)

RUN_ID = OpenApiParameter("run_id", OpenApiTypes.UUID, OpenApiParameter.PATH)


class SimulationPalettePayload(TypedDict):
    kinds: Any
    connector_params: Any
    faults: Any


class PaletteApi(APIView):
    """The component palette: every kind with its parameters (type, default, bounds, unit, help),
    its prices, the connector parameters and the fault kinds."""

    @extend_schema(operation_id="simulator_palette", responses=documented(SimulationPalettePayload))
    def get(self, request):
        return Response(palette_json())


class TemplateListApi(APIView):
    """The template gallery: designs to start a board from (POST rooms/{id}/boards/from-template/)."""

    @extend_schema(operation_id="simulator_templates", responses=documented(SimulationTemplateList))
    def get(self, request):
        results = [
            {"id": t["id"], "title": t["title"], "description": t["description"], "design": t["design"]}
            for t in gallery.templates()
        ]
        return Response({"results": results})


class _FromTemplateInput(serializers.Serializer):
    template = serializers.CharField(help_text="A template id (GET simulator/templates/)")
    title = serializers.CharField(max_length=120, required=False, help_text="Default: the template's title")


@extend_schema(parameters=[ROOM_ID])
class BoardFromTemplateApi(APIView):
    """Create a board whose document holds a template's components and arrows (their first update)."""

    write_scope = "edit"

    @extend_schema(
        operation_id="room_boards_from_template",
        request=_FromTemplateInput,
        responses=documented({201: BoardPayload}, 400, 403, 404, 429),
    )
    def post(self, request, room_id):
        data = json_object(request)
        board = services.board_from_template(
            user=request.user, room_id=room_id, template_id=data.get("template"), title=data.get("title")
        )
        return Response(board_payload(board), status=status.HTTP_201_CREATED)


@extend_schema(parameters=[BOARD_ID])
class BoardDesignApi(APIView):
    """The design the board's document holds now, and every problem with the element it is about."""

    @extend_schema(operation_id="board_design", responses=documented(BoardDesignPayload, 403, 404))
    def get(self, request, board_id):
        board, _ = board_get_for(user=request.user, board_id=board_id)
        extracted = designs.board_design(board)
        return Response(
            {
                "board": str(board.pk),
                "sequence": extracted.sequence,
                "design": extracted.design,
                "problems": extracted.problems,
                "valid": extracted.valid,
            }
        )


class _StartInput(serializers.Serializer):
    duration_s = serializers.FloatField(required=False, help_text="Simulated seconds (default 60)")
    seed = serializers.IntegerField(required=False, help_text="Default: random (the run records it)")
    speed = serializers.FloatField(
        required=False, allow_null=True, help_text="Simulated seconds per wall second (default 1); null: unpaced"
    )
    max_requests = serializers.IntegerField(required=False, help_text="Stop making requests after this many")
    faults = serializers.ListField(
        child=serializers.DictField(), required=False, help_text="{kind, component_id, at_s, until_s?, ...}"
    )
    label = serializers.CharField(required=False, allow_blank=True, max_length=120)  # type: ignore[assignment]


class _ListParams(serializers.Serializer):
    active = serializers.BooleanField(required=False, default=False, help_text="Only queued and running runs")

    class Meta:
        ref_name = "SimulationListParams"


@extend_schema(parameters=[BOARD_ID])
class BoardRunListApi(APIView):
    """GET: the board's runs, newest first (at most 100; without their full results). POST: start a
    run of the board's current design (those who may edit the board)."""

    write_scope = "edit"

    @extend_schema(
        operation_id="board_simulations_list",
        parameters=[_ListParams],
        responses=documented(SimulationRunList, 403, 404),
    )
    def get(self, request, board_id):
        params = _ListParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        _, runs = selectors.runs_of_board(
            user=request.user, board_id=board_id, active_only=params.validated_data["active"]
        )
        return Response({"results": [run_payload(run) for run in runs]})

    @extend_schema(
        operation_id="board_simulations_start",
        request=_StartInput,
        responses=documented({201: SimulationRunPayload}, 400, 403, 404, 429),
    )
    def post(self, request, board_id):
        run = services.run_start(user=request.user, board_id=board_id, data=json_object(request))
        return Response(run_payload(run), status=status.HTTP_201_CREATED)


@extend_schema(parameters=[RUN_ID])
class RunDetailApi(APIView):
    """A run with its design and, once finished, its full results."""

    @extend_schema(operation_id="simulations_retrieve", responses=documented(SimulationRunDetailPayload, 403, 404))
    def get(self, request, run_id):
        return Response(run_detail_payload(selectors.run_get_for(user=request.user, run_id=run_id)))


@extend_schema(parameters=[RUN_ID])
class RunCancelApi(APIView):
    """Cancel a run (whoever started it, or the room's owners and admins): a queued run at once, a
    running one within a fraction of a second (it keeps its figures so far)."""

    write_scope = "edit"

    @extend_schema(
        operation_id="simulations_cancel", request=None, responses=documented(SimulationRunPayload, 403, 404, 429)
    )
    def post(self, request, run_id):
        return Response(run_payload(services.run_cancel(user=request.user, run_id=run_id)))


class _FaultInput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["kill", "latency", "error", "slow", "partition"])
    component_id = serializers.CharField()
    at_s = serializers.FloatField(required=False, help_text="Simulated time; default: now")
    until_s = serializers.FloatField(required=False, allow_null=True)
    count = serializers.IntegerField(required=False)
    latency_ms = serializers.FloatField(required=False)
    error_rate = serializers.FloatField(required=False)
    factor = serializers.FloatField(required=False)


@extend_schema(parameters=[RUN_ID])
class RunFaultApi(APIView):
    """Inject a fault into a live run; the worker applies it within a fraction of a second and the
    board hears `simulation.fault`."""

    write_scope = "edit"

    @extend_schema(
        operation_id="simulations_inject",
        request=_FaultInput,
        responses=documented({201: SimulationFaultAckPayload}, 400, 403, 404, 409, 429),
    )
    def post(self, request, run_id):
        command = services.run_inject(user=request.user, run_id=run_id, fault=json_object(request))
        return Response(
            {"run": str(command.run_id), "command": command.pk, "fault": command.fault}, status=status.HTTP_201_CREATED
        )


def _filename(run) -> str:
    label = (run.parameters or {}).get("label") or "simulation"
    return re.sub(r"[^A-Za-z0-9._ -]+", "_", f"{label}-{run.pk}").strip()


class SimulationExportPayload(TypedDict):
    format: str
    version: int
    simulation: SimulationRunDetailPayload
    exported_at: str


@extend_schema(parameters=[RUN_ID])
class RunExportApi(APIView):
    """The run as a JSON file: the run, its design, parameters, faults and full results."""

    @extend_schema(operation_id="simulations_export", responses=documented(SimulationExportPayload, 403, 404))
    def get(self, request, run_id):
        run = selectors.run_get_for(user=request.user, run_id=run_id)
        response = HttpResponse(json.dumps(exports.as_json(run)), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="{_filename(run)}.json"'
        return response


class _CsvParams(serializers.Serializer):
    table = serializers.ChoiceField(
        choices=["components", "series"],
        default="components",
        help_text="components: one row per component and one end-to-end row; series: one row per simulated second",
    )

    class Meta:
        ref_name = "SimulationCsvParams"


@extend_schema(parameters=[RUN_ID])
class RunCsvApi(APIView):
    """The run's results as CSV (a finished run; an unfinished one has only a header)."""

    @extend_schema(
        operation_id="simulations_export_csv",
        parameters=[_CsvParams],
        responses={
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="CSV with a header row"),
            **documented({}, 400, 403, 404),
        },
    )
    def get(self, request, run_id):
        params = _CsvParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        run = selectors.run_get_for(user=request.user, run_id=run_id)
        out = io.StringIO()
        exports.write_csv(run, csv.writer(out), table=params.validated_data["table"])
        response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
        name = f"{_filename(run)}-{params.validated_data['table']}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response


class _CompareParams(serializers.Serializer):
    a = serializers.UUIDField(help_text="A run id")
    b = serializers.UUIDField(help_text="Another run id (of any board one may open)")

    class Meta:
        ref_name = "SimulationCompareParams"


class RunCompareApi(APIView):
    """Two runs side by side: both in full, their end-to-end figures and each component's figures
    as {a, b, delta}."""

    @extend_schema(
        operation_id="simulations_compare",
        parameters=[_CompareParams],
        responses=documented(SimulationComparePayload, 400, 404),
    )
    def get(self, request):
        params = _CompareParams(data=request.query_params)
        params.is_valid(raise_exception=True)
        a = selectors.run_get_for(user=request.user, run_id=params.validated_data["a"])
        b = selectors.run_get_for(user=request.user, run_id=params.validated_data["b"])
        return Response(exports.compare(a, b))
