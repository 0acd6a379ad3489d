import json

from django.conf import settings
from django.contrib.auth.models import User
from django.db import transaction
from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from oauth2_provider.models import Application

from tests.oidc_provider.models import Person


@csrf_exempt
@require_POST
def setup(request):
    """Creates or updates users ({username, password, email, email_verified, name}) and clients
    ({client_id, client_secret, redirect_uris, post_logout_redirect_uris}); answers each user's `sub` (its id)."""
    if request.headers.get("X-Setup-Token") != settings.SETUP_TOKEN:
        return HttpResponse(status=403)
    body = json.loads(request.body)
    subjects = {}
    with transaction.atomic():
        for spec in body.get("users", []):
            user, _ = User.objects.get_or_create(username=spec["username"])
            user.email = spec.get("email", "")
            user.first_name = spec.get("name", "")
            if "password" in spec:
                user.set_password(spec["password"])
            user.save()
            Person.objects.update_or_create(
                user=user,
                defaults={
                    "email_verified": spec.get("email_verified", True),
                    "email_in_userinfo_only": spec.get("email_in_userinfo_only", False),
                },
            )
            subjects[user.username] = str(user.pk)
        for spec in body.get("clients", []):
            Application.objects.filter(client_id=spec["client_id"]).delete()
            Application.objects.create(
                name=spec["client_id"],
                client_id=spec["client_id"],
                client_secret=spec["client_secret"],
                client_type=Application.CLIENT_CONFIDENTIAL,
                authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
                redirect_uris=" ".join(spec["redirect_uris"]),
                post_logout_redirect_uris=" ".join(spec.get("post_logout_redirect_uris", [])),
                algorithm=Application.RS256_ALGORITHM,
                skip_authorization=True,
            )
    return JsonResponse({"subjects": subjects})
