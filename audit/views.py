"""Pages: a workspace's audit log, for its owners and admins (and site staff who are in it): its chain's
entries, newest first, a page at a time, and the same chain downloaded as JSON lines (recorded in
the log like every export). Who may read a chain is audit.selectors.may_read; anyone else gets
404, as for a workspace they are not in."""

from typing import cast

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

import audit
from accounts.models import User
from audit import selectors, services
from core.errors import NotFound
from workspaces.models import Workspace
from workspaces.selectors import membership_get

PAGE_SIZE = 50


def _readable(request: HttpRequest, ref: str) -> tuple[Workspace, str]:
    """The workspace `ref` names and its chain, if the user is in it and may read the chain; else
    404. (Site staff read any chain through Django admin and the REST export.)"""
    try:
        workspace = membership_get(user=cast(User, request.user), workspace=ref).workspace
    except NotFound:
        raise Http404 from None
    scope = audit.workspace_scope(workspace.pk)
    if not selectors.may_read(user=request.user, scope=scope):
        raise Http404
    return workspace, scope


def _position(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() and len(value) <= 18 else None


@require_GET
@login_required
def audit_page(request: HttpRequest, ref: str) -> HttpResponse:
    """The newest entries first; `before` pages back (the oldest shown's position), `action`
    keeps one kind."""
    workspace, scope = _readable(request, ref)
    action = request.GET.get("action", "")[:64]
    entries = selectors.recent(
        scope=scope, before_position=_position(request.GET.get("before")), action=action, limit=PAGE_SIZE + 1
    )
    older = entries[PAGE_SIZE - 1].position if len(entries) > PAGE_SIZE else None
    return render(
        request,
        "audit/workspace_log.html",
        {"workspace": workspace, "entries": entries[:PAGE_SIZE], "older": older, "action": action},
    )


@require_GET
@login_required
def audit_download(request: HttpRequest, ref: str) -> StreamingHttpResponse:
    """The whole chain (or one `action`) as JSON lines, oldest first: what REST's export gives."""
    workspace, scope = _readable(request, ref)
    filters = selectors.Filters(scope=scope, action=request.GET.get("action", "")[:64])
    lines = services.export_lines(actor=request.user, via="page", filters=filters)
    response = StreamingHttpResponse(lines, content_type="application/x-ndjson; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="audit-{workspace.slug}.jsonl"'
    return response
