"""Every write of end-to-end encryption: device keys and turning a direct room's encryption on
(docs/e2ee.md). The REST views, the room page and Django admin call these."""

import base64
import binascii
import uuid

from django.db import IntegrityError, transaction
from django.utils import timezone

import audit
from accounts.models import User
from core.errors import ApplicationError, Conflict, InvalidInput, NotFound
from core.events import dumps, room_group, send_event
from core.jsontext import storable_text
from e2ee.envelope import ENABLED_NOTICE
from e2ee.models import Device
from messaging import services as messaging
from messaging.models import Message
from rooms import access
from rooms.models import Room
from rooms.payloads import room_payload
from rooms.selectors import membership_get

MAX_DEVICES = 10  # active devices per person (every message wraps its key for each of both members')
LABEL_MAX_LENGTH = 80
# An uncompressed P-256 public key as SubjectPublicKeyInfo DER (WebCrypto's exportKey("spki")):
# this fixed header (id-ecPublicKey, prime256v1, a 66-byte bit string), then 0x04 and X and Y.
_SPKI_P256_HEADER = bytes.fromhex("3059301306072a8648ce3d020106082a8648ce3d030107034200")
_SPKI_P256_BYTES = 91


def _clean_public_key(public_key: object) -> str:
    def refuse() -> InvalidInput:
        return InvalidInput(
            "public_key must be an ECDH P-256 public key: SPKI DER, base64.",
            fields={"public_key": ["Must be a base64 SPKI P-256 key."]},
        )

    if not isinstance(public_key, str) or len(public_key) > 200:
        raise refuse()
    try:
        der = base64.b64decode(public_key, validate=True)
    except (binascii.Error, ValueError):
        raise refuse() from None
    if len(der) != _SPKI_P256_BYTES or not der.startswith(_SPKI_P256_HEADER) or der[26] != 0x04:
        raise refuse()
    return base64.b64encode(der).decode()  # canonical: the same key is the same text


def _clean_label(label: object) -> str:
    if label is None:
        return ""
    if not isinstance(label, str):
        raise InvalidInput("label must be text.", fields={"label": ["Must be text."]})
    label = storable_text(label.strip(), field="label")
    if len(label) > LABEL_MAX_LENGTH:
        raise InvalidInput(
            f"A device label is at most {LABEL_MAX_LENGTH} characters.",
            fields={"label": [f"At most {LABEL_MAX_LENGTH} characters."]},
        )
    return label


def device_register(*, user: User, public_key: object, label: object = None) -> tuple[Device, bool]:
    """Publish a device's public key; returns (device, created). Registering a key again returns
    its device (created False): a retry or a page reload publishes nothing twice. A revoked key
    stays revoked (`device_revoked`): the device makes a new key pair instead. At most MAX_DEVICES
    active devices per person (`too_many_devices`: revoke one first)."""
    key = _clean_public_key(public_key)
    name = _clean_label(label)
    with transaction.atomic():
        # One registration of this person's at a time: the count below cannot be raced past.
        User.objects.select_for_update().filter(pk=user.pk).first()
        existing = Device.objects.filter(user=user, public_key=key).first()
        if existing is not None:
            if existing.revoked_at is not None:
                raise Conflict("This key was revoked; make a new one.", code="device_revoked")
            return existing, False
        if Device.objects.filter(user=user, revoked_at__isnull=True).count() >= MAX_DEVICES:
            raise Conflict(f"At most {MAX_DEVICES} devices can hold keys; revoke one first.", code="too_many_devices")
        try:
            with transaction.atomic():
                device = Device.objects.create(user=user, public_key=key, label=name)
        except IntegrityError:  # unreachable under the lock above; kept for a clear answer
            raise Conflict("This key is registered already.", code="device_exists") from None
        audit.record(action="e2ee.device_register", actor=user, target=device, after={"label": name})
    return device, True


def _device_id(device_id: object) -> uuid.UUID:
    try:
        return device_id if isinstance(device_id, uuid.UUID) else uuid.UUID(str(device_id))
    except ValueError:
        raise NotFound("No such device.", code="device_not_found") from None


def device_revoke(*, user: User, device_id: object, staff: User | None = None) -> Device:
    """Revoke one of `user`'s devices: others stop wrapping message keys for it. It stays listed (as
    revoked) so that what it sent before can still be told apart. Revoking twice changes nothing.
    Someone else's device is `device_not_found`. `staff`: done by site staff from Django admin."""
    with transaction.atomic():
        device = Device.objects.select_for_update().filter(pk=_device_id(device_id), user=user).first()
        if device is None:
            raise NotFound("No such device.", code="device_not_found")
        if device.revoked_at is None:
            device.revoked_at = timezone.now()
            device.save(update_fields=["revoked_at"])
            summary = {"user": user.pk, "label": device.label} | ({"as_staff": True} if staff else {})
            audit.record(action="e2ee.device_revoke", actor=staff or user, target=device, before=summary)
    return device


def devices_erased(*, user: User) -> int:
    """Account erasure (accounts.erasure): the person's device keys go, revoked or not (their labels
    name their browsers). Inside the erasure's transaction; counted in its gdpr.erase entry, not
    audited one by one. Their encrypted messages cannot be opened by anyone afterwards: opening
    checks the sending device against the sender's list (docs/e2ee.md)."""
    return Device.objects.filter(user=user).delete()[0]


def room_encryption_enable(*, user: User, room_id: object) -> tuple[Room, Message | None]:
    """Turn end-to-end encryption on in a direct room, for good (either member). Returns the room
    and the notice that says so, a numbered message of the room's history (so live clients and
    sync both learn it), or None when it was on already (nothing changes).

    Only direct rooms (`not_direct`); a member who may send (rooms.access); audited like a settings
    change. From the notice's number on, messaging.services accepts only envelopes in the room."""
    with transaction.atomic():
        membership = membership_get(room_id=room_id, user=user)
        access.require_send(membership)
        if membership.room.kind != Room.Kind.DIRECT:
            raise ApplicationError(
                "Only direct conversations can be end-to-end encrypted.", code="not_direct", status=400
            )
        room = Room.objects.select_for_update(of=("self",)).select_related("created_by").get(pk=membership.room.pk)
        if room.encrypted_since is not None:
            return room, None
        notice = messaging.notice_insert(room_id=room.pk, user=user, content=ENABLED_NOTICE)
        room.encrypted_since = notice.sequence
        room.last_sequence = notice.sequence
        Room.objects.filter(pk=room.pk).update(encrypted_since=notice.sequence)
        audit.record(
            action="room.encryption_enable",
            actor=user,
            target=room,
            before={"encrypted": False},
            after={"encrypted": True, "sequence": notice.sequence},
            scope=audit.workspace_scope(room.workspace_id),
        )
        frame = {"type": "room.update", "room": room_payload(room)}
        send_event([room_group(room.pk)], {"type": "room.relay", "room": str(room.pk), "text": dumps(frame)})
    return room, notice
