from django.conf import settings
from django.http import HttpResponseRedirect
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from attachments import selectors, services
from attachments.payloads import AttachmentLinks, AttachmentPayload, AttachmentStart, attachment_payload
from core.api import json_object
from core.errors import InvalidInput
from rooms.api import ROOM_ID, documented

ATTACHMENT_ID = OpenApiParameter("attachment_id", str, OpenApiParameter.PATH, description="An attachment id")
VARIANT = OpenApiParameter(
    "variant",
    str,
    OpenApiParameter.QUERY,
    enum=["original", "thumbnail"],
    description="The file (default) or its thumbnail",
)


@extend_schema(parameters=[ROOM_ID])
class AttachmentListApi(APIView):
    """Start an upload (docs/attachments.md): the attachment, pending, and a presigned form to POST
    the file to the store with; then `complete/`."""

    write_scope = "send"  # core.throttles

    class Input(serializers.Serializer):
        name = serializers.CharField(help_text="The file's name")
        size = serializers.IntegerField(min_value=1, help_text="Bytes; the store refuses more")
        content_type = serializers.CharField(
            required=False, allow_blank=True, help_text="The declared MIME type; checked against the bytes"
        )

        class Meta:
            ref_name = "AttachmentStartInput"

    @extend_schema(request=Input, responses=documented({201: AttachmentStart}, 400, 403, 404, 409, 429))
    def post(self, request, room_id):
        data = json_object(request)
        attachment, form = services.attachment_start(
            user=request.user,
            room_id=room_id,
            name=data.get("name"),
            size=data.get("size"),
            content_type=data.get("content_type"),
        )
        return Response(
            AttachmentStart(
                attachment=attachment_payload(attachment),
                upload={
                    "url": request.build_absolute_uri(form["url"]) if form["url"].startswith("/") else form["url"],
                    "fields": form["fields"],
                    "max_bytes": attachment.declared_size,
                    "expires_in": settings.ATTACHMENT_URL_SECONDS,
                },
            ),
            status=status.HTTP_201_CREATED,
        )


@extend_schema(parameters=[ROOM_ID, ATTACHMENT_ID])
class AttachmentCompleteApi(APIView):
    """The upload is done: the server checks the stored file (size, type sniffed from its bytes,
    image dimensions) and answers the attachment, ready to send, or the refusal's code."""

    write_scope = "send"

    @extend_schema(request=None, responses=documented(AttachmentPayload, 400, 403, 404, 409, 429))
    def post(self, request, room_id, attachment_id):
        attachment = services.attachment_complete(user=request.user, room_id=room_id, attachment_id=attachment_id)
        return Response(attachment_payload(attachment))


@extend_schema(parameters=[ROOM_ID, ATTACHMENT_ID])
class AttachmentDetailApi(APIView):
    """GET: the attachment with presigned download URLs (members of its room; the uploader before
    it is sent). DELETE: abandon an upload that was not sent."""

    write_scope = "send"

    @extend_schema(responses=documented(AttachmentLinks, 403, 404))
    def get(self, request, room_id, attachment_id):
        attachment = selectors.attachment_get(user=request.user, room_id=room_id, attachment_id=attachment_id)
        thumbnail = None
        if attachment.thumbnail == attachment.Thumbnail.READY:
            thumbnail = selectors.download_url(attachment, variant="thumbnail")
        return Response(
            AttachmentLinks(
                **attachment_payload(attachment),
                status=attachment.status,
                message=str(attachment.message_id) if attachment.message_id else None,
                url=selectors.download_url(attachment),
                thumbnail_url=thumbnail,
                expires_in=settings.ATTACHMENT_URL_SECONDS,
            )
        )

    @extend_schema(responses=documented({204: None}, 403, 404, 409, 429))
    def delete(self, request, room_id, attachment_id):
        services.attachment_abandon(user=request.user, room_id=room_id, attachment_id=attachment_id)
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(parameters=[ROOM_ID, ATTACHMENT_ID, VARIANT])
class AttachmentDownloadApi(APIView):
    """A redirect (302) to a presigned URL of the file or its thumbnail: for `<img src>` and links
    in the web page, which cannot keep URLs that expire."""

    @extend_schema(responses=documented({302: None}, 400, 403, 404))
    def get(self, request, room_id, attachment_id):
        variant = request.query_params.get("variant", "original")
        if variant not in ("original", "thumbnail"):
            raise InvalidInput("variant is original or thumbnail.", fields={"variant": ["original or thumbnail"]})
        attachment = selectors.attachment_get(user=request.user, room_id=room_id, attachment_id=attachment_id)
        response = HttpResponseRedirect(selectors.download_url(attachment, variant=variant))
        # The URL expires: a browser may keep the redirect only a little less long than it lives.
        response["Cache-Control"] = f"private, max-age={max(settings.ATTACHMENT_URL_SECONDS - 60, 0)}"
        return response
