"""The harness itself: the throwaway PostgreSQL and the fake services work.

These need no taskerd, so a failure here is the test environment's, not the
daemon's.
"""

import os
import pwd

import harness


def test_pg_cluster_is_private_and_unprivileged(pg):
    rows = pg.json("postgres", "select current_setting('listen_addresses') as la, "
                   "current_setting('unix_socket_directories') as sock, "
                   "current_setting('server_version_num')::int as v")
    assert rows == [{"la": "", "sock": pg.sockdir, "v": rows[0]["v"]}]
    assert rows[0]["v"] >= 150000
    pid = pg.postmaster_pid()
    assert pid and harness.proc_alive(pid)
    owner = os.stat("/proc/%d" % pid).st_uid
    if os.geteuid() == 0:
        assert pwd.getpwuid(owner).pw_name == "postgres"
    else:
        assert owner == os.geteuid()


def test_pg_fresh_databases_and_helpers(pg):
    a, b = pg.createdb(), pg.createdb()
    assert a != b
    pg.execute(a, "create table t (id serial primary key, doc jsonb, note text)")
    pg.execute(a, """insert into t (doc, note) values
                     ('{"x": 1, "y": [true, null]}', 'tab\there'), (null, null)""")
    assert pg.json(a, "select id, doc, note from t order by id") == [
        {"id": 1, "doc": {"x": 1, "y": [True, None]}, "note": "tab\there"},
        {"id": 2, "doc": None, "note": None},
    ]
    assert pg.json(a, "select * from t where false") == []
    assert pg.json(a, "select 1 as t, 2 as harness") == [{"t": 1, "harness": 2}]
    assert pg.query(a, "select id, 'a' from t order by id") == [["1", "a"], ["2", "a"]]
    assert pg.scalar(b, "select count(*) from pg_tables where tablename = 't'") == "0"
    assert "dbname=%s" % a in pg.dsn(a) and "host=%s" % pg.sockdir in pg.dsn(a)


def test_service_routes_and_records(service):
    service.route("POST", "/users", status=201, body={"id": 7})
    calls = []

    def flaky(req):
        calls.append(req)
        return (503, {"busy": True}, {"Retry-After": "1"}) if len(calls) == 1 \
            else (200, {"ok": True})
    service.route("GET", "/flaky", flaky)

    r = harness.http_request("127.0.0.1", service.port, "POST", "/users?x=1",
                             json_body={"email": "a@b.c"},
                             headers={"Idempotency-Key": "1:s"})
    assert (r.status, r.body) == (201, {"id": 7})
    r = harness.http_request("127.0.0.1", service.port, "GET", "/flaky")
    assert (r.status, r.body, r.headers["retry-after"]) == (503, {"busy": True}, "1")
    r = harness.http_request("127.0.0.1", service.port, "GET", "/flaky")
    assert (r.status, r.body) == (200, {"ok": True})
    r = harness.http_request("127.0.0.1", service.port, "DELETE", "/nope")
    assert r.status == 404

    first = service.requests[0]
    assert (first.method, first.path, first.query) == ("POST", "/users", {"x": "1"})
    assert first.json == {"email": "a@b.c"}
    assert first.headers["idempotency-key"] == "1:s"
    assert [r.path for r in service.requests] == ["/users", "/flaky", "/flaky", "/nope"]
    assert len(service.requests_for("/flaky", "GET")) == 2
    assert all(r.t_end >= r.t for r in service.requests)


def test_yaml_writer_round_trip_shape():
    cfg = harness.merge_config(
        {"http": {"listen": "127.0.0.1:1"}, "log": {"level": "info"}},
        {"http.max_body": "64KiB", "log": harness.DELETE,
         "services": {"users": {"base_url": "http://x", "breaker": {"failures": 3}}}})
    assert harness.to_yaml(cfg) == "\n".join([
        'http:',
        '  listen: "127.0.0.1:1"',
        '  max_body: "64KiB"',
        'services:',
        '  users:',
        '    base_url: "http://x"',
        '    breaker:',
        '      failures: 3',
    ])
