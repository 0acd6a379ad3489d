"""Sign-ins, sign-outs and failed sign-ins, from Django's auth signals: the session login and
logout views, the admin's, and the JWT token view (simplejwt authenticates with Django's
`authenticate`, which sends user_login_failed; its successes are recorded by accounts.api.TokenApi,
as simplejwt sends no user_logged_in). No password or token is ever recorded."""

from typing import Any

from django.contrib.auth import signals

from audit.context import client_ip

_USERNAME_MAX = 150


def _ip(request: Any) -> str:
    meta = getattr(request, "META", None)
    return meta.get("REMOTE_ADDR", "") if meta is not None else client_ip()


def _via(request: Any) -> str:
    path = getattr(request, "path", "") or ""
    return "token" if path.startswith("/api/") else "admin" if path.startswith("/admin/") else "session"


def _signed_in(sender: Any, request: Any = None, user: Any = None, **extra: Any) -> None:
    from audit.services import record

    # A view may say more about how (single sign-on: {"via": "sso", "provider": …}, sso.views).
    details = getattr(request, "audit_sign_in", None) or {}
    record(action="auth.sign_in", actor=user, target=user, after={"via": _via(request), **details}, ip=_ip(request))


def _signed_out(sender: Any, request: Any = None, user: Any = None, **extra: Any) -> None:
    from audit.services import record

    if user is None or not user.is_authenticated:  # logging out while signed out does nothing
        return
    record(action="auth.sign_out", actor=user, target=user, after={"via": _via(request)}, ip=_ip(request))


def _sign_in_failed(sender: Any, credentials: dict | None = None, request: Any = None, **extra: Any) -> None:
    from accounts.models import User, username_is
    from audit.services import record

    # Django has already replaced the password (and anything else that looks secret) with stars;
    # only the name tried is kept, and whose account that is when there is one.
    name = str((credentials or {}).get("username") or "")[:_USERNAME_MAX]
    name = name.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")  # storable, queryable
    user_id = User.objects.filter(username_is(name)).values_list("pk", flat=True).first() if name else None
    record(
        action="auth.sign_in_failed",
        actor=None,
        target=("user", user_id if user_id is not None else ""),
        after={"username": name, "via": _via(request)},
        ip=_ip(request),
    )


def connect() -> None:
    signals.user_logged_in.connect(_signed_in, dispatch_uid="audit.signed_in")
    signals.user_logged_out.connect(_signed_out, dispatch_uid="audit.signed_out")
    signals.user_login_failed.connect(_sign_in_failed, dispatch_uid="audit.sign_in_failed")
