"""`taskerd -c FILE --migrate`: apply sql/ migrations and exit."""

import signal
import subprocess
import time

import pytest

import harness

# The advisory lock migrations hold (MIGRATE_LOCK_KEY in daemon/migrate.c).
MIGRATE_LOCK_KEY = 7317280215

# The tables (and the columns of them) that the API and these tests rely on.
SCHEMA = {
    "tasks": {"id", "status", "context"},
    "steps": {"id", "task_id", "name", "status", "attempts", "retry_limit",
              "results", "last_error"},
    "step_edges": {"task_id", "from_step_id", "to_step_id"},  # a view
    "step_transitions": {"id", "step_id", "task_id", "from_state", "to_state",
                         "metadata", "created_at"},
    "task_transitions": {"id", "task_id", "from_state", "to_state", "metadata",
                         "created_at"},
}


def schema_of(pg, db):
    """{table: {column: type}} for every table and view on the search path."""
    rows = pg.json(db, """
        select c.table_name as t, c.column_name as c, c.data_type as ty
          from information_schema.columns c
          join information_schema.tables t
            on t.table_schema = c.table_schema and t.table_name = c.table_name
         where t.table_type in ('BASE TABLE', 'VIEW')
           and c.table_schema = any (current_schemas(false))""")
    out = {}
    for r in rows:
        out.setdefault(r["t"], {})[r["c"]] = r["ty"]
    return out


def migrate(t, timeout=30):
    return harness.run_cli(["-c", t.config_path, "--migrate"], timeout=timeout)


def migrated_before(pg, db, version):
    """db as a taskerd that knew the migrations before version left it."""
    pg.execute(db, "CREATE TABLE taskerd_migrations (version int PRIMARY KEY,"
               " name text NOT NULL, applied_at timestamptz NOT NULL"
               " DEFAULT now())")
    for f in sorted((harness.REPO / "sql").glob("0*.sql")):
        v = int(f.name.split("_")[0])
        if v >= version:
            break
        pg.execute(db, f.read_text())
        pg.execute(db, "INSERT INTO taskerd_migrations (version, name)"
                   " VALUES (%d, '%s')" % (v, f.stem))


def test_migrate_creates_schema_and_is_repeatable(taskerd, pg):
    t = taskerd(start=False)
    assert schema_of(pg, t.db) == {}
    r = migrate(t)
    assert r.returncode == 0, "exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr)

    first = schema_of(pg, t.db)
    for table, columns in SCHEMA.items():
        assert table in first, "table %s missing; have %s" % (table, sorted(first))
        assert columns <= set(first[table]), "%s lacks %s" % (
            table, sorted(columns - set(first[table])))
    assert first["tasks"]["context"] == "jsonb"
    assert first["steps"]["results"] == "jsonb"
    assert "timestamp with time zone" == first["step_transitions"]["created_at"]
    # Migrations leave no task data behind.
    assert harness.row_counts(pg, t.db) == dict.fromkeys(SCHEMA, 0)

    r = migrate(t)
    assert r.returncode == 0, "second run: exit %d\n%s%s" % (
        r.returncode, r.stdout, r.stderr)
    assert schema_of(pg, t.db) == first


def test_a_schema_newer_than_the_binary_is_said(taskerd, pg):
    """A database a newer taskerd migrated (a rollback): this one says so
    rather than run on a schema it does not know without a word."""
    t = taskerd(start=False)
    r = migrate(t)
    assert r.returncode == 0, r.stderr
    assert "schema is newer" not in r.stderr, r.stderr
    pg.execute(t.db, "INSERT INTO taskerd_migrations (version, name) "
               "VALUES (99, '099_from_the_future')")
    r = migrate(t)
    assert r.returncode == 0, r.stderr
    lines = [harness.logfmt(x) for x in r.stderr.splitlines()
             if "schema is newer" in x]
    assert len(lines) == 1 and lines[0]["schema_version"] == "99" and \
        lines[0]["migration"] == "099_from_the_future", r.stderr


def test_concurrent_migrations_both_succeed(taskerd, pg):
    """Two nodes starting on an empty database at once (advisory lock)."""
    t = taskerd(start=False)
    harness.require_binaries()
    procs = [subprocess.Popen([harness.taskerd_bin(), "-c", t.config_path, "--migrate"],
                              cwd=str(harness.REPO), env=harness.clean_env(),
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
             for _ in range(3)]
    outs = []
    for p in procs:
        try:
            out, _ = p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            out, _ = p.communicate()
        outs.append((p.returncode, out))
    assert all(code == 0 for code, _ in outs), outs
    assert set(SCHEMA) <= set(schema_of(pg, t.db))


def test_migrate_fails_cleanly_without_database(taskerd):
    t = taskerd(start=False, config={
        "database.dsn": "host=/nonexistent/taskerd-no-db port=5432 dbname=x user=postgres"})
    r = migrate(t, timeout=20)
    assert r.returncode != 0
    assert r.stderr.strip() or r.stdout.strip(), "no reason given"


def test_upgrade_keeps_the_graph_of_existing_tasks(taskerd, pg):
    """A database written before migration 008 (edges in step_edges rows)
    keeps its tasks' graphs: after the upgrade each step lists its children,
    the step_edges view shows the same edges, the API the same depends_on,
    and a step completed afterwards still releases its children."""
    t = taskerd(start=False, templates={"g.yaml": """
name: g
step_templates:
  - name: a
    handler: noop
  - name: b
    handler: noop
    depends_on_step: a
  - name: c
    handler: noop
    depends_on_steps: [a, b]
"""})
    migrated_before(pg, t.db, 8)
    # The task as a 007 node wrote it: a is pending and ready, b and c wait.
    pg.execute(t.db, """
        INSERT INTO namespaces (id, name) VALUES (1, 'default');
        INSERT INTO templates (id, namespace_id, name, version, definition)
            VALUES (1, 1, 'g', '0.1.0', '{}');
        INSERT INTO tasks (id, template_id, status, correlation_id)
            VALUES (1, 1, 'pending', 'old-task');
        INSERT INTO steps (id, task_id, name, position, handler, retry_limit,
                           attempt_budget, timeout_ms, remaining_parents,
                           first_step)
            VALUES (11, 1, 'a', 0, 'noop', 3, 3, 1000, 0, true),
                   (12, 1, 'b', 1, 'noop', 3, 3, 1000, 1, false),
                   (13, 1, 'c', 2, 'noop', 3, 3, 1000, 2, false);
        INSERT INTO step_edges (task_id, from_step_id, to_step_id)
            VALUES (1, 11, 12), (1, 11, 13), (1, 12, 13);
        SELECT setval('tasks_id_seq', 1); SELECT setval('steps_id_seq', 13);""")

    r = migrate(t)
    assert r.returncode == 0, "exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr)
    children = dict(pg.query(t.db, "SELECT name, children::text FROM steps"
                             " WHERE task_id = 1"))
    assert children == {"a": "{12,13}", "b": "{13}", "c": "{}"}
    edges = pg.query(t.db, "SELECT from_step_id, to_step_id FROM step_edges"
                     " ORDER BY 1, 2")
    assert edges == [["11", "12"], ["11", "13"], ["12", "13"]]

    t.start()
    task = t.get("/v1/tasks/1").body
    assert {s["name"]: s["depends_on"] for s in task["steps"]} == {
        "a": [], "b": ["a"], "c": ["a", "b"]}
    # The old task runs to the end on the new schema.
    assert t.wait_task(1)["status"] == "complete"
    order = [r["name"] for r in harness.step_transitions(pg, t.db, 1)
             if r["to_state"] == "complete"]
    assert order == ["a", "b", "c"]



def test_start_waits_for_the_migration_lock_and_says_so(taskerd, pg,
                                                        notify_socket,
                                                        monkeypatch):
    """Another session holds the migration lock (another node migrating):
    the start waits, says what it waits for (to systemd too, asking it
    for more time), and goes on once it is free."""
    sock, path = notify_socket
    harness.notify_env(monkeypatch, path)
    t = taskerd(start=False)
    holder = pg.psql_background(
        t.db, "SELECT pg_advisory_lock(%d); SELECT pg_sleep(3);"
        % MIGRATE_LOCK_KEY)
    try:
        harness.wait_until(lambda: pg.scalar(
            t.db, "select count(*) from pg_locks where locktype = "
            "'advisory' and granted") == "1", 5, message="the lock taken")
        t.start(ready_timeout=30)
    finally:
        holder.wait(10)
    assert t.log_lines("waiting for the migration lock"), t.log_tail(20)
    texts = [m for _, m in harness.notify_messages(sock, 0.5)]
    assert "STATUS=waiting for the migration lock\n" \
        "EXTEND_TIMEOUT_USEC=30000000" in texts, texts


def test_a_migration_waiting_for_a_lock_gives_way(taskerd, pg):
    """Migration 013 alters `nodes` while another session's open
    transaction reads it.  Waiting, the ALTER would hold up every other
    statement on the table (the running nodes' heartbeats: their leases
    would lapse); it waits a second at a time, giving way between tries,
    says so, and is applied once the transaction ends."""
    t = taskerd(start=False)
    migrated_before(pg, t.db, 13)
    holder = pg.psql_background(
        t.db, "BEGIN; SELECT count(*) FROM nodes; SELECT pg_sleep(6); COMMIT;")
    try:
        harness.wait_until(lambda: pg.scalar(
            t.db, "SELECT count(*) FROM pg_locks l JOIN pg_class c"
            " ON c.oid = l.relation WHERE c.relname = 'nodes'"
            " AND l.granted") != "0", 5, message="the read lock taken")
        migrating = subprocess.Popen(
            [harness.taskerd_bin(), "-c", t.config_path, "--migrate"],
            env=harness.clean_env(), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        time.sleep(1.5)         # the migration at its waiting
        # A heartbeat's write on the table gets through meanwhile.
        pg.execute(t.db, "SET lock_timeout = '2500ms'; UPDATE nodes"
                   " SET heartbeat_at = now() WHERE id = 'none'")
        out, _ = migrating.communicate(timeout=30)
    finally:
        holder.wait(20)
    assert migrating.returncode == 0, out
    assert "migration waits for a lock that another session holds" in out, \
        out
    assert "1 migration(s) applied" in out, out
    assert pg.scalar(t.db, "SELECT max(version) FROM taskerd_migrations") \
        == str(max(int(f.name.split("_")[0]) for f in
                   (harness.REPO / "sql").glob("0*.sql")))


@pytest.mark.parametrize("args", [["--migrate"], []],
                         ids=["migrate", "start"])
def test_a_migration_stopped_by_a_signal_ends_on_the_server_too(taskerd, pg,
                                                                args):
    """SIGTERM (systemd's stop, Ctrl-C) ends a migrating taskerd at once;
    the server used to run the statement on to its end (a table rewrite may
    take long), keeping the migration lock, so that the next start waited
    for it.  The statement is cancelled: the lock is free, the migration
    rolled back, and the next run applies it."""
    t = taskerd(start=False)
    migrated_before(pg, t.db, 13)
    # Migration 013's ALTER TABLE, slow on the server: an event trigger
    # sleeps before it, in the migration's transaction.
    pg.execute(t.db, """
        CREATE FUNCTION slow_ddl() RETURNS event_trigger LANGUAGE plpgsql
            AS $$ BEGIN PERFORM pg_sleep(60); END $$;
        CREATE EVENT TRIGGER slow_ddl ON ddl_command_start
            WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION slow_ddl();""")
    running = ("SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
               " AND wait_event = 'PgSleep' AND datname = '%s'" % t.db)
    migrating = subprocess.Popen(
        [harness.taskerd_bin(), "-c", t.config_path] + args,
        env=harness.clean_env(), stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        harness.wait_until(lambda: pg.scalar(t.db, running) == "1", 10,
                           message="the migration running")
        migrating.send_signal(signal.SIGTERM)
        migrating.communicate(timeout=10)
    finally:
        if migrating.poll() is None:
            migrating.kill()
            migrating.wait()
    assert migrating.returncode == -signal.SIGTERM
    harness.wait_until(lambda: pg.scalar(t.db, running) == "0", 5,
                       message="the statement cancelled on the server")
    # (Its session ends a moment later, and its lock with it.)
    harness.wait_until(lambda: pg.scalar(
        t.db, "SELECT pg_try_advisory_lock(%d)" % MIGRATE_LOCK_KEY) == "t", 5,
        message="the migration lock free")
    assert pg.scalar(t.db, "SELECT count(*) FROM information_schema.columns"
                     " WHERE table_name = 'templates'"
                     " AND column_name = 'source'") == "0"
    pg.execute(t.db, "DROP EVENT TRIGGER slow_ddl")
    r = migrate(t)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 migration(s) applied" in r.stdout, r.stdout


def test_a_statement_timeout_of_the_database_spares_migrations(taskerd, pg):
    """A statement_timeout set on the database or the role (as managed
    services do) cut a migration short: one that rewrites a big table at
    every start, and here one waiting for a lock, which failed the start
    ("canceling statement due to statement timeout") instead of giving
    way and trying again."""
    t = taskerd(start=False)
    migrated_before(pg, t.db, 13)
    pg.execute(t.db, 'ALTER DATABASE "%s" SET statement_timeout = 300'
               % t.db)
    holder = pg.psql_background(
        t.db, "BEGIN; SET LOCAL statement_timeout = 0; SELECT count(*) FROM"
        " nodes; SELECT pg_sleep(3); COMMIT;")
    try:
        harness.wait_until(lambda: pg.scalar(
            t.db, "SELECT count(*) FROM pg_locks l JOIN pg_class c"
            " ON c.oid = l.relation WHERE c.relname = 'nodes'"
            " AND l.granted") != "0", 5, message="the read lock taken")
        r = migrate(t)
    finally:
        holder.wait(20)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 migration(s) applied" in r.stdout + r.stderr, r.stdout
