"""Where archived message days live: any S3-compatible bucket, or a local directory (embedded runs).

Both keep the same key layout, so moving from one to the other is a copy.
"""

import functools
import hashlib
import shutil
from pathlib import Path
from typing import IO, Protocol

from django.conf import settings


class ArchiveStorage(Protocol):
    def put_file(self, key: str, source: IO[bytes]) -> None: ...
    def get_bytes(self, key: str) -> bytes: ...
    def exists(self, key: str) -> bool: ...
    def delete(self, key: str) -> None: ...


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
        # At most ~8 s in all: 2 attempts of a 1 s connect and a 3 s read.
        self.reader = client(retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=1, read_timeout=3)

    def put_file(self, key: str, source: IO[bytes]) -> None:
        self.client.upload_fileobj(source, self.bucket, key)  # multipart above 8 MB

    def get_bytes(self, key: str) -> bytes:
        # A reader waits for a history page: it gives up within seconds (messaging.archive answers
        # archive_unavailable) where the archiver, in the background, retries patiently.
        return self.reader.get_object(Bucket=self.bucket, Key=key)["Body"].read()

    def exists(self, key: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=key)


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
