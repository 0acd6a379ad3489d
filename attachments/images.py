"""Images, with Pillow and no Django: their size from the first bytes, and thumbnails.

Every image here came from a stranger: a decompression bomb (a few kilobytes that decode to
gigapixels) is refused by its declared size before any pixel is decoded, and anything Pillow
cannot read is an error to report, never a crash.
"""

import io
import warnings

from PIL import Image, ImageOps

# Pillow format names of the image types Parley accepts (attachments.sniff.IMAGE_TYPES).
FORMATS = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}
THUMBNAIL_BOX = (480, 480)
THUMBNAIL_TYPE = "image/webp"


class ImageRefused(Exception):
    """Not an image of the expected type, unreadable, or too many pixels. `code` says which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _open(data: bytes, *, content_type: str, max_pixels: int) -> Image.Image:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[FORMATS[content_type]])
    except Image.DecompressionBombError as error:
        raise ImageRefused("image_too_large", str(error)) from error
    except Exception as error:  # UnidentifiedImageError, a truncated header, a Pillow bug: all refused
        raise ImageRefused("corrupt_image", f"unreadable {content_type}: {error}") from error
    width, height = image.size
    if width < 1 or height < 1 or width * height > max_pixels:
        raise ImageRefused("image_too_large", f"{width}x{height} is over {max_pixels} pixels")
    return image


def dimensions(data: bytes, *, content_type: str, max_pixels: int) -> tuple[int, int]:
    """(width, height) read from an image's header (its first bytes are enough), as shown upright
    (EXIF orientation applied)."""
    image = _open(data, content_type=content_type, max_pixels=max_pixels)
    width, height = image.size
    try:
        orientation = image.getexif().get(0x0112, 1)
    except Exception:
        orientation = 1
    return (height, width) if orientation in (5, 6, 7, 8) else (width, height)


def thumbnail(data: bytes, *, content_type: str, max_pixels: int) -> bytes:
    """A WebP no larger than THUMBNAIL_BOX of the image (its first frame), upright."""
    image = _open(data, content_type=content_type, max_pixels=max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image.seek(0)
            image.load()
            upright = ImageOps.exif_transpose(image)
            if upright.mode not in ("RGB", "RGBA"):
                upright = upright.convert(
                    "RGBA" if "A" in upright.getbands() or "transparency" in upright.info else "RGB"
                )
            upright.thumbnail(THUMBNAIL_BOX, Image.Resampling.LANCZOS)
            out = io.BytesIO()
            upright.save(out, format="WEBP", quality=80, method=4)
    except ImageRefused:
        raise
    except Exception as error:  # truncated or corrupt pixel data, an unsupported mode: a failed thumbnail
        raise ImageRefused("corrupt_image", f"unreadable {content_type}: {error}") from error
    return out.getvalue()
