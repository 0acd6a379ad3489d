"""The JSON shapes of end-to-end encryption (docs/e2ee.md), the same over REST and the socket."""

from typing import Annotated, Literal, NotRequired, TypedDict

from e2ee.models import Device
from rooms.payloads import DateTimeStr, UUIDStr


class EnvelopePayload(TypedDict):
    """An encrypted message as its sender's device sealed it (e2ee/envelope.py)."""

    v: Annotated[int, "The envelope version: 1"]
    sender_device: Annotated[UUIDStr, "The sending device (its key wrapped the content key)"]
    iv: Annotated[str, "AES-GCM's 12-byte nonce, base64"]
    ciphertext: Annotated[str, "The text, AES-GCM encrypted with the content key (tag included), base64"]
    keys: Annotated[dict[str, str], "Per recipient device id: the 32-byte content key, AES-KW wrapped, base64"]


class E2eePayload(TypedDict):
    """What an end-to-end encrypted room's message is (only on such messages)."""

    kind: Annotated[
        Literal["message", "enabled", "unknown"],
        "message: an envelope (its `content` and `html` are empty); enabled: the notice that turned encryption"
        " on; unknown: a later format this server version cannot describe",
    ]
    envelope: NotRequired[EnvelopePayload]


class DevicePayload(TypedDict):
    id: UUIDStr
    user: Annotated[int, "The device's owner"]
    public_key: Annotated[str, "ECDH P-256 public key, SPKI DER, base64"]
    label: str
    created_at: DateTimeStr
    revoked_at: Annotated[DateTimeStr | None, "Set once revoked: wrap no more keys for it"]


def device_payload(device: Device) -> DevicePayload:
    return {
        "id": str(device.id),
        "user": device.user_id,
        "public_key": device.public_key,
        "label": device.label,
        "created_at": device.created_at.isoformat(),
        "revoked_at": device.revoked_at.isoformat() if device.revoked_at else None,
    }
