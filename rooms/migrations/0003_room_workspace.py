"""Every room belongs to a workspace (issue 18, docs/workspaces.md).

The rooms that existed before workspaces move into a default workspace, which every existing
account joins as a member; its owner is the first superuser, else the oldest account. Direct rooms'
keys gain the workspace (`<workspace>:<low>:<high>`). Then the column becomes NOT NULL.
"""

import django.db.models.deletion
from django.db import migrations, models


def to_default_workspace(apps, schema_editor):
    Workspace = apps.get_model("workspaces", "Workspace")
    WorkspaceMembership = apps.get_model("workspaces", "WorkspaceMembership")
    Room = apps.get_model("rooms", "Room")
    User = apps.get_model("accounts", "User")
    workspace = Workspace.objects.filter(is_default=True).first()
    if workspace is None:
        # Limits as workspaces.services.DEFAULT_WORKSPACE_LIMITS (a migration keeps its own copy).
        workspace = Workspace.objects.create(
            name="Parley",
            slug="default",
            is_default=True,
            max_rooms=1_000_000,
            max_boards=1_000_000,
            max_storage_bytes=2**40,
            max_concurrent_simulations=100,
        )
    owner = (
        User.objects.filter(is_superuser=True).order_by("pk").first()
        or User.objects.order_by("date_joined", "pk").first()
    )
    existing = set(WorkspaceMembership.objects.filter(workspace=workspace).values_list("user_id", flat=True))
    WorkspaceMembership.objects.bulk_create(
        [
            WorkspaceMembership(
                workspace=workspace, user_id=pk, role="owner" if owner is not None and pk == owner.pk else "member"
            )
            for pk in User.objects.exclude(pk__in=existing).values_list("pk", flat=True).iterator()
        ],
        batch_size=5000,
    )
    Room.objects.filter(workspace__isnull=True).update(workspace=workspace)
    schema_editor.execute(
        "UPDATE rooms_room SET direct_key = %s || ':' || direct_key WHERE kind = 'direct' AND workspace_id = %s",
        [str(workspace.pk), workspace.pk],
    )
    # The foreign key's checks are deferred to the commit; ALTER TABLE (NOT NULL, next) refuses to
    # run with checks pending: run them now.
    schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")


def back_to_global(apps, schema_editor):
    # Direct keys lose their workspace again (the column itself is dropped by the reversed AddField).
    schema_editor.execute(
        "UPDATE rooms_room SET direct_key = split_part(direct_key, ':', 2) || ':' || split_part(direct_key, ':', 3)"
        " WHERE kind = 'direct'"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("rooms", "0002_receipts"),
        ("workspaces", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="room",
            name="workspace",
            field=models.ForeignKey(
                null=True, on_delete=django.db.models.deletion.PROTECT, related_name="rooms", to="workspaces.workspace"
            ),
        ),
        migrations.RunPython(to_default_workspace, back_to_global),
        migrations.AlterField(
            model_name="room",
            name="workspace",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT, related_name="rooms", to="workspaces.workspace"
            ),
        ),
    ]
