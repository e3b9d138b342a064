"""The PostgreSQL schema: the SQLite one, plus what several writers need.

What differs from engine/state/sqlite/database.py, and why:

* `busy` holds one row per key with tasks in flight, cluster-wide. A claim
  inserts it with ON CONFLICT DO NOTHING: the primary key, not a snapshot,
  decides, so two nodes claiming two versions of one key at once cannot both
  win (a NOT EXISTS alone would let both see "nothing in flight"). The row
  goes when the key's last in-flight task leaves that state.
* Counters are sharded by backend (`pg_backend_pid() % 16`) and kept by
  statement-level triggers over transition tables: concurrent writers touch
  different counter rows, each statement adds one aggregated delta per
  (policy, state), and a read sums at most 16 rows per pair: O(1), no scan.
* Tasks carry `claimed_by` (a node id) so a node's leases can be renewed by its
  heartbeat and swept once it is gone; `nodes` is the cluster's member list.
* Times a lease is judged by come from the database's clock, not a node's.

Migrations run under an advisory lock: nodes starting together migrate once.
"""

from __future__ import annotations

SHARDS = 16
CHANNEL = "mirrorline_tasks"  # NOTIFY: work became claimable (payload: nothing)
MIGRATION_LOCK = 748_001  # pg_advisory_xact_lock key while migrating

NOW = "extract(epoch from clock_timestamp())"

_COUNT = f"""
INSERT INTO counters (policy, state, shard, count, bytes)
SELECT policy, state, pg_backend_pid() % {SHARDS}, sum(n), sum(b) FROM ({{delta}}) AS delta
GROUP BY policy, state HAVING sum(n) <> 0 OR sum(b) <> 0 ORDER BY policy, state
ON CONFLICT (policy, state, shard) DO UPDATE
SET count = counters.count + excluded.count, bytes = counters.bytes + excluded.bytes"""


def _count(delta: str) -> str:
    """Add one statement's aggregated counter deltas to this backend's shard."""
    return _COUNT.replace("{delta}", delta)


def _free(left: str) -> str:
    """Drop the busy rows of keys whose last in-flight task just left that state."""
    return (
        f"DELETE FROM busy b USING ({left}) AS g WHERE b.policy = g.policy AND b.key = g.key "
        "AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.policy = g.policy AND t.key = g.key "
        "AND t.state = 'in-flight')"
    )


_MOVED = "FROM old_rows o JOIN new_rows n ON n.id = o.id WHERE o.state <> n.state"

MIGRATIONS: list[list[str]] = [
    [
        """CREATE TABLE policies (
            id TEXT PRIMARY KEY, priority INTEGER NOT NULL UNIQUE,
            source_alias TEXT NOT NULL, source_bucket TEXT NOT NULL,
            target_alias TEXT NOT NULL, target_bucket TEXT NOT NULL,
            prefix TEXT NOT NULL DEFAULT '', tags TEXT NOT NULL DEFAULT '',
            replicate TEXT NOT NULL, bandwidth BIGINT NOT NULL DEFAULT 0,
            enabled BOOLEAN NOT NULL DEFAULT TRUE, paused BOOLEAN NOT NULL DEFAULT FALSE,
            created_at DOUBLE PRECISION NOT NULL)""",
        "CREATE TABLE settings (name TEXT PRIMARY KEY, value TEXT NOT NULL)",
        """CREATE TABLE tasks (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            policy TEXT NOT NULL, key TEXT COLLATE "C" NOT NULL, version_id TEXT NOT NULL,
            op TEXT NOT NULL,
            size BIGINT NOT NULL DEFAULT 0, etag TEXT NOT NULL DEFAULT '',
            src_mtime DOUBLE PRECISION NOT NULL DEFAULT 0, seq INTEGER NOT NULL DEFAULT 0,
            target_version TEXT NOT NULL DEFAULT '',
            target_has_key BOOLEAN NOT NULL DEFAULT FALSE,
            state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
            next_at DOUBLE PRECISION NOT NULL, lease_until DOUBLE PRECISION NOT NULL DEFAULT 0,
            claimed_by TEXT NOT NULL DEFAULT '',
            last_error TEXT NOT NULL DEFAULT '', error_class TEXT NOT NULL DEFAULT '',
            error_code TEXT NOT NULL DEFAULT '',
            created_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
            resync BIGINT NOT NULL DEFAULT 0)""",
        "CREATE UNIQUE INDEX tasks_identity ON tasks (policy, key, version_id, op)",
        "CREATE INDEX tasks_key ON tasks (policy, key, id)",
        """CREATE INDEX tasks_ready ON tasks (policy, next_at, id)
            WHERE state IN ('pending', 'retrying')""",
        # A claim's "no older ready version of this key outside the batch": one range
        # per candidate, never the backlog (tasks_ready would be read whole).
        """CREATE INDEX tasks_ready_key ON tasks (policy, key, id)
            WHERE state IN ('pending', 'retrying')""",
        "CREATE INDEX tasks_state ON tasks (policy, state, created_at)",
        "CREATE INDEX tasks_leased ON tasks (claimed_by, lease_until) WHERE state = 'in-flight'",
        "CREATE INDEX tasks_parked ON tasks (id) WHERE state IN ('failed', 'retrying')",
        """CREATE INDEX tasks_causes ON tasks (policy, op, error_class, error_code, id)
            WHERE state IN ('failed', 'retrying')""",
        "CREATE INDEX tasks_resync ON tasks (resync, state) WHERE resync <> 0",
        """CREATE TABLE busy (
            policy TEXT NOT NULL, key TEXT COLLATE "C" NOT NULL, task_id BIGINT NOT NULL,
            PRIMARY KEY (policy, key))""",
        """CREATE TABLE counters (
            policy TEXT NOT NULL, state TEXT NOT NULL, shard INTEGER NOT NULL,
            count BIGINT NOT NULL DEFAULT 0, bytes BIGINT NOT NULL DEFAULT 0,
            PRIMARY KEY (policy, state, shard))""",
        """CREATE TABLE totals (
            policy TEXT NOT NULL, shard INTEGER NOT NULL,
            replicated BIGINT NOT NULL DEFAULT 0, replicated_bytes BIGINT NOT NULL DEFAULT 0,
            skipped BIGINT NOT NULL DEFAULT 0, PRIMARY KEY (policy, shard))""",
        """CREATE TABLE replicas (
            policy TEXT NOT NULL, key TEXT COLLATE "C" NOT NULL, source_version TEXT NOT NULL,
            target_version TEXT, src_mtime DOUBLE PRECISION NOT NULL DEFAULT 0,
            seq INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (policy, key, source_version))""",
        f"""CREATE FUNCTION ml_counted_in() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN {_count("SELECT policy, state, 1 AS n, size AS b FROM new_rows")}; RETURN NULL; END $$""",
        f"""CREATE FUNCTION ml_counted_move() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          {
            _free(
                "SELECT o.policy, o.key FROM old_rows o JOIN new_rows n ON n.id = o.id "
                "WHERE o.state = 'in-flight' AND n.state <> 'in-flight'"
            )
        };
          {
            _count(
                f"SELECT o.policy, o.state, -1 AS n, -o.size AS b {_MOVED} "
                f"UNION ALL SELECT n.policy, n.state, 1, n.size {_MOVED}"
            )
        };
          RETURN NULL;
        END $$""",
        f"""CREATE FUNCTION ml_counted_out() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          {_free("SELECT policy, key FROM old_rows WHERE state = 'in-flight'")};
          {_count("SELECT policy, state, -1 AS n, -size AS b FROM old_rows")};
          RETURN NULL;
        END $$""",
        """CREATE TRIGGER tasks_counted_in AFTER INSERT ON tasks REFERENCING NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION ml_counted_in()""",
        """CREATE TRIGGER tasks_counted_move AFTER UPDATE ON tasks
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
            FOR EACH STATEMENT EXECUTE FUNCTION ml_counted_move()""",
        """CREATE TRIGGER tasks_counted_out AFTER DELETE ON tasks REFERENCING OLD TABLE AS old_rows
            FOR EACH STATEMENT EXECUTE FUNCTION ml_counted_out()""",
        """CREATE TABLE history (
            policy TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, body TEXT NOT NULL,
            PRIMARY KEY (policy, at))""",
        """CREATE TABLE stats (
            scope TEXT NOT NULL, name TEXT NOT NULL, value DOUBLE PRECISION NOT NULL,
            PRIMARY KEY (scope, name))""",
        """CREATE TABLE error_totals (
            policy TEXT NOT NULL, kind TEXT NOT NULL, code TEXT NOT NULL,
            count BIGINT NOT NULL DEFAULT 0, last_reason TEXT NOT NULL,
            last_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (policy, kind, code))""",
        """CREATE TABLE attempts (
            task_id BIGINT NOT NULL, n INTEGER NOT NULL, at DOUBLE PRECISION NOT NULL,
            kind TEXT NOT NULL, error TEXT NOT NULL, PRIMARY KEY (task_id, n))""",
        """CREATE TABLE audit (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, at DOUBLE PRECISION NOT NULL,
            actor TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL DEFAULT '')""",
        """CREATE TABLE resyncs (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, policy TEXT NOT NULL,
            state TEXT NOT NULL, page_size INTEGER NOT NULL,
            started_at DOUBLE PRECISION NOT NULL, updated_at DOUBLE PRECISION NOT NULL,
            walked_at DOUBLE PRECISION, finished_at DOUBLE PRECISION,
            cursor TEXT NOT NULL DEFAULT '', current_key TEXT NOT NULL DEFAULT '',
            total BIGINT, scanned BIGINT NOT NULL DEFAULT 0, enqueued BIGINT NOT NULL DEFAULT 0,
            replicated BIGINT NOT NULL DEFAULT 0, skipped BIGINT NOT NULL DEFAULT 0,
            rate DOUBLE PRECISION NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '')""",
        "CREATE UNIQUE INDEX resyncs_running ON resyncs (policy) WHERE state = 'running'",
        # The cluster: one row per engine process, its heartbeat from the database's clock.
        """CREATE TABLE nodes (
            id TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,
            started_at DOUBLE PRECISION NOT NULL, heartbeat_at DOUBLE PRECISION NOT NULL,
            stopped_at DOUBLE PRECISION, lease DOUBLE PRECISION NOT NULL,
            workers INTEGER NOT NULL DEFAULT 0, rate DOUBLE PRECISION NOT NULL DEFAULT 0,
            in_flight INTEGER NOT NULL DEFAULT 0, replicated BIGINT NOT NULL DEFAULT 0,
            replicated_bytes BIGINT NOT NULL DEFAULT 0)""",
        # Scans and resync walks that one node at a time does for the cluster.
        """CREATE TABLE leases (
            name TEXT PRIMARY KEY, node TEXT NOT NULL, until DOUBLE PRECISION NOT NULL)""",
    ],
]
