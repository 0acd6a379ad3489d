"""Where archived message days live: any S3-compatible bucket, or a local directory (embedded runs).

Both keep the same key layout, so moving from one to the other is a copy.
"""

import functools
import hashlib
import shutil
from pathlib import Path
from time import monotonic
from typing import IO, Protocol

from django.conf import settings


class ArchiveStorage(Protocol):
    def put_file(self, key: str, source: IO[bytes]) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...


# Reading an archived day for a history page: an S3 that hangs must cost the page seconds, not the
# 10 s clients wait for an answer. One attempt of a 1 s connect and a 2 s read (per socket read:
# a store sends an object's first bytes in well under a second); it is tried a second time only
# when it failed at once (an error answer, a refused or reset connection), never after a timeout:
# at most ~3 s, then `archive_unavailable` (messaging.archive).
READ_CONNECT_TIMEOUT = 1
READ_TIMEOUT = 2
QUICK_FAILURE_SECONDS = 0.5


class S3Storage:
    def __init__(self, *, bucket: str, endpoint_url: str | None, region: str, access_key: str, secret_key: str):
        import boto3
        from botocore.config import Config

        self.bucket = bucket

        def client(**config: object):
            return boto3.client(
                "s3",
                endpoint_url=endpoint_url or None,
                region_name=region,
                aws_access_key_id=access_key or None,
                aws_secret_access_key=secret_key or None,
                # Checksums only where S3 requires them: many S3-compatible stores (and moto) do
                # not return the composite checksums newer botocore validates on multipart
                # objects. Our own sha256, checked on read-back, is what guards the archive.
                config=Config(
                    s3={"addressing_style": "path"},
                    request_checksum_calculation="when_required",
                    response_checksum_validation="when_required",
                    **config,
                ),
            )

        self.client = client(retries={"max_attempts": 5, "mode": "standard"})
        self.reader = client(
            # total_max_attempts counts the first try; botocore's max_attempts counts only the
            # retries (the 2 there once meant 3 tries of a 3 s read: answers at 9.8 s).
            retries={"total_max_attempts": 1, "mode": "standard"},
            connect_timeout=READ_CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
        )

    def put_file(self, key: str, source: IO[bytes]) -> None:
        self.client.upload_fileobj(source, self.bucket, key)  # multipart above 8 MB

    def get_bytes(self, key: str) -> bytes:
        # A reader waits for a history page: it gives up within seconds (messaging.archive answers
        # archive_unavailable) where the archiver, in the background, retries patiently.
        started = monotonic()
        try:
            return self._read(key)
        except Exception as error:
            if _is_missing(error) or monotonic() - started > QUICK_FAILURE_SECONDS:
                raise
        return self._read(key)

    def _read(self, key: str) -> bytes:
        return self.reader.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except Exception as error:
            if _is_missing(error):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


def _is_missing(error: Exception) -> bool:
    from botocore.exceptions import ClientError

    return isinstance(error, ClientError) and error.response.get("Error", {}).get("Code") in (
        "404",
        "NoSuchKey",
        "NotFound",
    )


class LocalStorage:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"archive key escapes the archive directory: {key}")
        return path

    def put_file(self, key: str, source: IO[bytes]) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(path.suffix + f".{hashlib.sha1(key.encode()).hexdigest()[:8]}.part")
        with partial.open("wb") as target:
            shutil.copyfileobj(source, target)
        partial.replace(path)  # atomic: a reader never sees half an object

    def get_bytes(self, key: str) -> bytes:
        return self._path(key).read_bytes()

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


@functools.cache
def archive_storage() -> ArchiveStorage:
    if settings.S3_BUCKET:
        return S3Storage(
            bucket=settings.S3_BUCKET,
            endpoint_url=settings.S3_ENDPOINT_URL,
            region=settings.S3_REGION,
            access_key=settings.S3_ACCESS_KEY_ID,
            secret_key=settings.S3_SECRET_ACCESS_KEY,
        )
    return LocalStorage(Path(settings.ARCHIVE_LOCAL_DIR))
