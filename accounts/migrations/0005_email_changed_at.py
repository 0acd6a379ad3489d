from django.db import migrations, models


class Migration(migrations.Migration):
    """Email changes confirmed by mail (issue 16): when the address last changed, so that each
    confirmation link works once (docs/accounts.md)."""

    dependencies = [("accounts", "0004_profile")]

    operations = [
        migrations.AddField(
            model_name="user",
            name="email_changed_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
