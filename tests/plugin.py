"""Loaded with `-p tests.plugin` (pyproject.toml) before Django's settings are read."""

import os

os.environ.setdefault("PARLEY_TESTING", "1")
