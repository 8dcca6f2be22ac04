"""`taskerd -c FILE --migrate`: apply sql/ migrations and exit."""

import subprocess

import harness

# The tables (and the columns of them) that the API and these tests rely on.
SCHEMA = {
    "tasks": {"id", "status", "context"},
    "steps": {"id", "task_id", "name", "status", "attempts", "retry_limit",
              "results", "last_error"},
    "step_edges": {"task_id", "from_step_id", "to_step_id"},
    "step_transitions": {"id", "step_id", "task_id", "from_state", "to_state",
                         "metadata", "created_at"},
    "task_transitions": {"id", "task_id", "from_state", "to_state", "metadata",
                         "created_at"},
}


def schema_of(pg, db):
    """{table: {column: type}} for every table visible on the search path."""
    rows = pg.json(db, """
        select c.table_name as t, c.column_name as c, c.data_type as ty
          from information_schema.columns c
          join information_schema.tables t
            on t.table_schema = c.table_schema and t.table_name = c.table_name
         where t.table_type = 'BASE TABLE'
           and c.table_schema = any (current_schemas(false))""")
    out = {}
    for r in rows:
        out.setdefault(r["t"], {})[r["c"]] = r["ty"]
    return out


def migrate(t, timeout=30):
    return harness.run_cli(["-c", t.config_path, "--migrate"], timeout=timeout)


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
