"""End-to-end encrypted messages as the server sees them: envelopes it checks and stores, never opens.

A pure module (no Django): messaging's send path calls `clean` on a message whose `content` is an
object, and stores `encode`'s text in the message's ordinary `content` column, so the partitioned
message table, its archive and sync carry envelopes unchanged (docs/e2ee.md "How it is stored").

The envelope (docs/e2ee.md "The scheme"), every binary value standard base64:

    {"v": 1, "sender_device": "<uuid>", "iv": "<12 bytes>", "ciphertext": "<AES-GCM output>",
     "keys": {"<recipient device uuid>": "<the 32-byte content key, AES-KW wrapped: 40 bytes>", ...}}

Stored text starts with RESERVED (a control character no one types, then "e2ee:"); plain text
starting with it is refused (`reserved_text`), so a stored text is an envelope (or the notice that
turned encryption on) exactly when it starts with RESERVED. Any other text, control characters
included, is stored as sent.
"""

import base64
import binascii
import json
import re
import uuid
from typing import Any

RESERVED = "\x01e2ee:"
MESSAGE_PREFIX = RESERVED + "v1:"
ENABLED_NOTICE = RESERVED + "enabled"

VERSION = 1
IV_BYTES = 12
WRAPPED_KEY_BYTES = 40  # a 256-bit AES key wrapped with AES-KW (RFC 3394)
TAG_BYTES = 16
# The plain text is at most MESSAGE_MAX_LENGTH (4,000) characters of up to 4 bytes in UTF-8.
CIPHERTEXT_MAX_BYTES = 4 * 4000 + TAG_BYTES
# Both members' devices (e2ee.services.MAX_DEVICES each), with room to spare for a revocation race.
MAX_KEYS = 32
FIELDS = frozenset({"v", "sender_device", "iv", "ciphertext", "keys"})

_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")


class EnvelopeError(ValueError):
    """What is wrong with an envelope: `code` is the stable error code the API answers with."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _bytes(value: object, *, field: str, exact: int | None = None, low: int = 1, high: int = 0) -> int:
    """The decoded length of a base64 field, checked."""
    if not isinstance(value, str) or not _BASE64.fullmatch(value) or len(value) % 4:
        raise EnvelopeError("envelope_invalid", f"{field} must be standard base64.")
    if len(value) > (high or exact or 0) * 4 // 3 + 4:  # before decoding anything big
        raise EnvelopeError("envelope_too_large" if exact is None else "envelope_invalid", f"{field} is too long.")
    try:
        size = len(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError):
        raise EnvelopeError("envelope_invalid", f"{field} must be standard base64.") from None
    if exact is not None and size != exact:
        raise EnvelopeError("envelope_invalid", f"{field} must be {exact} bytes.")
    if exact is None and not low <= size <= high:
        raise EnvelopeError("envelope_too_large" if size > high else "envelope_invalid", f"{field} has a wrong size.")
    return size


def _device_id(value: object, *, field: str) -> str:
    if isinstance(value, str):
        try:
            return str(uuid.UUID(value))
        except ValueError:
            pass
    raise EnvelopeError("envelope_invalid", f"{field} must be a device id (a UUID).")


def clean(envelope: object) -> dict[str, Any]:
    """The envelope in its canonical form (device ids lower-case, keys sorted), or EnvelopeError.

    Only its shape and sizes are checked: whether it decrypts is for the recipients to find out."""
    if not isinstance(envelope, dict):
        raise EnvelopeError("envelope_invalid", "An encrypted message is an envelope object.")
    if set(envelope) != FIELDS:
        missing, extra = sorted(FIELDS - set(envelope)), sorted(set(envelope) - FIELDS)
        raise EnvelopeError("envelope_invalid", f"Envelope fields: missing {missing}, unexpected {extra}.")
    if envelope["v"] != VERSION or isinstance(envelope["v"], bool):
        raise EnvelopeError("envelope_version", f"Only envelope version {VERSION} is accepted.")
    sender_device = _device_id(envelope["sender_device"], field="sender_device")
    _bytes(envelope["iv"], field="iv", exact=IV_BYTES)
    _bytes(envelope["ciphertext"], field="ciphertext", low=TAG_BYTES + 1, high=CIPHERTEXT_MAX_BYTES)
    keys = envelope["keys"]
    if not isinstance(keys, dict) or not keys:
        raise EnvelopeError("envelope_invalid", "keys must name at least one device.")
    if len(keys) > MAX_KEYS:
        raise EnvelopeError("envelope_too_large", f"An envelope carries at most {MAX_KEYS} keys.")
    wrapped: dict[str, str] = {}
    for device, key in keys.items():
        device_id = _device_id(device, field="keys")
        _bytes(key, field="keys", exact=WRAPPED_KEY_BYTES)
        wrapped[device_id] = key
    if len(wrapped) != len(keys):
        raise EnvelopeError("envelope_invalid", "keys names a device twice.")
    return {
        "v": VERSION,
        "sender_device": sender_device,
        "iv": envelope["iv"],
        "ciphertext": envelope["ciphertext"],
        "keys": dict(sorted(wrapped.items())),
    }


def encode(envelope: dict[str, Any]) -> str:
    """The stored text of a cleaned envelope."""
    return MESSAGE_PREFIX + json.dumps(envelope, separators=(",", ":"))


def is_marked(text: str) -> bool:
    """Whether a stored text is an envelope or the encryption notice rather than plain text."""
    return text[:1] == "\x01" and text.startswith(RESERVED)  # the first test is all most texts cost


def payload_of(text: str) -> dict[str, Any] | None:
    """What a message payload's `e2ee` says of a stored text: {"kind": "message", "envelope": ...},
    {"kind": "enabled"}, or None for plain text."""
    if not is_marked(text):
        return None
    if text == ENABLED_NOTICE:
        return {"kind": "enabled"}
    if text.startswith(MESSAGE_PREFIX):
        return {"kind": "message", "envelope": json.loads(text[len(MESSAGE_PREFIX) :])}
    return {"kind": "unknown"}  # a later version's record: shown as unreadable, never as text
