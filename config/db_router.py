"""Primary/replica routing for when DATABASE_REPLICA_URL is set.

Only reads that tolerate replication lag go to the replica, and they say so explicitly with
`.using(history_database())`: scrolling back through history (messages older than a page the
client already holds). Everything else, including sync (`changes/`), whose cursor must never get
ahead of what is visible, reads the primary. Writes and migrations go to the primary only.
"""

from django.conf import settings

REPLICA = "replica"


def history_database() -> str:
    """The alias for lag-tolerant history reads: the replica when there is one."""
    return REPLICA if REPLICA in settings.DATABASES else "default"


class PrimaryReplicaRouter:
    def db_for_read(self, model, **hints):
        return None  # the primary, unless a query chose the replica with .using()

    def db_for_write(self, model, **hints):
        return "default"

    def allow_relation(self, obj1, obj2, **hints):
        return {obj1._state.db, obj2._state.db} <= {"default", REPLICA}  # the same data

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == "default"
