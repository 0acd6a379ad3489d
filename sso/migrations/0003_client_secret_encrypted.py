"""Providers' client secrets encrypted at rest (sso.secrets). The column becomes text (a Fernet
token of a 255-character secret is about 420 characters) and every stored secret is encrypted;
going back writes them in clear again."""

from django.db import migrations

import sso.secrets


def encrypt_all(apps, schema_editor):
    provider_model = apps.get_model("sso", "SsoProvider")
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT id, client_secret FROM sso_ssoprovider")
        for ident, stored in cursor.fetchall():
            if stored and not stored.startswith(sso.secrets.PREFIX):
                provider_model.objects.filter(pk=ident).update(client_secret=stored)  # encrypted on the way


def decrypt_all(apps, schema_editor):
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT id, client_secret FROM sso_ssoprovider")
        for ident, stored in cursor.fetchall():
            clear = sso.secrets.decrypt(stored or "")
            cursor.execute("UPDATE sso_ssoprovider SET client_secret = %s WHERE id = %s", [clear[:255], ident])


class Migration(migrations.Migration):
    dependencies = [("sso", "0002_workspace")]

    operations = [
        migrations.AlterField(
            model_name="ssoprovider",
            name="client_secret",
            field=sso.secrets.EncryptedSecretField(),
        ),
        migrations.RunPython(encrypt_all, decrypt_all),
    ]
