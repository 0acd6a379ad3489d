"""The page where people see and revoke their devices' encryption keys (docs/e2ee.md). Writes go
through e2ee.services, like the REST API and Django admin."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render

from core.errors import ApplicationError
from e2ee import selectors, services


@login_required
def devices_page(request: HttpRequest) -> HttpResponse:
    """GET: my devices (revoked ones marked). POST `device`: revoke it."""
    if request.method == "POST":
        try:
            device = services.device_revoke(user=request.user, device_id=request.POST.get("device"))  # type: ignore[arg-type]
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"Revoked {device.label or 'the device'}: new messages are not encrypted for it.")
        return redirect("e2ee-devices")
    devices = selectors.devices_of(user=request.user)  # type: ignore[arg-type]
    return render(request, "e2ee/devices.html", {"devices": devices})
