"""Parley settings. Everything that differs between machines comes from the environment.

Production differs from development only by environment variables. A missing or malformed
required value stops start-up with a message naming the variable.
"""

import os
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from core import logs, tracking
from core.dbdeadline import DeadlineConnection
from core.ratelimit import Rate

BASE_DIR = Path(__file__).resolve().parent.parent


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be an integer, got {raw!r}") from None


def env_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name} must be a number, got {raw!r}") from None


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def env_required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        raise ImproperlyConfigured(f"The environment variable {name} is required.")
    return value


DEBUG = env_bool("DEBUG", False)
TESTING = env_bool("PARLEY_TESTING", False)

# Development and tests may run without a secret; production never does.
if DEBUG or TESTING:
    SECRET_KEY = os.environ.get("SECRET_KEY") or "dev-insecure-parley-secret-key-change-me-0123456789"
else:
    SECRET_KEY = env_required("SECRET_KEY")
    if len(SECRET_KEY) < 50:
        raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters long.")
# Previous keys, still accepted for sessions and signed values while rotating (docs/operations.md).
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1" if DEBUG or TESTING else "")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")

# Every process keeps a pool of PostgreSQL connections (psycopg_pool, through Django's backend):
# requests run their sync code on threads kept between requests (core/threads.py), and a connection
# per thread would leave a PostgreSQL backend idle on each of them; the pool lends them out.
# DB_POOL_MAX_SIZE=0 turns the pool off (then DB_CONN_MAX_AGE applies), e.g. behind PgBouncer in
# transaction mode.
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 16)
# Threads a process runs requests' sync code on at most (core/threads.py); a request finding them
# all busy waits for one. Fewer keep the sockets' event loop livelier while sync requests run (each
# thread takes the GIL from it); more let slow requests, or requests waiting on a distant or
# failing PostgreSQL, wait side by side (docs/performance.md, "Sync requests on 4 threads").
REQUEST_THREADS = env_int("REQUEST_THREADS", 4)
conn_max_age = 0 if DB_POOL_MAX_SIZE else env_int("DB_CONN_MAX_AGE", 0 if TESTING else 60)
DATABASES = {
    "default": dj_database_url.parse(
        env_required("DATABASE_URL"),
        conn_max_age=conn_max_age,
        conn_health_checks=True,  # with the pool: a connection is checked as it is taken
    )
}
if DB_POOL_MAX_SIZE:
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1,
        "max_size": DB_POOL_MAX_SIZE,
        # Seconds to wait for a free connection before the request fails: short, so that during a
        # PostgreSQL outage requests answer `unavailable` (503) quickly; the pool retries every
        # second and is back at once when PostgreSQL is (core/dbpool.py).
        "timeout": env_int("DB_POOL_TIMEOUT", 3),
        # Its connections bound every wait for PostgreSQL's answer during a request
        # (DB_STATEMENT_TIMEOUT, core/dbdeadline.py).
        "connection_class": DeadlineConnection,
    }
    import core.dbpool  # noqa: E402, F401
# A PostgreSQL that accepts connections but never answers (hung, or a network dropping packets)
# must not hold requests and sends for ever: connecting gives up after DB_CONNECT_TIMEOUT seconds
# (libpq's connect_timeout, at least 2; a DATABASE_URL's own wins), and a request, or a socket's
# batch of sends, waits at most DB_STATEMENT_TIMEOUT seconds for an answer before the connection
# is dropped and it answers `unavailable` (core/dbdeadline.py; Celery tasks are not bounded).
DB_CONNECT_TIMEOUT = env_int("DB_CONNECT_TIMEOUT", 3)
DB_STATEMENT_TIMEOUT = env_float("DB_STATEMENT_TIMEOUT", 3.0)
DATABASES["default"].setdefault("OPTIONS", {}).setdefault("connect_timeout", DB_CONNECT_TIMEOUT)
# The statements we prepare on a connection (core.sql on Django's, core.asyncdb on the event loop's)
# are planned once per connection: PostgreSQL's own choice, once a day's messages were analyzed,
# was to plan the send statement anew at every send (docs/performance.md, "PostgreSQL planned
# every send"). Not where the OPTIONS choose a prepare_threshold (set it above this line): a
# pooler in transaction mode refuses startup options, and nothing of ours is prepared then.
if "prepare_threshold" not in DATABASES["default"]["OPTIONS"]:
    _options = DATABASES["default"]["OPTIONS"].get("options", "")
    DATABASES["default"]["OPTIONS"]["options"] = f"{_options} -c plan_cache_mode=force_generic_plan".strip()
# django-postgres-extra's backend adds partitioning DDL on top of Django's PostgreSQL backend.
DATABASES["default"]["ENGINE"] = "psqlextra.backend"
# We use no hstore fields, and the embedded PostgreSQL (pgserver wheel) ships no contrib extensions.
POSTGRES_EXTRA_AUTO_EXTENSION_SET_UP = False

# Optional streaming replica for scroll-back reads (config/db_router.py).
if os.environ.get("DATABASE_REPLICA_URL"):
    DATABASES["replica"] = dj_database_url.parse(
        os.environ["DATABASE_REPLICA_URL"],
        conn_max_age=conn_max_age,
        conn_health_checks=DATABASES["default"]["CONN_HEALTH_CHECKS"],
    )
    DATABASES["replica"]["OPTIONS"] = dict(DATABASES["default"].get("OPTIONS", {}))
    DATABASES["replica"]["ENGINE"] = "psqlextra.backend"
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
DATABASE_ROUTERS = ["config.db_router.PrimaryReplicaRouter"]

REDIS_URL = env_required("REDIS_URL")
# The channel layer can be sharded over several Redis servers (groups are spread by a
# consistent hash); by default it shares REDIS_URL with Celery, the cache and tickets.
REDIS_CHANNEL_URLS = env_list("REDIS_CHANNEL_URLS") or [REDIS_URL]

# daphne's app is only its `runserver` (an ASGI development server). Importing it installs
# Twisted's reactor: 165 ms of every worker's start (a fifth of it; a restarted worker is back that
# much sooner in a reconnect storm) for nothing under uvicorn or `python -m daphne`.
RUNSERVER = sys.argv[1:2] == ["runserver"]
INSTALLED_APPS = [
    *(["daphne"] if RUNSERVER else []),
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "psqlextra",
    "channels",
    "rest_framework",
    "rest_framework_simplejwt.token_blacklist",
    "drf_spectacular",
    "accounts",
    "rooms",
    "notifications",
    "messaging",
    "presence",
    "boards",
    "simulator",
    "transports",
    "search",
    "operations",
    "audit",
    "attachments",
    "sso",
    "workspaces",
    "e2ee",
]

MIDDLEWARE = [
    "core.logs.RequestContextMiddleware",  # request id, log context, access line, HTTP metrics
    "audit.context.AuditContextMiddleware",  # the client address the audit log records
    "core.dbdeadline.DeadlineMiddleware",  # the whole request is bounded
    # Django's own, each step on the event loop unless it may block (core/middleware.py).
    "core.middleware.SecurityMiddleware",
    "core.staticfiles.WhiteNoiseMiddleware",  # WhiteNoise, also on the event loop (no thread per request)
    "core.csp.ContentSecurityPolicyMiddleware",
    "core.middleware.SessionMiddleware",
    "core.middleware.CommonMiddleware",
    "core.middleware.CsrfViewMiddleware",
    "core.middleware.AuthenticationMiddleware",
    "core.middleware.MessageMiddleware",
    "core.middleware.XFrameOptionsMiddleware",
]

# Django looks for its security, clickjacking and CSRF middleware by path; ours are subclasses,
# and core/checks.py runs the same checks for them (core.W001-W003 instead).
SILENCED_SYSTEM_CHECKS = ["security.W001", "security.W002", "security.W003"]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "core.context_processors.client_config",
            ],
        },
    },
]

AUTH_USER_MODEL = "accounts.User"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
if TESTING:
    # Hashing dominates test time; production keeps the default PBKDF2 hasher.
    PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Where collectstatic writes (and WhiteNoise serves from, DEBUG off). The benchmarks' smoke tests
# give theirs a directory of their own: a production collectstatic deletes and rewrites hashed
# files, which a server starting meanwhile on the same directory found missing.
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG or TESTING
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG or TESTING

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Events between server processes go over Redis pub/sub (core.pubsub), sharded over
# REDIS_CHANNEL_URLS; Channels' channel layer is not used (no consumer has a channel of its own).

# Redis must answer within seconds or not at all: a Redis that accepts connections but never
# answers (hung, or a network dropping packets) would otherwise hold every request that touches it
# (the REST throttles, tickets) forever. Past these, redis-py raises, and the caller answers
# `unavailable` or, for rate limits, lets the request through (core.throttles). redis-py does not
# retry. The bus between processes has its own timeouts (core.pubsub).
REDIS_CONNECT_TIMEOUT = env_float("REDIS_CONNECT_TIMEOUT", 2.0)
REDIS_TIMEOUT = env_float("REDIS_TIMEOUT", 2.0)
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "parley",
        "OPTIONS": {"socket_connect_timeout": REDIS_CONNECT_TIMEOUT, "socket_timeout": REDIS_TIMEOUT},
    }
}

REST_FRAMEWORK: dict[str, Any] = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework_simplejwt.authentication.JWTAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.api.JSONParser"],
    "EXCEPTION_HANDLER": "core.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    # core.throttles; the socket's limits are RATE_LIMITS below.
    "DEFAULT_THROTTLE_CLASSES": ["core.throttles.WriteThrottle"],
    "DEFAULT_THROTTLE_RATES": {
        "signin_address": os.environ.get("THROTTLE_SIGNIN_ADDRESS", "30/min"),
        "signin_account": os.environ.get("THROTTLE_SIGNIN_ACCOUNT", "10/min"),
        "signup_address": os.environ.get("THROTTLE_SIGNUP_ADDRESS", "10/hour"),
        "send": os.environ.get("THROTTLE_SEND", "300/min"),
        "edit": os.environ.get("THROTTLE_EDIT", "120/min"),
        "receipt": os.environ.get("THROTTLE_RECEIPT", "300/min"),
        "typing": os.environ.get("THROTTLE_TYPING", "120/min"),  # the socket's 2 a second (POST rooms/{id}/typing/)
        # POST boards/{id}/updates/ and .../awareness/: the socket's board (30 a second) and
        # awareness (20 a second, per client; a user's clients together 60) budgets, for clients
        # on SSE or long-polling.
        "board": os.environ.get("THROTTLE_BOARD", "30/s"),
        "awareness": os.environ.get("THROTTLE_AWARENESS", "20/s"),
        "awareness_user": os.environ.get("THROTTLE_AWARENESS_USER", "60/s"),
        # Mail people make the server send (core.throttles.budgets_take): per user who asks and
        # per address it goes to, so nobody can make Parley flood a mailbox.
        "email_change_user": os.environ.get("THROTTLE_EMAIL_CHANGE_USER", "5/hour"),
        "email_change_address": os.environ.get("THROTTLE_EMAIL_CHANGE_ADDRESS", "3/hour"),
        "password_reset_address": os.environ.get("THROTTLE_PASSWORD_RESET_ADDRESS", "5/hour"),
        "invitation_user": os.environ.get("THROTTLE_INVITATION_USER", "50/hour"),
        "invitation_address": os.environ.get("THROTTLE_INVITATION_ADDRESS", "3/hour"),
    },
}
if DEBUG:
    REST_FRAMEWORK["DEFAULT_RENDERER_CLASSES"].append("rest_framework.renderers.BrowsableAPIRenderer")

SIMPLE_JWT = {
    "ACCESS_TOKEN_LIFETIME": timedelta(minutes=5),
    "REFRESH_TOKEN_LIFETIME": timedelta(days=14),
    "ROTATE_REFRESH_TOKENS": True,
    "BLACKLIST_AFTER_ROTATION": True,
    "UPDATE_LAST_LOGIN": True,
    "SIGNING_KEY": SECRET_KEY,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Parley API",
    "DESCRIPTION": "Rooms and messages for mobile clients. Real-time events arrive over /ws/.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # Our PATCH views validate their Input in full (no partial=True): document exactly that,
    # required fields included, rather than drf-spectacular's "Patched…" all-optional copies.
    "COMPONENT_SPLIT_PATCH": False,
    "ENUM_NAME_OVERRIDES": {
        "RoomKindEnum": "rooms.models.Room.Kind",
        "OpenRoomKindEnum": "rooms.models.OPEN_ROOM_KINDS",
        "RoleEnum": "rooms.models.Membership.Role",
        "WorkspaceRoleEnum": "workspaces.models.WorkspaceMembership.Role",
        "SimulationStatusEnum": "simulator.models.SimulationRun.Status",
        "AttachmentKindEnum": "attachments.models.Attachment.Kind",
        "AttachmentStatusEnum": "attachments.models.Attachment.Status",
        "AttachmentThumbnailEnum": "attachments.models.Attachment.Thumbnail",
    },
}

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE = {
    "create-message-partitions": {
        "task": "messaging.tasks.create_partitions",
        "schedule": timedelta(hours=1),
    },
    "archive-message-partitions": {
        "task": "messaging.tasks.archive_partitions",
        "schedule": timedelta(hours=env_int("ARCHIVE_EVERY_HOURS", 24)),
    },
    "compact-boards": {
        "task": "boards.tasks.compact_boards",
        "schedule": timedelta(seconds=env_int("BOARD_COMPACT_EVERY_SECONDS", 60)),
    },
    "prune-boards": {
        "task": "boards.tasks.prune_boards",
        "schedule": timedelta(hours=24),
    },
    "reap-simulation-runs": {
        "task": "simulator.tasks.reap_runs",
        "schedule": timedelta(seconds=60),
    },
    "prune-task-runs": {
        "task": "operations.tasks.prune_task_runs",
        "schedule": timedelta(hours=24),
    },
    "prune-attachment-uploads": {
        "task": "attachments.tasks.prune_uploads",
        "schedule": timedelta(hours=1),
    },
    # Notifications a dead process owed (docs/notifications.md, "Durability").
    "deliver-pending-notifications": {
        "task": "notifications.tasks.deliver_pending",
        "schedule": timedelta(seconds=env_int("NOTIFICATION_SWEEP_EVERY_SECONDS", 15)),
    },
}
# Operators (operations/): Celery task runs are kept this many days in admin; each server process
# reports its live connection counts to Redis every CONNECTIONS_REPORT_SECONDS (core/hub.py), and
# admin ignores a process's entry once it is CONNECTIONS_STALE_SECONDS old.
TASK_RUNS_KEEP_DAYS = env_int("TASK_RUNS_KEEP_DAYS", 14)
CONNECTIONS_REPORT_SECONDS = env_float("CONNECTIONS_REPORT_SECONDS", 5.0)
CONNECTIONS_STALE_SECONDS = env_float("CONNECTIONS_STALE_SECONDS", 20.0)
# Board compaction and what replay keeps (boards/compaction.py): a board whose log has grown
# BOARD_COMPACT_AFTER updates past its latest snapshot is folded into a new one; checkpoint
# snapshots are kept at least BOARD_CHECKPOINT_EVERY updates (and a document's worth of log bytes)
# apart; folded updates are deleted only once they are older than BOARD_KEEP_UPDATES_DAYS and not
# among the board's last BOARD_KEEP_UPDATES.
BOARD_COMPACT_AFTER = env_int("BOARD_COMPACT_AFTER", 500)
BOARD_CHECKPOINT_EVERY = env_int("BOARD_CHECKPOINT_EVERY", 1000)
BOARD_KEEP_UPDATES = env_int("BOARD_KEEP_UPDATES", 1000)
BOARD_KEEP_UPDATES_DAYS = env_int("BOARD_KEEP_UPDATES_DAYS", 30)

# Simulations (simulator/, docs/protocol.md "Simulations"): runs execute in Celery workers. Each user
# has at most SIM_MAX_CONCURRENT_RUNS queued or running; a run simulates at most SIM_MAX_DURATION_S
# seconds and SIM_MAX_REQUESTS requests and takes at most SIM_MAX_WALL_S of a worker's time (a paced
# run: duration / speed). Progress is written and streamed at most SIM_PROGRESS_HZ times a second; a
# running run whose worker has not reported for SIM_STALE_AFTER_S is failed (its worker died).
SIM_MAX_CONCURRENT_RUNS = env_int("SIM_MAX_CONCURRENT_RUNS", 2)
SIM_MAX_DURATION_S = env_int("SIM_MAX_DURATION_S", 3600)
SIM_MAX_REQUESTS = env_int("SIM_MAX_REQUESTS", 5_000_000)
SIM_MAX_WALL_S = env_int("SIM_MAX_WALL_S", 900)
SIM_PROGRESS_HZ = env_int("SIM_PROGRESS_HZ", 4)
SIM_STALE_AFTER_S = env_int("SIM_STALE_AFTER_S", 60)
# The Celery queue runs go to (a dedicated worker may take only these: `celery worker -Q simulations`).
SIM_CELERY_QUEUE = os.environ.get("SIM_CELERY_QUEUE", "celery")

# Product limits, documented in docs/protocol.md.
MESSAGE_MAX_LENGTH = 4000
WS_MAX_FRAME_BYTES = 64 * 1024
# board.update frames carry a base64 Yjs update of up to 256 KB (342 KB of text): they alone may be
# this big (docs/protocol.md "Boards").
BOARD_MAX_FRAME_BYTES = 400 * 1024
# A socket whose client has left this much unread (on top of what the kernel holds) is closed with
# 4429: it would otherwise hold its backlog in server memory; the client catches up when it
# reconnects (messaging.consumers).
WS_MAX_BACKLOG_BYTES = env_int("WS_MAX_BACKLOG_BYTES", 1024 * 1024)
WS_TICKET_TTL_SECONDS = 30

# Server-Sent Events and long-polling (transports/): a comment every TRANSPORT_PING_SECONDS keeps
# proxies from timing out a quiet stream; a long-poll waits at most TRANSPORT_POLL_WAIT_SECONDS;
# a stream's resume positions stay readable for TRANSPORT_RESUME_TTL_SECONDS after its last write.
TRANSPORT_PING_SECONDS = env_int("TRANSPORT_PING_SECONDS", 15)
TRANSPORT_POLL_WAIT_SECONDS = env_int("TRANSPORT_POLL_WAIT_SECONDS", 25)
# A long-poll's stream keeps following (and buffering) for this long after answering, for the
# client's next poll, so no unnumbered event (receipts, typing, presence) falls between two polls.
TRANSPORT_POLL_LINGER_SECONDS = env_int("TRANSPORT_POLL_LINGER_SECONDS", 30)
TRANSPORT_RESUME_TTL_SECONDS = env_int("TRANSPORT_RESUME_TTL_SECONDS", 600)


def env_rate(name: str, default: str) -> Rate:
    raw = os.environ.get(name) or default
    try:
        return Rate.parse(raw)
    except ValueError:
        raise ImproperlyConfigured(f'{name} must be "per_second,burst" (e.g. "5,20"), got {raw!r}') from None


# Socket frames, by kind: per socket, and per user on each server process (core.ratelimit,
# docs/protocol.md "Rate limits"). RATE_LIMIT_SOCKET_SEND="5,20" is 5 a second, bursts of 20.
_RATE_DEFAULTS = {
    "socket": {
        "frame": "50,200",
        "send": "10,40",
        "edit": "3,15",
        "typing": "2,5",
        "receipt": "3,15",
        "read": "5,20",
        "board": "30,120",  # board.update
        "awareness": "20,20",  # board.awareness: over it, dropped silently
        "ping": "1,5",  # ping (answered by pong): clients send one only while an answer is overdue
    },
    "user": {"send": "20,80", "edit": "5,30", "typing": "4,10", "receipt": "6,30", "read": "10,40", "board": "60,240"},
}
RATE_LIMITS = {
    level: {kind: env_rate(f"RATE_LIMIT_{level.upper()}_{kind.upper()}", rate) for kind, rate in kinds.items()}
    for level, kinds in _RATE_DEFAULTS.items()
}
# A socket refused this many times within RATE_LIMIT_FLOOD_SECONDS is closed with 1008.
RATE_LIMIT_FLOOD_STRIKES = env_int("RATE_LIMIT_FLOOD_STRIKES", 100)
RATE_LIMIT_FLOOD_SECONDS = 10
MESSAGE_PAGE_MAX = 100
# Notifications (notifications/, docs/notifications.md): who delivers them once stored in the
# inbox, in order (dotted paths of notifications.senders.Sender classes; mobile push would be one
# more), and the inbox's page.
NOTIFICATION_SENDERS = env_list("NOTIFICATION_SENDERS") or ["notifications.senders.SocketSender"]
NOTIFICATION_PAGE_MAX = 100
# The sweeper delivers notifications still owed this long after their message committed (the fast
# path normally takes milliseconds; docs/notifications.md, "Durability").
NOTIFICATION_SWEEP_AFTER_SECONDS = env_int("NOTIFICATION_SWEEP_AFTER_SECONDS", 5)
MESSAGE_PARTITION_DAYS_AHEAD = env_int("MESSAGE_PARTITION_DAYS_AHEAD", 7)
MESSAGE_HOT_DAYS = env_int("MESSAGE_HOT_DAYS", 7)
PSQLEXTRA_PARTITIONING_MANAGER = "messaging.partitions.manager"

# Archive of message days older than MESSAGE_HOT_DAYS: an S3-compatible bucket when S3_BUCKET is
# set (credentials from S3_ACCESS_KEY_ID / S3_SECRET_ACCESS_KEY, else boto3's usual chain), or a
# local directory with the same layout otherwise.
S3_BUCKET = os.environ.get("S3_BUCKET", "")
S3_ENDPOINT_URL = os.environ.get("S3_ENDPOINT_URL", "")
S3_REGION = os.environ.get("S3_REGION", "us-east-1")
S3_ACCESS_KEY_ID = os.environ.get("S3_ACCESS_KEY_ID", "")
S3_SECRET_ACCESS_KEY = os.environ.get("S3_SECRET_ACCESS_KEY", "")
ARCHIVE_LOCAL_DIR = os.environ.get("ARCHIVE_LOCAL_DIR", str(BASE_DIR / ".data" / "archive"))
ARCHIVE_PREFIX = os.environ.get("ARCHIVE_PREFIX", "messages")
# Decoded archive days kept in memory per process for scroll-back into the archive.
ARCHIVE_CACHE_DAYS = env_int("ARCHIVE_CACHE_DAYS", 8)

# Account erasure (GDPR; accounts/erasure.py, docs/accounts.md "Erasing an account"): what becomes of
# the erased person's messages, in PostgreSQL and in archived days alike. "delete": a tombstone (text,
# attachments and reactions gone); "anonymise": the text stays, shown as from "Deleted user".
ERASURE_MESSAGES = os.environ.get("ERASURE_MESSAGES", "delete").strip().lower()
if ERASURE_MESSAGES not in {"delete", "anonymise"}:
    raise ImproperlyConfigured(f'ERASURE_MESSAGES must be "delete" or "anonymise", got {ERASURE_MESSAGES!r}')

# Attachments (attachments/, docs/attachments.md): in the archive's store (the S3_* settings above)
# under ATTACHMENT_PREFIX, or, with no bucket, in ATTACHMENT_LOCAL_DIR served by Parley itself
# through the same presigned-upload protocol.
ATTACHMENT_PREFIX = os.environ.get("ATTACHMENT_PREFIX", "attachments")
ATTACHMENT_LOCAL_DIR = os.environ.get("ATTACHMENT_LOCAL_DIR", str(BASE_DIR / ".data" / "attachments"))
ATTACHMENT_MAX_BYTES = env_int("ATTACHMENT_MAX_BYTES", 25 * 1024 * 1024)
ATTACHMENT_MAX_PIXELS = env_int("ATTACHMENT_MAX_PIXELS", 40_000_000)  # an image's width x height
ATTACHMENT_URL_SECONDS = env_int("ATTACHMENT_URL_SECONDS", 300)  # presigned upload and download URLs
ATTACHMENT_MAX_PENDING = env_int("ATTACHMENT_MAX_PENDING", 20)  # uploads a user has started, not sent
MESSAGE_MAX_ATTACHMENTS = 10


def _store_origins() -> list[str]:
    """Where browsers upload to and download from: the S3 endpoint (CSP connect-src, img-src)."""
    if not S3_BUCKET:
        return []  # the local store is Parley itself: 'self'
    if S3_ENDPOINT_URL:
        parts = urlsplit(S3_ENDPOINT_URL)
        return [f"{parts.scheme}://{parts.netloc}"]
    return [f"https://s3.{S3_REGION}.amazonaws.com", "https://s3.amazonaws.com"]


ATTACHMENT_STORE_ORIGINS = env_list("ATTACHMENT_STORE_ORIGINS") or _store_origins()

# Profiles (accounts/avatars.py): avatars are stored in the archive's store (S3_BUCKET, else
# ARCHIVE_LOCAL_DIR) under avatars/; an upload may be at most AVATAR_MAX_BYTES.
AVATAR_MAX_BYTES = env_int("AVATAR_MAX_BYTES", 5 * 1024 * 1024)

# Email: password resets (accounts/views.py). Printed to the console in development (DEBUG) and
# tests, sent through SMTP otherwise (EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER, EMAIL_HOST_PASSWORD,
# EMAIL_USE_TLS or EMAIL_USE_SSL). A reset link works for PASSWORD_RESET_TIMEOUT seconds, once.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND") or (
    "django.core.mail.backends.console.EmailBackend"
    if DEBUG or TESTING
    else "django.core.mail.backends.smtp.EmailBackend"
)
EMAIL_HOST = os.environ.get("EMAIL_HOST", "localhost")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("Set EMAIL_USE_TLS (STARTTLS) or EMAIL_USE_SSL, not both.")
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "Parley <noreply@localhost>")
PASSWORD_RESET_TIMEOUT = env_int("PASSWORD_RESET_TIMEOUT", 3600)
# A new email address is applied only from the link mailed to it, which works for this many
# seconds, once (accounts.services.email_change_request, docs/accounts.md).
EMAIL_CHANGE_TIMEOUT = env_int("EMAIL_CHANGE_TIMEOUT", 86400)

# Single sign-on (sso/, docs/sso.md): providers are configured in admin. A mobile app's sign-in ends
# with a redirect to one of these URIs (exact match, e.g. "parley://sso"), carrying a one-time code.
SSO_MOBILE_REDIRECT_URIS = env_list("SSO_MOBILE_REDIRECT_URIS")

# Behind TLS in production. Local runs (DEBUG) stay on plain HTTP.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG and not TESTING)
SESSION_COOKIE_SECURE = not DEBUG and not TESTING
CSRF_COOKIE_SECURE = not DEBUG and not TESTING
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG or TESTING else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG and not TESTING
SECURE_HSTS_PRELOAD = not DEBUG and not TESTING
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Content-Security-Policy of every page (django-csp through core/csp.py, which adds the page's own
# WebSocket origin to connect-src and gives non-HTML responses `default-src 'none'; frame-ancestors
# 'none'`). Scripts and styles come from our own files only: no inline script or style, no eval.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'none'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        # data: for the <select> arrow drawn in static/css/app.css; the store for attachments' images
        "img-src": ["'self'", "data:", *ATTACHMENT_STORE_ORIGINS],
        "connect-src": ["'self'", *ATTACHMENT_STORE_ORIGINS],  # + ws(s)://<host> (core/csp.py); uploads
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Logs (core/logs.py): structured, through structlog; JSON lines in production, readable lines in
# development (LOG_FORMAT=json|console overrides). Secrets and message bodies are never logged.
LOG_FORMAT = os.environ.get("LOG_FORMAT") or ("console" if DEBUG else "json")
if LOG_FORMAT not in ("json", "console"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or console, got {LOG_FORMAT!r}")
LOGGING = logs.logging_config(json=LOG_FORMAT == "json", level=os.environ.get("LOG_LEVEL", "INFO"))
# Celery logs through the same pipeline instead of installing its own handlers.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# Metrics (core/metrics.py, docs/metrics.md): /metrics answers only `Authorization: Bearer
# <METRICS_TOKEN>`; without a token it is a 404.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "")
# /readyz (core/health.py): each dependency check gives up after this many seconds.
HEALTH_CHECK_SECONDS = env_float("HEALTH_CHECK_SECONDS", 1.0)

# Error tracking (core/tracking.py): Sentry only when SENTRY_DSN is set; nothing is sent otherwise.
SENTRY_ENABLED = tracking.init(
    os.environ.get("SENTRY_DSN", ""),
    environment=os.environ.get("SENTRY_ENVIRONMENT", ""),
    release=os.environ.get("SENTRY_RELEASE", ""),
    traces_sample_rate=env_float("SENTRY_TRACES_SAMPLE_RATE", 0.0),
)
