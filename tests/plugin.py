"""Loaded with `-p tests.plugin` (pyproject.toml) before Django's settings are read.

`make test` runs the suite in two processes (pytest-xdist, `-n 2`). Each worker gets a PostgreSQL
database of its own from pytest-django (`test_<name>_gw0`, `_gw1`) and, here, a Redis server of its
own, started before the settings read REDIS_URL: a Redis server's pub/sub channels are one
namespace whatever the database number (core.pubsub publishes to `parley.bus.room.<pk>`, and both
workers number their rooms from 1), so two workers on one server would receive each other's room
events, and `flushdb` in one would wipe the other's tickets and presence mid-test.
"""

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("PARLEY_TESTING", "1")


def _redis_of_its_own() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    import stack

    base = Path(tempfile.mkdtemp(prefix=f"parley-test-{os.environ['PYTEST_XDIST_WORKER']}-"))
    procs: list[stack.Proc] = []
    os.environ["REDIS_URL"] = stack.start_redis(base, procs, throwaway=True)  # dies with this process too

    def stop() -> None:
        for proc in procs:
            proc.stop()
        shutil.rmtree(base, ignore_errors=True)

    atexit.register(stop)


if os.environ.get("PYTEST_XDIST_WORKER"):
    _redis_of_its_own()
