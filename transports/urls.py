from django.urls import path

from transports.api import EventsApi, PollApi

urlpatterns = [
    path("events/", EventsApi.as_view(), name="api-events"),
    path("poll/", PollApi.as_view(), name="api-poll"),
]
