from django.apps import AppConfig


class WorkspacesConfig(AppConfig):
    """Workspaces (issue 18, docs/workspaces.md): every room belongs to one; people belong to
    several, with a role in each (owner, admin, member, guest)."""

    name = "workspaces"
    verbose_name = "Workspaces"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from workspaces import signals  # noqa: F401  (every new account joins the default workspace)
