"""The triggers that write every change of a synchronisable table to the change log.

Why triggers and not hooks in the owners' repositories: the capture is atomic with every
write path (API, bootstrap, receiver upserts, code not written yet) without touching
those repositories, and a crash loses both the write and its change or neither. The DDL
is generated from the kinds (kinds.py) for SQLite and PostgreSQL; the hand-written
migration 0002_sync_triggers applies it, so a new kind needs a new migration that
drops and recreates the triggers.
"""

from __future__ import annotations

from collections.abc import Mapping

from edgefed.store.sync.kinds import KINDS, Kind


def capture_ddl(dialect: str, kinds: Mapping[str, Kind] = KINDS) -> list[str]:
    """The trigger DDL that writes every change of a synchronisable table to the change log."""
    statements: list[str] = []
    if dialect == "postgresql":
        statements.append(
            """
CREATE OR REPLACE FUNCTION sync_capture() RETURNS trigger AS $$
DECLARE
  r jsonb;
  k text := '';
  i int;
BEGIN
  IF TG_OP = 'DELETE' THEN r := to_jsonb(OLD); ELSE r := to_jsonb(NEW); END IF;
  FOR i IN 1..TG_NARGS - 1 LOOP
    IF i > 1 THEN k := k || '|'; END IF;
    k := k || (r ->> TG_ARGV[i]);
  END LOOP;
  INSERT INTO sync_changes (kind, key, op)
  VALUES (TG_ARGV[0], k, CASE WHEN TG_OP = 'DELETE' THEN 'delete' ELSE 'upsert' END);
  RETURN NULL;
END
$$ LANGUAGE plpgsql"""
        )
        for kind in kinds.values():
            args = ", ".join(f"'{a}'" for a in (kind.name, *kind.key_columns))
            statements.append(
                f"CREATE TRIGGER sync_capture_{kind.table.name} AFTER INSERT OR UPDATE OR DELETE "
                f"ON {kind.table.name} FOR EACH ROW EXECUTE FUNCTION sync_capture({args})"
            )
        return statements
    for kind in kinds.values():
        for trigger_event, row, op in (
            ("INSERT", "NEW", "upsert"),
            ("UPDATE", "NEW", "upsert"),
            ("DELETE", "OLD", "delete"),
        ):
            key = " || '|' || ".join(f'{row}."{c}"' for c in kind.key_columns)
            statements.append(
                f"CREATE TRIGGER sync_capture_{kind.table.name}_{trigger_event.lower()} "  # noqa: S608 - identifiers from code
                f"AFTER {trigger_event} ON {kind.table.name} FOR EACH ROW BEGIN "
                "INSERT INTO sync_changes (kind, key, op) "
                f"VALUES ('{kind.name}', {key}, '{op}'); END"
            )
    return statements


def drop_capture_ddl(dialect: str, kinds: Mapping[str, Kind] = KINDS) -> list[str]:
    if dialect == "postgresql":
        out = [
            f"DROP TRIGGER IF EXISTS sync_capture_{k.table.name} ON {k.table.name}"
            for k in kinds.values()
        ]
        return [*out, "DROP FUNCTION IF EXISTS sync_capture()"]
    return [
        f"DROP TRIGGER IF EXISTS sync_capture_{k.table.name}_{e}"
        for k in kinds.values()
        for e in ("insert", "update", "delete")
    ]
