from django.db import migrations, models
from django.db.models.functions import Lower

import accounts.models


def refuse_clashing_usernames(apps, schema_editor):
    """Names equal but for case cannot both stay: list them and stop, so an operator renames
    (or merges) them before the constraint can be added. Nothing is changed automatically."""
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT lower(username), array_agg(username || ' (id ' || id || ')' ORDER BY id)
              FROM accounts_user GROUP BY lower(username) HAVING count(*) > 1 ORDER BY 1
            """
        )
        clashes = cursor.fetchall()
    if clashes:
        lines = "\n".join(f"  {', '.join(names)}" for _, names in clashes)
        raise RuntimeError(
            "Usernames must be unique whatever their case. Rename one of each group below "
            f"(e.g. in Django admin), then run migrate again:\n{lines}"
        )


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_receipts")]

    operations = [
        migrations.AlterModelManagers(name="user", managers=[("objects", accounts.models.UserManager())]),
        migrations.RunPython(refuse_clashing_usernames, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="user",
            constraint=models.UniqueConstraint(
                Lower("username"),
                name="user_username_lower_unique",
                violation_error_message="A user with that username already exists.",
            ),
        ),
    ]
