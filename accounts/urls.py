"""The account's pages (included by config/urls.py) and its REST routes (config/api_urls.py)."""

from django.urls import path, re_path

from accounts import api, views

urlpatterns = [
    path("account/", views.account, name="account"),
    path("account/email/<str:token>/", views.email_change_confirm, name="email-change-confirm"),
    re_path(r"^avatars/(?P<user_id>[0-9]{1,18})/(?P<token>[0-9a-f]{32})\.png$", views.avatar, name="avatar"),
    path("password-reset/", views.PasswordResetView.as_view(), name="password-reset"),
    path("password-reset/sent/", views.PasswordResetSentView.as_view(), name="password-reset-sent"),
    path("reset/<uidb64>/<token>/", views.PasswordResetConfirmView.as_view(), name="password-reset-confirm"),
    path("reset/done/", views.PasswordResetCompleteView.as_view(), name="password-reset-complete"),
]

api_urlpatterns = [
    path("me/avatar/", api.AvatarApi.as_view(), name="api-me-avatar"),
    path("me/password/", api.PasswordChangeApi.as_view(), name="api-me-password"),
    path("me/email/confirm/", api.EmailConfirmApi.as_view(), name="api-me-email-confirm"),
]
