"""What a file really is, from its first bytes (magic numbers), and which types Parley accepts.

Pure Python, no Django: the server never trusts the type a client declares. A declared type is
accepted when the bytes say the same family (`ACCEPTED`): a .docx is a zip, a .csv is text.
"""

# The types the bytes can prove, and the declared types each of them may be stored as. The first
# declared type of each is what an upload declared as application/octet-stream (or nothing) gets.
ACCEPTED: dict[str, tuple[str, ...]] = {
    "image/png": ("image/png",),
    "image/jpeg": ("image/jpeg",),
    "image/gif": ("image/gif",),
    "image/webp": ("image/webp",),
    "application/pdf": ("application/pdf",),
    "application/zip": (
        "application/zip",
        "application/x-zip-compressed",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "application/vnd.oasis.opendocument.text",
        "application/vnd.oasis.opendocument.spreadsheet",
        "application/vnd.oasis.opendocument.presentation",
        "application/epub+zip",
    ),
    "application/gzip": ("application/gzip", "application/x-gzip"),
    "text/plain": ("text/plain", "text/csv", "text/markdown", "application/json"),
    "audio/mpeg": ("audio/mpeg",),
    "audio/ogg": ("audio/ogg",),
    "audio/wav": ("audio/wav", "audio/x-wav"),
    "video/mp4": ("video/mp4",),
}
IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
GENERIC = frozenset({"", "application/octet-stream"})
DECLARABLE = frozenset(t for types in ACCEPTED.values() for t in types) | GENERIC
UNKNOWN = "application/octet-stream"

# Enough to tell every type above apart, and text from binary.
SNIFF_BYTES = 4096

_PREFIXES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"PK\x05\x06", "application/zip"),  # an empty archive
    (b"\x1f\x8b", "application/gzip"),
    (b"OggS", "audio/ogg"),
    (b"ID3", "audio/mpeg"),
)


def sniff(head: bytes) -> str:
    """The content type the first bytes of a file prove, or `UNKNOWN`."""
    for prefix, content_type in _PREFIXES:
        if head.startswith(prefix):
            return content_type
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return "audio/wav"
    if head[4:8] == b"ftyp" and head[8:12] in (b"isom", b"iso2", b"mp41", b"mp42", b"avc1", b"M4V ", b"dash"):
        return "video/mp4"
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:  # an MPEG audio frame
        return "audio/mpeg"
    if _is_text(head):
        return "text/plain"
    return UNKNOWN


def _is_text(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as error:
        # A multi-byte character cut by the end of the sample is still text.
        if error.start < len(head) - 3:
            return False
    return True


def stored_type(*, declared: str, sniffed: str) -> str | None:
    """The type to store for a file declared as `declared` whose bytes say `sniffed`, or None when
    they disagree (or the bytes are of no accepted type)."""
    accepted = ACCEPTED.get(sniffed)
    if accepted is None:
        return None
    if declared in GENERIC:
        return accepted[0]
    return declared if declared in accepted else None
