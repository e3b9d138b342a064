"""The state database's schema, one list of statements per version (`PRAGMA user_version`).

A database is mirrorline's when its `application_id` is APPLICATION_ID (databases
made before the stamp existed carry 0, and are recognised by their tables); its
`user_version` is the number of migrations applied. A version above
`len(MIGRATIONS)` was written by a newer mirrorline and is never touched.
"""

from __future__ import annotations

APPLICATION_ID = 0x4D4C4E45  # "MLNE": mirrorline's mark in the SQLite header (offset 68)
# Tables every mirrorline database has had since its first migration: how a database
# from before the application_id stamp is told apart from another application's.
OWN_TABLES = frozenset({"policies", "settings", "tasks", "counters", "totals", "replicas"})


def _bucket(state: str) -> str:
    """The counter a task state counts under: pending and in flight are one, "queued"."""
    return f"(CASE WHEN {state} IN ('pending', 'in-flight') THEN 'queued' ELSE {state} END)"


MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE policies (
            id TEXT PRIMARY KEY,
            priority INTEGER NOT NULL UNIQUE,
            source_alias TEXT NOT NULL, source_bucket TEXT NOT NULL,
            target_alias TEXT NOT NULL, target_bucket TEXT NOT NULL,
            prefix TEXT NOT NULL DEFAULT '',
            tags TEXT NOT NULL DEFAULT '',
            replicate TEXT NOT NULL,
            bandwidth INTEGER NOT NULL DEFAULT 0,
            enabled INTEGER NOT NULL DEFAULT 1,
            paused INTEGER NOT NULL DEFAULT 0,
            created_at REAL NOT NULL)""",
        """CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)""",
        """CREATE TABLE tasks (
            id INTEGER PRIMARY KEY,
            policy TEXT NOT NULL, key TEXT NOT NULL, version_id TEXT NOT NULL, op TEXT NOT NULL,
            size INTEGER NOT NULL DEFAULT 0, etag TEXT NOT NULL DEFAULT '',
            src_mtime REAL NOT NULL DEFAULT 0, seq INTEGER NOT NULL DEFAULT 0,
            target_version TEXT NOT NULL DEFAULT '', target_has_key INTEGER NOT NULL DEFAULT 0,
            state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
            next_at REAL NOT NULL, lease_until REAL NOT NULL DEFAULT 0,
            last_error TEXT NOT NULL DEFAULT '', error_class TEXT NOT NULL DEFAULT '',
            created_at REAL NOT NULL, updated_at REAL NOT NULL)""",
        "CREATE UNIQUE INDEX tasks_identity ON tasks(policy, key, version_id, op)",
        """CREATE INDEX tasks_ready ON tasks(policy, next_at, id)
            WHERE state IN ('pending', 'retrying')""",
        "CREATE INDEX tasks_state ON tasks(policy, state, created_at)",
        """CREATE TABLE counters (
            policy TEXT NOT NULL, state TEXT NOT NULL,
            count INTEGER NOT NULL DEFAULT 0, bytes INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (policy, state)) WITHOUT ROWID""",
        """CREATE TABLE totals (
            policy TEXT PRIMARY KEY,
            replicated INTEGER NOT NULL DEFAULT 0, replicated_bytes INTEGER NOT NULL DEFAULT 0,
            skipped INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID""",
        """CREATE TABLE replicas (
            policy TEXT NOT NULL, key TEXT NOT NULL, source_version TEXT NOT NULL,
            target_version TEXT, src_mtime REAL NOT NULL DEFAULT 0, seq INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (policy, key, source_version)) WITHOUT ROWID""",
        """CREATE TRIGGER tasks_counted_in AFTER INSERT ON tasks BEGIN
            INSERT INTO counters(policy, state, count, bytes) VALUES (NEW.policy, NEW.state, 1, NEW.size)
            ON CONFLICT DO UPDATE SET count = count + 1, bytes = bytes + excluded.bytes;
        END""",
        """CREATE TRIGGER tasks_counted_move AFTER UPDATE OF state ON tasks
            WHEN OLD.state != NEW.state BEGIN
            INSERT INTO counters(policy, state, count, bytes)
                VALUES (OLD.policy, OLD.state, -1, -OLD.size), (NEW.policy, NEW.state, 1, NEW.size)
            ON CONFLICT DO UPDATE SET count = count + excluded.count, bytes = bytes + excluded.bytes;
        END""",
        """CREATE TRIGGER tasks_counted_out AFTER DELETE ON tasks BEGIN
            UPDATE counters SET count = count - 1, bytes = bytes - OLD.size
                WHERE policy = OLD.policy AND state = OLD.state;
        END""",
    ],
    [
        # Telemetry that outlives a restart (engine/telemetry.py): one history row per
        # policy per 10 s (24 h kept), running totals, and error counts by reason.
        """CREATE TABLE history (
            policy TEXT NOT NULL, at REAL NOT NULL, body TEXT NOT NULL,
            PRIMARY KEY (policy, at)) WITHOUT ROWID""",
        """CREATE TABLE stats (
            scope TEXT NOT NULL, name TEXT NOT NULL, value REAL NOT NULL,
            PRIMARY KEY (scope, name)) WITHOUT ROWID""",
        """CREATE TABLE error_totals (
            policy TEXT NOT NULL, kind TEXT NOT NULL, code TEXT NOT NULL,
            count INTEGER NOT NULL DEFAULT 0, last_reason TEXT NOT NULL, last_at REAL NOT NULL,
            PRIMARY KEY (policy, kind, code)) WITHOUT ROWID""",
        # Paging failures stays fast under a large pending backlog: only parked rows
        # are in this index, so the copy path's state changes barely touch it.
        "CREATE INDEX tasks_parked ON tasks(id) WHERE state IN ('failed', 'retrying')",
        # Each failed attempt of a task, for the console's detail view. Written only when a
        # task is parked (the slow path); dropped with the task (completed or its policy gone).
        """CREATE TABLE attempts (
            task_id INTEGER NOT NULL, n INTEGER NOT NULL, at REAL NOT NULL,
            kind TEXT NOT NULL, error TEXT NOT NULL,
            PRIMARY KEY (task_id, n)) WITHOUT ROWID""",
        # Operator actions (CLI, API, console): who did what, when.
        """CREATE TABLE audit (
            id INTEGER PRIMARY KEY, at REAL NOT NULL, actor TEXT NOT NULL,
            action TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '')""",
    ],
    [
        # Resyncs (engine/resync.py): one row per run, its checkpoint and counters; the
        # partial unique index makes "one running resync per policy" a constraint.
        """CREATE TABLE resyncs (
            id INTEGER PRIMARY KEY, policy TEXT NOT NULL, state TEXT NOT NULL,
            page_size INTEGER NOT NULL, started_at REAL NOT NULL, updated_at REAL NOT NULL,
            walked_at REAL, finished_at REAL,
            cursor TEXT NOT NULL DEFAULT '', current_key TEXT NOT NULL DEFAULT '',
            total INTEGER, scanned INTEGER NOT NULL DEFAULT 0,
            enqueued INTEGER NOT NULL DEFAULT 0, replicated INTEGER NOT NULL DEFAULT 0,
            skipped INTEGER NOT NULL DEFAULT 0, rate REAL NOT NULL DEFAULT 0,
            last_error TEXT NOT NULL DEFAULT '')""",
        "CREATE UNIQUE INDEX resyncs_running ON resyncs(policy) WHERE state = 'running'",
        # Which resync queued a task (0: the regular path), to count its outcomes. Only
        # resync rows are in the index, so the regular path's writes barely touch it.
        "ALTER TABLE tasks ADD COLUMN resync INTEGER NOT NULL DEFAULT 0",
        "CREATE INDEX tasks_resync ON tasks(resync, state) WHERE resync != 0",
    ],
    [
        # The last error's reason code (engine.errors.reason_code), so parked tasks group
        # by cause; the partial index holds parked rows only, in cause order, so grouping
        # and paging one cause cost the number of failures, never the pending backlog.
        "ALTER TABLE tasks ADD COLUMN error_code TEXT NOT NULL DEFAULT ''",
        """CREATE INDEX tasks_causes ON tasks(policy, op, error_class, error_code, id)
            WHERE state IN ('failed', 'retrying')""",
    ],
    [
        # Counters per batch, not per row (issue 12: the row triggers were a third of a
        # task's queue cost). New tasks are counted by the statement that queued them
        # (queue.py: count_new), a completed one by the batch that deletes it, and a claim
        # moves no counter: "queued" is pending and in flight together, and the few
        # in-flight rows are counted live from tasks_state when read. Parking and
        # retrying, one task at a time, still move them here.
        "DROP TRIGGER tasks_counted_in",
        "DROP TRIGGER tasks_counted_move",
        "DROP TRIGGER tasks_counted_out",
        "DELETE FROM counters",
        f"""INSERT INTO counters (policy, state, count, bytes)
            SELECT policy, {_bucket("state")}, COUNT(*), SUM(size) FROM tasks GROUP BY 1, 2""",
        f"""CREATE TRIGGER tasks_counted_move AFTER UPDATE OF state ON tasks
            WHEN {_bucket("OLD.state")} != {_bucket("NEW.state")} BEGIN
            INSERT INTO counters(policy, state, count, bytes)
                VALUES (OLD.policy, {_bucket("OLD.state")}, -1, -OLD.size),
                       (NEW.policy, {_bucket("NEW.state")}, 1, NEW.size)
            ON CONFLICT DO UPDATE SET count = count + excluded.count, bytes = bytes + excluded.bytes;
        END""",
    ],
]
