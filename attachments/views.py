"""The local store's two doors (attachments.storage.LocalAttachmentStore), used only when no S3
bucket is configured (`make run`): they answer what S3 would to a presigned POST and GET, so the
clients are the same. The signed token in the URL is the whole permission, as a presigned URL's
signature is: it names one key, a size limit and an expiry, and was issued after an access check."""

from django.core import signing
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from attachments.storage import LOCAL_SALT, LocalAttachmentStore, attachment_store


def _error(code: str, message: str, status: int) -> JsonResponse:
    return JsonResponse({"error": {"code": code, "message": message}}, status=status)


def _claims(token: str, salt: str) -> dict | None:
    try:
        expires = signing.loads(token, salt=salt)["e"]  # signed: the expiry cannot be changed
        return signing.loads(token, salt=salt, max_age=expires)
    except (signing.BadSignature, KeyError, TypeError):
        return None


@csrf_exempt  # the signed token is the credential, as a presigned POST's policy is for S3
@require_POST
def local_upload(request: HttpRequest, token: str) -> HttpResponse:
    store = attachment_store()
    claims = _claims(token, LOCAL_SALT + ".upload")
    if not isinstance(store, LocalAttachmentStore) or claims is None:
        return _error("not_found", "This upload form is unknown or has expired.", 404)
    upload = request.FILES.get("file")
    if upload is None:
        return _error("invalid", "The form needs the file as `file`, after its other fields.", 400)
    if upload.size is None or upload.size < 1 or upload.size > claims["m"]:
        return _error("too_large", "The file is larger than the upload allows (or empty).", 400)
    store.put_file(claims["k"], upload)
    return HttpResponse(status=204)


@require_GET
def local_file(request: HttpRequest, token: str) -> HttpResponseBase:
    store = attachment_store()
    claims = _claims(token, LOCAL_SALT + ".get")
    if not isinstance(store, LocalAttachmentStore) or claims is None:
        return _error("not_found", "This link is unknown or has expired.", 404)
    path = store.path(claims["k"])
    if not path.exists():
        return _error("not_found", "Not found.", 404)
    response = FileResponse(path.open("rb"), content_type=claims["t"])
    response["Content-Disposition"] = claims["d"]
    response["Cache-Control"] = "private, max-age=60"
    return response
