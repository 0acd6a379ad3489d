"""The URLconf's order: Django tries its patterns one by one, so what comes first is cheap to reach."""

from django.urls import URLResolver, get_resolver, resolve


def routes(patterns, prefix=""):
    """Every route of these patterns, as its full pattern string (regexes as written)."""
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            yield from routes(pattern.url_patterns, route)
        else:
            yield route


def test_an_api_request_is_never_tried_against_the_pages():
    for path in ("/api/v1/auth/ws-ticket/", "/api/v1/rooms/", "/api/v1/events/"):
        tried = resolve(path).tried
        assert all(str(patterns[0].pattern) == "api/v1/" for patterns in tried), (path, tried)


def test_no_page_route_starts_where_the_api_does():
    # The API's routes come before the pages': a page under api/ would be shadowed by them.
    pages = [p for p in get_resolver().url_patterns if str(p.pattern) != "api/v1/"]
    assert [route for route in routes(pages) if route.lstrip("^").startswith("api/")] == []
