"""Production settings come from the environment and fail loudly when something is missing."""

import os
import subprocess
import sys
from pathlib import Path

from django.conf import settings

ROOT = Path(__file__).resolve().parent.parent
PRODUCTION = {
    "DEBUG": "0",
    "PARLEY_TESTING": "0",
    "SECRET_KEY": "q8Zr-2vN!xL4pT7mWc9@yB1hK6sD3fJ0gU5eA8iO-nR2tV7wX4zQ1bM6cE9",
    "ALLOWED_HOSTS": "chat.example.com",
    "CSRF_TRUSTED_ORIGINS": "https://chat.example.com",
}


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {
        **os.environ,
        "DATABASE_URL": os.environ.get("DATABASE_URL", ""),
        "REDIS_URL": settings.REDIS_URL,
        **env,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=120
    )


def test_check_deploy_passes_with_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr


def test_production_start_up_fails_without_a_secret_key():
    result = manage("check", **{**PRODUCTION, "SECRET_KEY": ""})
    assert result.returncode != 0
    assert "SECRET_KEY is required" in result.stderr


def test_a_malformed_boolean_stops_start_up():
    result = manage("check", **{**PRODUCTION, "DEBUG": "maybe"})
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


def test_the_openapi_schema_documents_the_api(admin_client):
    response = admin_client.get("/api/v1/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    assert "/api/v1/rooms/{room_id}/messages/" in paths and "/api/v1/auth/ws-ticket/" in paths


def test_scale_out_settings_come_from_the_environment():
    script = (
        "from django.conf import settings as s; "
        "print(s.DATABASES['replica']['HOST'], s.DATABASES['replica']['TEST']['MIRROR'], "
        "s.REDIS_CHANNEL_URLS, s.DATABASE_ROUTERS)"
    )
    result = manage(
        "shell",
        "-c",
        script,
        **PRODUCTION,
        DATABASE_REPLICA_URL="postgres://reader@replica.internal:5432/parley",
        REDIS_CHANNEL_URLS="redis://layer-1:6379/0,redis://layer-2:6379/0",
    )
    assert result.returncode == 0, result.stderr
    printed = result.stdout.strip().splitlines()[-1]
    assert printed.split(" ", 2)[:2] == ["replica.internal", "default"]
    assert "['redis://layer-1:6379/0', 'redis://layer-2:6379/0']" in printed
    assert "config.db_router.PrimaryReplicaRouter" in printed


def test_only_scroll_back_reads_may_go_to_a_replica(monkeypatch, make_user, db):
    """Sync and forward pages must never trail the primary; older history may."""
    import uuid

    from messaging import selectors
    from messaging.services import message_send
    from rooms.services import room_create

    asked = []
    monkeypatch.setattr(selectors, "history_database", lambda: asked.append(1) or "default")
    user = make_user()
    room = room_create(creator=user, name="Replica")
    for number in range(3):
        message_send(user=user, room_id=room.pk, content=f"m{number}", client_msg_id=uuid.uuid4())
    selectors.messages_page(user=user, room_id=room.pk, after_sequence=0)
    selectors.messages_page(user=user, room_id=room.pk)
    selectors.changes_page(user=user, room_id=room.pk, after_sequence=0)
    assert asked == []
    page, _ = selectors.messages_page(user=user, room_id=room.pk, before_sequence=3)
    assert asked == [1] and [m.sequence for m in page] == [2, 1]
