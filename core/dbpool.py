"""PostgreSQL connection pools come back as soon as PostgreSQL does.

psycopg_pool retries a failed connection with exponential back-off (1, 2, 4, 8, 16 s …): after a
30 s outage its next attempt could be 16 s after PostgreSQL was back, and requests meanwhile waited
out the pool timeout and failed (issue 12 measured REST requests failing 10-18 s after PostgreSQL
returned). Parley retries every second instead: a pool is a handful of connections per process,
and a refused connection costs PostgreSQL nothing.

This sets `AttemptWithBackoff.DELAY_BACKOFF`, a class attribute of psycopg_pool 3.3 (pinned in
requirements.txt), applied when this module is imported (config/settings.py);
tests/test_hostile_input.py fails if the attribute goes away.
"""

from psycopg_pool.base import AttemptWithBackoff

AttemptWithBackoff.DELAY_BACKOFF = 1.0
