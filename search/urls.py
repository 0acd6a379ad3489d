"""Search routes, spread into /api/v1/ (config/api_urls.py)."""

from django.urls import path

from search.api import SearchApi

urlpatterns = [path("search/", SearchApi.as_view(), name="api-search")]
