"""A real OpenID Connect provider for the single sign-on tests: django-oauth-toolkit with OIDC on,
in a Django project of its own (SQLite, its own process), never part of Parley.

tests/test_sso.py starts it with uvicorn (`tests.oidc_provider.asgi:application`) and sets it up
over HTTP (`POST /testing/setup/`, guarded by a token): users with their email and email_verified,
and OAuth clients. People sign in at its login page, as at any identity provider."""
