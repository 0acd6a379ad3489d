from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("accounts", "0003_username_case_insensitive")]

    operations = [
        migrations.AddField(
            model_name="user",
            name="display_name",
            field=models.CharField(blank=True, default="", max_length=64),
        ),
        migrations.AddField(
            model_name="user",
            name="avatar",
            field=models.CharField(blank=True, default="", max_length=32),
        ),
    ]
