import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone


class Device(models.Model):
    """One browser's (or app's) key for end-to-end encrypted rooms (docs/e2ee.md).

    Only the public half is here: an ECDH P-256 key as SPKI DER, base64. The private half never
    leaves the device (a non-extractable WebCrypto key in the browser's IndexedDB). A revoked device
    stays listed as revoked so that clients stop wrapping keys for it but can still tell who sent
    what it wrote before."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="e2ee_devices")
    public_key = models.TextField()
    label = models.CharField(max_length=80, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            # Registering the same key again (a retry) finds the device instead of adding one.
            models.UniqueConstraint(fields=["user", "public_key"], name="e2ee_device_user_public_key"),
        ]
        indexes = [models.Index(fields=["user", "created_at"], name="e2ee_device_user")]

    def __str__(self) -> str:
        return f"{self.label or 'device'} of {self.user_id}" + (" (revoked)" if self.revoked_at else "")
