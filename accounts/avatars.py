"""Avatars: an uploaded image checked with Pillow, cut to a centred square, resized to a small PNG
and kept in the media store, the same S3-compatible bucket as the message archive (or, without
S3_BUCKET, the archive's local directory: messaging.archive_storage), under
`avatars/<user id>/<token>.png`.

The token is random and new at every upload, so a URL names one image for ever: it is served with
a year's `immutable` caching, and anyone holding the URL may fetch it (as with a presigned URL; the
token is 128 bits). Replacing or removing an avatar deletes the old object after commit.
"""

import io
import re
import secrets

from django.conf import settings
from PIL import Image, ImageOps, UnidentifiedImageError

from core.errors import InvalidInput
from messaging.archive_storage import archive_storage

SIZE = 128  # pixels, both sides: shown at 20-40 CSS pixels, sharp on 3x screens
FORMATS = {"PNG", "JPEG", "GIF", "WEBP"}
MAX_PIXELS = 40_000_000  # a decompression bomb is refused before it is decoded
TOKEN = re.compile(r"^[0-9a-f]{32}$")


def key(user_id: int, token: str) -> str:
    return f"avatars/{user_id}/{token}.png"


def render(data: bytes) -> bytes:
    """The avatar made from an uploaded file: a SIZE×SIZE PNG, or InvalidInput with a stable code
    (`avatar_too_large`, `avatar_invalid`)."""
    if len(data) > settings.AVATAR_MAX_BYTES:
        raise InvalidInput(
            f"An avatar may be at most {settings.AVATAR_MAX_BYTES // (1024 * 1024)} MB.",
            code="avatar_too_large",
            fields={"avatar": ["File too large."]},
        )
    refused = InvalidInput(
        "Upload a PNG, JPEG, GIF or WebP image.", code="avatar_invalid", fields={"avatar": ["Not an image."]}
    )
    try:
        image = Image.open(io.BytesIO(data))  # reads the header only
        width, height = image.size
        # Checked before anything is decoded (well under Pillow's own bomb limit).
        if image.format not in FORMATS or not width or not height or width * height > MAX_PIXELS:
            raise refused
        image.seek(0)  # the first frame of an animation
        upright = ImageOps.exif_transpose(image)  # a phone photo stays upright
        square = ImageOps.fit(upright.convert("RGBA"), (SIZE, SIZE), method=Image.Resampling.LANCZOS)
    except InvalidInput:
        raise
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError, SyntaxError):
        raise refused from None
    out = io.BytesIO()
    square.save(out, format="PNG", optimize=True)
    return out.getvalue()


def store(user_id: int, png: bytes) -> str:
    """Put a rendered avatar in the store; returns its new token."""
    token = secrets.token_hex(16)
    archive_storage().put_file(key(user_id, token), io.BytesIO(png))
    return token


def read(user_id: int, token: str) -> bytes | None:
    """The stored PNG, or None when there is none (a malformed token included)."""
    if not TOKEN.match(token):
        return None
    storage = archive_storage()
    name = key(user_id, token)
    try:
        return storage.get_bytes(name)
    except Exception:
        if not storage.exists(name):  # replaced or removed since (S3 and local storage alike)
            return None
        raise


def delete(user_id: int, token: str) -> None:
    if TOKEN.match(token):
        archive_storage().delete(key(user_id, token))
