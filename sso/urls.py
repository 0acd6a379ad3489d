"""Single sign-on's pages (included by config/urls.py) and its REST route (config/api_urls.py)."""

from django.urls import path

from sso import api, views

urlpatterns = [
    path("sso/callback/", views.callback, name="sso-callback"),
    path("sso/<slug:slug>/login/", views.login_start, name="sso-login"),
    path("w/<slug:slug>/sign-in/", views.workspace_sign_in, name="sso-workspace-sign-in"),
]

api_urlpatterns = [
    path("auth/sso/token/", api.SsoTokenApi.as_view(), name="api-sso-token"),
]
