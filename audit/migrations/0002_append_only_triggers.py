"""PostgreSQL refuses UPDATE and DELETE on audit entries, and lets a chain's head row only move
forward by one entry at a time (docs/audit.md). Plain triggers rather than django-pgtrigger: its
triggers can be switched off by any session with `SET pgtrigger.ignore = ...` (its ignore feature,
rendered into every trigger), which would defeat an append-only log.

TRUNCATE is not refused: the test suite empties tables between tests with it. An emptied log is
caught by verify_audit all the same (the head row remembers the length), unless the head goes too.
"""

from django.db import migrations

FORWARD = """
CREATE FUNCTION audit_entry_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit entries are append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege', HINT = 'See docs/audit.md.';
END;
$$;
CREATE TRIGGER audit_entry_append_only BEFORE UPDATE OR DELETE ON audit_auditentry
    FOR EACH ROW EXECUTE FUNCTION audit_entry_refuse_change();

CREATE FUNCTION audit_chain_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR NEW.scope <> OLD.scope OR NEW.length <> OLD.length + 1 THEN
        RAISE EXCEPTION 'an audit chain head only moves forward, one entry at a time: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege', HINT = 'See docs/audit.md.';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_chain_forward_only BEFORE UPDATE OR DELETE ON audit_auditchain
    FOR EACH ROW EXECUTE FUNCTION audit_chain_forward_only();
"""

BACKWARD = """
DROP TRIGGER audit_chain_forward_only ON audit_auditchain;
DROP FUNCTION audit_chain_forward_only();
DROP TRIGGER audit_entry_append_only ON audit_auditentry;
DROP FUNCTION audit_entry_refuse_change();
"""


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
