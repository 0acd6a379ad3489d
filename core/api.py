"""REST glue: every API error is {"error": {"code", "message", "fields"?}}: the exception handler
for DRF views, and the 404/500 handlers (config/urls.py) for everything else under /api/."""

import logging

from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, parsers, status
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from core import jsontext, metrics
from core.errors import ApplicationError, InvalidInput, NotFound, RateLimited, Unavailable, is_outage

logger = logging.getLogger(__name__)

# DRF's own exception codes, renamed where the WebSocket protocol already has a word for it.
_DRF_CODES = {
    "parse_error": "invalid_json",
    "not_authenticated": "not_authenticated",
    "authentication_failed": "authentication_failed",
    "permission_denied": "forbidden",
    "not_found": "not_found",
    "method_not_allowed": "method_not_allowed",
    "unsupported_media_type": "unsupported_media_type",
    "throttled": "throttled",
    "token_not_valid": "token_not_valid",
}


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser with core.jsontext's limits: nesting capped before parsing, text that
    PostgreSQL cannot store refused (the same rules as socket frames)."""

    def parse(self, stream, media_type=None, parser_context=None):
        return jsontext.loads(stream.read() if stream is not None else b"")


def json_object(request: Request) -> dict:
    """The request's JSON body, which must be an object; its fields are for the service to check
    (the same checks as the socket's frames). The view's Input serializer documents it."""
    if not isinstance(request.data, dict):
        raise InvalidInput("The body must be a JSON object.", fields={"non_field_errors": ["Expected a JSON object."]})
    return request.data


def error_response(error: ApplicationError) -> Response:
    response = Response({"error": error.as_dict()}, status=error.status)
    if isinstance(error, Unavailable | RateLimited):
        response["Retry-After"] = str(max(1, -(-error.retry_after_ms // 1000)))
    return response


def exception_handler(exc: Exception, context: dict) -> Response | None:
    response = _exception_response(exc, context)
    if response is not None and isinstance(response.data, dict) and isinstance(response.data.get("error"), dict):
        metrics.http_error(str(response.data["error"].get("code", "error")))
    request = context.get("request")
    renderer = getattr(request, "accepted_renderer", None)
    if response is not None and request is not None and getattr(renderer, "format", None) not in ("json", "api"):
        # An error of a view that renders something else (the schema's YAML) is JSON all the same.
        request.accepted_renderer, request.accepted_media_type = JSONRenderer(), JSONRenderer.media_type
    return response


def _exception_response(exc: Exception, context: dict) -> Response | None:
    if is_outage(exc):
        logger.warning("%s failed: %s", context["request"].path, exc)
        exc = Unavailable()
    elif isinstance(exc, exceptions.Throttled):
        exc = RateLimited(exc.wait or 1.0)  # type: ignore[attr-defined]  # DRF sets it; its stubs omit it
    if isinstance(exc, ApplicationError):
        return error_response(exc)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()

    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response

    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        body = {"code": "invalid", "message": "Invalid input.", "fields": fields}
    else:
        codes = exc.get_codes()
        raw_code: object = codes if isinstance(codes, str) else exc.default_code
        if isinstance(codes, dict):  # simplejwt nests its code next to the detail
            raw_code = codes.get("code", exc.default_code)
        detail = exc.detail.get("detail", exc.detail) if isinstance(exc.detail, dict) else exc.detail
        body = {"code": _DRF_CODES.get(str(raw_code), str(raw_code)), "message": str(detail)}
        if response.status_code == status.HTTP_403_FORBIDDEN and body["code"] == "not_authenticated":
            response.status_code = status.HTTP_401_UNAUTHORIZED
    response.data = {"error": body}
    return response


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith("/api/")


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler404: the API answers in JSON, pages with Django's page."""
    if _is_api(request):
        return JsonResponse({"error": NotFound().as_dict()}, status=404)
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400 (e.g. a body over DATA_UPLOAD_MAX_MEMORY_SIZE)."""
    if _is_api(request):
        error = ApplicationError("The request could not be read.", code="bad_request")
        return JsonResponse({"error": error.as_dict()}, status=400)
    return defaults.bad_request(request, exception)


def permission_denied(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler403 (Django's own refusals, e.g. CSRF for session-authenticated API calls)."""
    if _is_api(request):
        return JsonResponse({"error": ApplicationError("Forbidden.", code="forbidden").as_dict()}, status=403)
    return defaults.permission_denied(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500 (Django has logged the exception): never an HTML page from the API."""
    if _is_api(request):
        metrics.http_error("internal")
        error = ApplicationError("Something went wrong; please retry.", code="internal", status=500)
        return JsonResponse({"error": error.as_dict()}, status=500)
    return defaults.server_error(request)
