"""The fault suite (issue 12): `make test-faults` runs all of it (PARLEY_FAULTS=full); `make test`
runs only the tests marked `faults_quick`. Every test here is marked `faults`."""

import os
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection

HERE = Path(__file__).resolve().parent


@pytest.hookimpl(tryfirst=True)  # before -m selects by the `faults` marker added here
def pytest_collection_modifyitems(config, items):
    full = os.environ.get("PARLEY_FAULTS") == "full"
    kept, deselected = [], []
    for item in items:
        if HERE not in item.path.parents:
            kept.append(item)
            continue
        item.add_marker(pytest.mark.faults)
        # So that pytest-django sets up the test database for the module fixtures (fault_db).
        # A test itself only reads what its module's scenario recorded: its (rolled back)
        # transaction costs nothing.
        item.add_marker(pytest.mark.django_db)
        (kept if full or item.get_closest_marker("faults_quick") else deselected).append(item)
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


@pytest.fixture(scope="module")
def fault_db(django_db_setup, django_db_blocker):
    """Database access for a whole module (its scenario runs once, in a module fixture, against
    real server processes, so only committed data counts); emptied afterwards, as
    transactional_db does after each test."""
    with django_db_blocker.unblock():
        try:
            yield
        finally:
            connection.close()  # a restarted PostgreSQL may have broken it
            call_command("flush", verbosity=0, interactive=False, allow_cascade=False, inhibit_post_migrate=False)
