from django.contrib.auth import views as auth_views
from django.urls import include, path

from tests.oidc_provider import views

urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view(template_name="registration/login.html")),
    path("testing/setup/", views.setup),
    path("", include("oauth2_provider.urls", namespace="oauth2_provider")),
]
