"""Where attachments' bytes live: the archive's S3-compatible bucket (messaging/archive_storage.py,
the same S3_* settings and client), or, with no bucket, a local directory that Parley serves
itself through the same protocol (attachments/views.py), so clients never tell them apart.

Browsers upload straight to the store with a presigned POST (a form whose policy fixes the key,
the content type and the largest size) and download through presigned GET URLs that expire.
"""

import functools
import shutil
from pathlib import Path
from typing import IO, Protocol, TypedDict

from django.conf import settings
from django.core import signing
from django.urls import reverse

from messaging.archive_storage import S3Storage, _is_missing, archive_storage


class UploadForm(TypedDict):
    url: str
    fields: dict[str, str]


class AttachmentStore(Protocol):
    def upload_form(self, key: str, *, content_type: str, max_bytes: int, expires: int) -> UploadForm: ...
    def size(self, key: str) -> int | None: ...
    def read_start(self, key: str, length: int) -> bytes: ...
    def read(self, key: str) -> bytes: ...
    def put(self, key: str, data: bytes, content_type: str) -> None: ...
    def delete(self, key: str) -> None: ...
    def download_url(self, key: str, *, content_type: str, disposition: str, expires: int) -> str: ...


class S3AttachmentStore:
    def __init__(self, storage: S3Storage) -> None:
        self.bucket = storage.bucket
        self.client = storage.client

    def upload_form(self, key: str, *, content_type: str, max_bytes: int, expires: int) -> UploadForm:
        post = self.client.generate_presigned_post(
            Bucket=self.bucket,
            Key=key,
            Fields={"Content-Type": content_type},
            # The store itself refuses a body over the size the client asked for (400 EntityTooLarge).
            Conditions=[{"Content-Type": content_type}, ["content-length-range", 1, max_bytes]],
            ExpiresIn=expires,
        )
        return {"url": post["url"], "fields": dict(post["fields"])}

    def size(self, key: str) -> int | None:
        try:
            return int(self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"])
        except Exception as error:
            if _is_missing(error):
                return None
            raise

    def read_start(self, key: str, length: int) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{length - 1}")["Body"].read()

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def put(self, key: str, data: bytes, content_type: str) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)  # a missing key is no error in S3

    def download_url(self, key: str, *, content_type: str, disposition: str, expires: int) -> str:
        return self.client.generate_presigned_url(
            "get_object",
            Params={
                "Bucket": self.bucket,
                "Key": key,
                "ResponseContentType": content_type,
                "ResponseContentDisposition": disposition,
            },
            ExpiresIn=expires,
        )


LOCAL_SALT = "attachments.local"


class LocalAttachmentStore:
    """Files under a directory; "presigned" URLs are signed tokens that attachments/views.py checks."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"attachment key escapes the attachment directory: {key}")
        return path

    def upload_form(self, key: str, *, content_type: str, max_bytes: int, expires: int) -> UploadForm:
        token = signing.dumps({"k": key, "m": max_bytes, "e": expires}, salt=LOCAL_SALT + ".upload")
        return {"url": reverse("attachment-local-upload", args=[token]), "fields": {"Content-Type": content_type}}

    def size(self, key: str) -> int | None:
        path = self.path(key)
        return path.stat().st_size if path.exists() else None

    def read_start(self, key: str, length: int) -> bytes:
        with self.path(key).open("rb") as source:
            return source.read(length)

    def read(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        partial.write_bytes(data)
        partial.replace(path)

    def put_file(self, key: str, source: IO[bytes]) -> None:
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".part")
        with partial.open("wb") as target:
            shutil.copyfileobj(source, target)
        partial.replace(path)  # a reader never sees half a file

    def delete(self, key: str) -> None:
        path = self.path(key)
        path.unlink(missing_ok=True)
        try:
            path.parent.rmdir()  # the attachment's folder, once its last object is gone
        except OSError:
            pass

    def download_url(self, key: str, *, content_type: str, disposition: str, expires: int) -> str:
        token = signing.dumps({"k": key, "t": content_type, "d": disposition, "e": expires}, salt=LOCAL_SALT + ".get")
        return reverse("attachment-local-file", args=[token])


@functools.cache
def attachment_store() -> AttachmentStore:
    storage = archive_storage() if settings.S3_BUCKET else None
    if isinstance(storage, S3Storage):
        return S3AttachmentStore(storage)
    return LocalAttachmentStore(Path(settings.ATTACHMENT_LOCAL_DIR))
