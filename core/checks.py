"""Django's security deploy checks, for the middleware of core.middleware.

Django finds its security, clickjacking and CSRF middleware in MIDDLEWARE by their paths. Ours are
subclasses under other paths, so Django reports them missing (security.W001-W003, silenced in
settings), and the checks that depend on them (HSTS, the SSL redirect, nosniff, the referrer and
opener policies, X-Frame-Options DENY, the secure CSRF cookie) pass without looking. Here the same
checks of Django run on MIDDLEWARE with ours named as Django's, and report under the ids of
core.W001-W003 what Django would under security.W001-W003. Registered by operations.apps
(`manage.py check --deploy`).
"""

from collections.abc import Callable, Sequence
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Tags, Warning, register
from django.core.checks.security import base
from django.core.checks.security import csrf as csrf_checks
from django.test.utils import override_settings

from core import middleware

AS_DJANGO = {
    "core.middleware.SecurityMiddleware": "django.middleware.security.SecurityMiddleware",
    "core.middleware.CsrfViewMiddleware": "django.middleware.csrf.CsrfViewMiddleware",
    "core.middleware.XFrameOptionsMiddleware": "django.middleware.clickjacking.XFrameOptionsMiddleware",
}
assert all(path.rsplit(".", 1)[1] in vars(middleware) for path in AS_DJANGO)

CHECKS: list[Callable[..., Sequence[CheckMessage]]] = [
    base.check_security_middleware,
    base.check_xframe_options_middleware,
    csrf_checks.check_csrf_middleware,
    base.check_sts,
    base.check_sts_include_subdomains,
    base.check_sts_preload,
    base.check_content_type_nosniff,
    base.check_ssl_redirect,
    base.check_xframe_deny,
    base.check_referrer_policy,
    base.check_cross_origin_opener_policy,
    csrf_checks.check_csrf_cookie_secure,
]
OURS = {"security.W001": "core.W001", "security.W002": "core.W002", "security.W003": "core.W003"}


@register(Tags.security, deploy=True)
def check_security_middleware(app_configs: Any, **kwargs: Any) -> list[CheckMessage]:
    named = [AS_DJANGO.get(path, path) for path in settings.MIDDLEWARE]
    with override_settings(MIDDLEWARE=named):
        found = [message for check in CHECKS for message in check(app_configs)]
    return [
        Warning(message.msg, hint=message.hint, id=OURS[message.id]) if message.id in OURS else message
        for message in found
    ]
