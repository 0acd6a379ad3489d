"""The template gallery: designs to start a board from. Each has layout positions (x, y) per component."""

from __future__ import annotations

from typing import Any


def _design(components: list[tuple[str, str, dict[str, Any], int, int]], connectors: list[tuple]) -> dict[str, Any]:
    comps = [{"id": i, "kind": k, "params": p, "x": x * 220 + 40, "y": y * 140 + 40} for i, k, p, x, y in components]
    conns = []
    for c in connectors:
        a, b = c[0], c[1]
        params = c[2] if len(c) > 2 else {}
        conns.append({"id": f"{a}->{b}", "from": a, "to": b, "params": params})
    return {"components": comps, "connectors": conns}


TEMPLATES: list[dict[str, Any]] = [
    {
        "id": "url-shortener",
        "title": "URL shortener",
        "description": "Redirects are reads served from a cache in front of the database; creating a short link "
        "is a write to the primary.",
        "design": _design(
            [
                ("users", "client", {"rate": 2000, "read_ratio": 0.95}, 0, 1),
                ("dns", "dns", {}, 1, 1),
                ("lb", "load_balancer", {"algorithm": "least_connections"}, 2, 1),
                ("api", "service", {"instances": 4, "concurrency": 8, "service_ms": 4}, 3, 1),
                ("cache", "cache", {"hit_ratio": 0.9}, 4, 0),
                ("db", "database", {"read_replicas": 1, "pool_size": 20, "read_ms": 3, "write_ms": 6}, 5, 1),
            ],
            [
                ("users", "dns"),
                ("dns", "lb"),
                ("lb", "api"),
                ("api", "cache", {"route": "read"}),
                ("api", "db", {"route": "write"}),
                ("cache", "db", {"route": "miss"}),
            ],
        ),
    },
    {
        "id": "chat",
        "title": "Chat system (Parley itself)",
        "description": "Parley: one socket, uvicorn workers (one per core, an event loop each), Redis for "
        "presence and events between processes, PostgreSQL for every message (a send is a write).",
        "design": _design(
            [
                ("clients", "client", {"rate": 1000, "read_ratio": 0.4}, 0, 1),
                ("lb", "load_balancer", {"algorithm": "round_robin", "latency_ms": 0.2}, 1, 1),
                (
                    "uvicorn",
                    "service",
                    {"instances": 2, "concurrency": 1, "service_ms": 1.2, "queue_limit": 2000, "timeout_ms": 3000},
                    2,
                    1,
                ),
                ("redis", "cache", {"hit_ratio": 0.7, "latency_ms": 0.3, "capacity_ops": 80000}, 3, 0),
                (
                    "postgres",
                    "database",
                    {"pool_size": 16, "read_ms": 1, "write_ms": 2.5, "pool_wait_limit": 1000},
                    4,
                    1,
                ),
            ],
            [
                ("clients", "lb"),
                ("lb", "uvicorn"),
                ("uvicorn", "redis", {"route": "read"}),
                ("uvicorn", "postgres", {"route": "write"}),
                ("redis", "postgres", {"route": "miss"}),
            ],
        ),
    },
    {
        "id": "video-streaming",
        "title": "Video streaming with CDN",
        "description": "Segments come from the CDN; misses go to the origin and object storage. Watch history "
        "is written to the database; uploads go through a transcoding queue.",
        "design": _design(
            [
                ("viewers", "client", {"rate": 20000, "read_ratio": 0.999, "pattern": "diurnal"}, 0, 1),
                ("dns", "dns", {}, 1, 1),
                ("cdn", "cdn", {"hit_ratio": 0.95, "latency_ms": 12}, 2, 1),
                ("lb", "load_balancer", {"algorithm": "least_connections"}, 3, 1),
                ("origin", "service", {"instances": 6, "concurrency": 16, "service_ms": 8}, 4, 1),
                ("storage", "object_storage", {"latency_ms": 40}, 5, 0),
                ("transcode", "queue", {"workers": 16, "worker_ms": 400, "capacity": 50000}, 5, 2),
                ("db", "database", {"pool_size": 30, "write_ms": 5}, 6, 2),
            ],
            [
                ("viewers", "dns"),
                ("dns", "cdn"),
                ("cdn", "lb", {"route": "miss"}),
                ("lb", "origin"),
                ("origin", "storage", {"route": "read"}),
                ("origin", "transcode", {"route": "write"}),
                ("transcode", "db"),
            ],
        ),
    },
    {
        "id": "checkout",
        "title": "E-commerce checkout with queue",
        "description": "Browsing reads the catalogue through a cache; a checkout is authorised by the payment "
        "provider and queued for fulfilment, whose workers write the order.",
        "design": _design(
            [
                ("shoppers", "client", {"rate": 500, "read_ratio": 0.8, "pattern": "spike"}, 0, 1),
                ("lb", "load_balancer", {}, 1, 1),
                ("gateway", "api_gateway", {"rate_limit_rps": 3000}, 2, 1),
                ("shop", "service", {"instances": 3, "concurrency": 16, "service_ms": 15, "retries": 2}, 3, 1),
                ("catalogue-cache", "cache", {"hit_ratio": 0.85}, 4, 0),
                ("payments", "external_api", {"latency_ms": 250, "error_rate": 0.02}, 4, 2),
                ("orders", "queue", {"workers": 8, "worker_ms": 40}, 5, 2),
                ("db", "database", {"read_replicas": 1, "pool_size": 20}, 6, 1),
            ],
            [
                ("shoppers", "lb"),
                ("lb", "gateway"),
                ("gateway", "shop"),
                ("shop", "catalogue-cache", {"route": "read"}),
                ("shop", "payments", {"route": "write"}),
                ("catalogue-cache", "db", {"route": "miss"}),
                ("payments", "orders"),
                ("orders", "db"),
            ],
        ),
    },
]


def template(template_id: str) -> dict[str, Any]:
    for t in TEMPLATES:
        if t["id"] == template_id:
            return t
    raise KeyError(template_id)
