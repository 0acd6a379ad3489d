"""Every account joins the default workspace when it is made, however it is made (sign-up, the
admin, createsuperuser, single sign-on's just-in-time users, tests): one hook rather than a call
in each of those paths. Other workspaces are joined by invitation (workspaces.services)."""

from django.conf import settings
from django.db.models.signals import post_save
from django.dispatch import receiver


@receiver(post_save, sender=settings.AUTH_USER_MODEL, dispatch_uid="workspaces_default_join")
def _join_default_workspace(sender, instance, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        from workspaces.services import default_workspace_join

        default_workspace_join(user=instance)
