"""The full-text index of messages (search/selectors.py), on the partitioned parent table.

An index created on a partitioned table is created on every partition it has, and PostgreSQL
creates it on every partition attached or created later (`CREATE TABLE ... PARTITION OF`, which
is what django-postgres-extra's partitioning manager and messaging.archive.restore_day run), so
days created ahead and restored days are searchable with no step of their own
(tests/test_search.py checks both).

The expression must be exactly the one search/selectors.py queries (`search.CONFIG`). Deleted
messages (empty text, `deleted_at` set) are left out of it. Building it takes a lock on the
messages table; on a large existing table, build it partition by partition first
(`CREATE INDEX CONCURRENTLY` on each, then this, which then attaches them): docs/search.md.
"""

from django.db import migrations

INDEX = "message_search_english"

CREATE = f"""
CREATE INDEX IF NOT EXISTS {INDEX} ON messaging_message
 USING gin (to_tsvector('english'::regconfig, content)) WHERE deleted_at IS NULL
"""
DROP = f"DROP INDEX IF EXISTS {INDEX}"


class Migration(migrations.Migration):
    dependencies = [("messaging", "0004_threads_and_reactions")]

    operations = [migrations.RunSQL(CREATE, DROP)]
