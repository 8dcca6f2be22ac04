/* test_config.c - the daemon's configuration file. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "config.h"

#define NAME	"/etc/taskerd/taskerd.yaml"

static struct config *
load(const char *yaml, char *err, size_t errlen)
{
	return config_load_buffer(NAME, yaml, strlen(yaml), err, errlen);
}

static struct config *
load_ok(const char *yaml)
{
	char		 err[1024];
	struct config	*cfg;

	if ((cfg = load(yaml, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	return cfg;
}

static void
expect_error(const char *yaml, const char *want)
{
	char		 err[1024];
	struct config	*cfg;

	memset(err, 'X', sizeof(err));
	err[sizeof(err) - 1] = '\0';
	if ((cfg = load(yaml, err, sizeof(err))) != NULL) {
		config_free(cfg);
		fail_msg("loaded, expected: %s", want);
	}
	assert_string_equal(err, want);
}

static void
check_defaults(const struct config *cfg)
{
	assert_null(cfg->database_dsn);
	assert_int_equal(cfg->database_pool, 4);
	assert_int_equal(cfg->database_statement_timeout_ms, 30000);
	assert_string_equal(cfg->http_listen, "127.0.0.1:8080");
	assert_int_equal(cfg->http_max_body, 1 << 20);
	assert_int_equal(cfg->http_max_headers, 16 << 10);
	assert_int_equal(cfg->http_timeout_ms, 30000);
	assert_int_equal(cfg->workers_count, 4);
	assert_null(cfg->workers_path);
	assert_int_equal(cfg->workers_max_frame, 16 << 20);
	assert_int_equal(cfg->scheduler_batch, 256);
	assert_int_equal(cfg->node_lease_ms, 10000);
	assert_int_equal(cfg->scheduler_prefetch, 64);
	assert_int_equal(cfg->step_defaults.retry_limit, 3);
	assert_int_equal(cfg->step_defaults.timeout_ms, 30000);
	assert_int_equal(cfg->step_defaults.backoff.base_ms, 1000);
	assert_int_equal(cfg->step_defaults.backoff.max_ms, 300000);
	assert_int_equal(cfg->step_defaults.backoff.jitter, JITTER_FULL);
	assert_string_equal(cfg->state_dir, "/var/lib/taskerd");
	assert_null(cfg->node_id);
	assert_int_equal(cfg->log_level, LOG_LVL_INFO);
	assert_int_equal(cfg->nservices, 0);
	assert_int_equal(cfg->ntokens, 0);
}

static void
test_default(void **state)
{
	struct config	*cfg;

	(void)state;
	cfg = config_default();
	check_defaults(cfg);
	assert_null(cfg->path);
	/* No file, nothing to be relative to. */
	assert_string_equal(cfg->templates_dir, "templates");
	assert_null(config_service(cfg, "x"));
	config_free(cfg);
	config_free(NULL);
}

static void
test_empty_file(void **state)
{
	struct config	*cfg;

	(void)state;
	cfg = load_ok("# all defaults\n");
	check_defaults(cfg);
	assert_string_equal(cfg->path, NAME);
	assert_string_equal(cfg->templates_dir, "/etc/taskerd/templates");
	config_free(cfg);
	/* Empty sections and null values keep their defaults too. */
	cfg = load_ok("http:\ndatabase: ~\nworkers: {}\nservices:\n");
	check_defaults(cfg);
	config_free(cfg);
}

static const char every_key[] =
	"database:\n"
	"  dsn: host=db dbname=tasker\n"
	"  pool: 8\n"
	"http:\n"
	"  listen: unix:/run/taskerd.sock\n"
	"  max_body: 2MiB\n"
	"  max_headers: 32k\n"
	"  timeout: 1m\n"
	"workers:\n"
	"  count: 16\n"
	"  path: /usr/libexec/taskerd-worker\n"
	"  max_frame: 64MB\n"
	"templates:\n"
	"  dir: /srv/templates\n"
	"scheduler:\n"
	"  batch: 1000\n"
	"  lease: 45s\n"
	"steps:\n"
	"  retry_limit: 5\n"
	"  timeout: 2500\n"
	"  backoff:\n"
	"    base: 250ms\n"
	"    max: 1h\n"
	"    jitter: equal\n"
	"state_dir: /var/lib/t2\n"
	"node_id: node-a\n"
	"log:\n"
	"  level: debug\n"
	"services:\n"
	"  user_service:\n"
	"    base_url: http://users.internal:3000\n"
	"    timeout: 5s\n"
	"    concurrency: 20\n"
	"    breaker:\n"
	"      failures: 5\n"
	"      cooldown: 1m\n"
	"  billing_service:\n"
	"    base_url: http://billing.internal\n"
	"  preferences_service: ~\n"
	"auth:\n"
	"  tokens:\n"
	"    - name: ops\n"
	"      sha256: 9f86d081884c7d659a2feaa0c55ad015"
	"a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
	"      scopes: [read, write, admin]\n"
	"    - name: dashboard\n"
	"      sha256: \"60303AE22B998861BCE3B28F33EEC1BE"
	"758A213C86C93C076DBE9F558C11C752\"\n"
	"      scopes: [read]\n";

static void
test_every_key(void **state)
{
	static const unsigned char ops[32] = {
		0x9f, 0x86, 0xd0, 0x81, 0x88, 0x4c, 0x7d, 0x65, 0x9a, 0x2f,
		0xea, 0xa0, 0xc5, 0x5a, 0xd0, 0x15, 0xa3, 0xbf, 0x4f, 0x1b,
		0x2b, 0x0b, 0x82, 0x2c, 0xd1, 0x5d, 0x6c, 0x15, 0xb0, 0xf0,
		0x0a, 0x08 };
	struct config			*cfg;
	const struct service_config	*s;

	(void)state;
	cfg = load_ok(every_key);
	assert_string_equal(cfg->database_dsn, "host=db dbname=tasker");
	assert_int_equal(cfg->database_pool, 8);
	assert_string_equal(cfg->http_listen, "unix:/run/taskerd.sock");
	assert_int_equal(cfg->http_max_body, 2 << 20);
	assert_int_equal(cfg->http_max_headers, 32 << 10);
	assert_int_equal(cfg->http_timeout_ms, 60000);
	assert_int_equal(cfg->workers_count, 16);
	assert_string_equal(cfg->workers_path, "/usr/libexec/taskerd-worker");
	assert_int_equal(cfg->workers_max_frame, 64 << 20);
	assert_string_equal(cfg->templates_dir, "/srv/templates");
	assert_int_equal(cfg->scheduler_batch, 1000);
	assert_int_equal(cfg->node_lease_ms, 45000);
	assert_int_equal(cfg->step_defaults.retry_limit, 5);
	assert_int_equal(cfg->step_defaults.timeout_ms, 2500);
	assert_int_equal(cfg->step_defaults.backoff.base_ms, 250);
	assert_int_equal(cfg->step_defaults.backoff.max_ms, 3600000);
	assert_int_equal(cfg->step_defaults.backoff.jitter, JITTER_EQUAL);
	assert_string_equal(cfg->state_dir, "/var/lib/t2");
	assert_string_equal(cfg->node_id, "node-a");
	assert_int_equal(cfg->log_level, LOG_LVL_DEBUG);

	assert_int_equal(cfg->nservices, 3);
	s = config_service(cfg, "user_service");
	assert_non_null(s);
	assert_string_equal(s->name, "user_service");
	assert_string_equal(s->base_url, "http://users.internal:3000");
	assert_int_equal(s->timeout_ms, 5000);
	assert_int_equal(s->concurrency, 20);
	assert_int_equal(s->breaker_failures, 5);
	assert_int_equal(s->breaker_cooldown_ms, 60000);
	s = config_service(cfg, "billing_service");
	assert_non_null(s);
	assert_string_equal(s->base_url, "http://billing.internal");
	assert_int_equal(s->timeout_ms, 0);
	assert_int_equal(s->concurrency, 0);
	assert_int_equal(s->breaker_failures, 0);
	assert_int_equal(s->breaker_cooldown_ms, 30000);
	s = config_service(cfg, "preferences_service");
	assert_non_null(s);
	assert_null(s->base_url);
	assert_int_equal(s->breaker_cooldown_ms, 30000);
	assert_null(config_service(cfg, "notification_service"));

	assert_int_equal(cfg->ntokens, 2);
	assert_string_equal(cfg->tokens[0].name, "ops");
	assert_memory_equal(cfg->tokens[0].sha256, ops, 32);
	assert_int_equal(cfg->tokens[0].scopes,
	    SCOPE_READ | SCOPE_WRITE | SCOPE_ADMIN);
	assert_string_equal(cfg->tokens[1].name, "dashboard");
	assert_int_equal(cfg->tokens[1].sha256[0], 0x60);
	assert_int_equal(cfg->tokens[1].sha256[31], 0x52);
	assert_int_equal(cfg->tokens[1].scopes, SCOPE_READ);
	config_free(cfg);
}

static void
test_templates_dir(void **state)
{
	struct config	*cfg;
	char		 err[256], cwd[4096];

	(void)state;
	cfg = load_ok("templates:\n  dir: tmpl.d\n");
	assert_string_equal(cfg->templates_dir, "/etc/taskerd/tmpl.d");
	config_free(cfg);
	cfg = load_ok("templates: {dir: ../shared/t}\n");
	assert_string_equal(cfg->templates_dir, "/etc/taskerd/../shared/t");
	config_free(cfg);
	cfg = load_ok("templates: {dir: /abs/t}\n");
	assert_string_equal(cfg->templates_dir, "/abs/t");
	config_free(cfg);
	/* state_dir likewise. */
	cfg = load_ok("state_dir: state\n");
	assert_string_equal(cfg->state_dir, "/etc/taskerd/state");
	config_free(cfg);
	/* A config named without a directory is relative to the cwd, as is
	 * the directory then. */
	cfg = config_load_buffer("taskerd.yaml", "templates: {dir: t}\n", 20,
	    err, sizeof(err));
	assert_non_null(cfg);
	assert_string_equal(cfg->templates_dir, "t");
	config_free(cfg);
	/* ... but state_dir is made absolute from the cwd: the embedded
	 * server's socket directory must be. */
	cfg = config_load_buffer("taskerd.yaml", "state_dir: st\n", 14,
	    err, sizeof(err));
	assert_non_null(cfg);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	strcat(cwd, "/st");
	assert_string_equal(cfg->state_dir, cwd);
	config_free(cfg);
	cfg = config_load_buffer("/taskerd.yaml", "", 0, err, sizeof(err));
	assert_non_null(cfg);
	assert_string_equal(cfg->templates_dir, "/templates");
	config_free(cfg);
}

static void
test_unknown_keys(void **state)
{
	(void)state;
	expect_error("http:\n  listen: 0.0.0.0:80\nbogus: 1\n",
	    NAME ":3: unknown key 'bogus' (valid: database, http, workers, "
	    "templates, scheduler, steps, state_dir, node_id, log, services, "
	    "auth)");
	expect_error("http:\n  lisen: 0.0.0.0:80\n",
	    NAME ":2: unknown key 'http.lisen' (valid: listen, max_body, "
	    "max_headers, timeout)");
	expect_error("steps:\n  backoff:\n    base: 1s\n    maximum: 1m\n",
	    NAME ":4: unknown key 'steps.backoff.maximum' (valid: base, max, "
	    "jitter)");
	expect_error("http.listen: 0.0.0.0:80\n",
	    NAME ":1: unknown key 'http.listen' (valid: database, http, "
	    "workers, templates, scheduler, steps, state_dir, node_id, log, "
	    "services, auth)");
	expect_error("services:\n  users:\n    base_url: http://u\n"
	    "    retries: 3\n",
	    NAME ":4: unknown service key 'retries' (valid: base_url, timeout, "
	    "concurrency, breaker)");
	expect_error("services:\n  users:\n    breaker: {failures: 1, "
	    "cooldwn: 1s}\n",
	    NAME ":3: unknown service key 'breaker.cooldwn' (valid: failures, "
	    "cooldown)");
	expect_error("auth:\n  tokens:\n    - name: a\n      scope: [read]\n",
	    NAME ":4: unknown token key 'scope' (valid: name, sha256, "
	    "scopes)");
	expect_error("auth:\n  users: []\n",
	    NAME ":2: unknown key 'auth.users' (valid: tokens)");
}

static void
test_bad_values(void **state)
{
	(void)state;
	/* A config whose variable was left unset: not the embedded
	 * database, quietly. */
	expect_error("database:\n  dsn:\n  pool: 4\n",
	    NAME ":2: database.dsn has no value: leave the key out for its "
	    "default (libpq connection string; unset: embedded PostgreSQL)");
	/* Nor an open API, quietly: "[]" says that. */
	expect_error("auth:\n  tokens:\n",
	    NAME ":2: auth.tokens has no value: leave the key out for its "
	    "default (list of {name, sha256, scopes}; [] or none: the API is "
	    "open)");
	expect_error("auth:\n",
	    NAME ":1: auth has no value: leave the key out for its default "
	    "({tokens}; left out: the API is open)");
	expect_error("auth: # tokens: see the vault\nlog:\n  level: info\n",
	    NAME ":1: auth has no value: leave the key out for its default "
	    "({tokens}; left out: the API is open)");
	expect_error("http:\n  max_body: 1 MiB\n",
	    NAME ":2: http.max_body: invalid size '1 MiB' (use 512, 64KiB, "
	    "16MiB or 1GiB)");
	expect_error("http:\n  max_body: 0\n",
	    NAME ":2: http.max_body: must be between 1 bytes and 1073741824 "
	    "bytes");
	expect_error("http:\n  max_body: 2GiB\n",
	    NAME ":2: http.max_body: must be between 1 bytes and 1073741824 "
	    "bytes");
	/* Longer than a week would overflow on its way to a timer. */
	expect_error("services:\n  s:\n    breaker: { failures: 1, "
	    "cooldown: 30d }\n",
	    NAME ":3: breaker.cooldown: must be between 0ms and 604800000ms");
	/* A step's path goes after a base_url: a query, a fragment or no
	 * scheme would send every call somewhere else. */
	expect_error("services:\n  s:\n    base_url: http://s/api?v=2\n",
	    NAME ":3: services.s.base_url must not have a query: a step's "
	    "path goes after it");
	expect_error("services:\n  s:\n    base_url: http://s/#top\n",
	    NAME ":3: services.s.base_url must not have a fragment: a "
	    "step's path goes after it");
	expect_error("services:\n  s:\n    base_url: users.internal:3000\n",
	    NAME ":3: services.s.base_url must be absolute http:// or "
	    "https://");
	expect_error("services:\n  s:\n    base_url: https:///x\n",
	    NAME ":3: services.s.base_url has no host");
	expect_error("services:\n  s:\n    base_url: \"http://s /x\"\n",
	    NAME ":3: services.s.base_url must not hold a space or a "
	    "control character");
	/* A frame's length is 32 bits; 1 byte holds no message. */
	expect_error("workers:\n  max_frame: 4GiB\n",
	    NAME ":2: workers.max_frame: must be between 4096 bytes and "
	    "1073741824 bytes");
	expect_error("workers:\n  max_frame: 1\n",
	    NAME ":2: workers.max_frame: must be between 4096 bytes and "
	    "1073741824 bytes");
	expect_error("workers:\n  max_frame: 99999999999TiB\n",
	    NAME ":2: workers.max_frame: invalid size '99999999999TiB' (use "
	    "512, 64KiB, 16MiB or 1GiB)");
	expect_error("http:\n  timeout: 30 s\n",
	    NAME ":2: http.timeout: invalid duration '30 s' (use 250ms, 5s, "
	    "2m, 1h, 1d or a number of milliseconds)");
	expect_error("scheduler:\n  lease: -1s\n",
	    NAME ":2: scheduler.lease: invalid duration '-1s' (use "
	    "250ms, 5s, 2m, 1h, 1d or a number of milliseconds)");
	expect_error("workers:\n  count: 0\n",
	    NAME ":2: workers.count: must be between 1 and 1024");
	expect_error("workers:\n  count: 1025\n",
	    NAME ":2: workers.count: must be between 1 and 1024");
	expect_error("workers:\n  count: four\n",
	    NAME ":2: workers.count: expected an integer, got 'four'");
	expect_error("database:\n  pool: 65\n",
	    NAME ":2: database.pool: must be between 1 and 64");
	expect_error("workers:\n  ping_timeout: 1s\n",
	    NAME ":2: workers.ping_timeout (1000 ms) must be longer than "
	    "workers.ping_interval (5000 ms): every worker would be killed "
	    "between two pings");
	expect_error("scheduler:\n  batch: 10001\n",
	    NAME ":2: scheduler.batch: must be between 1 and 10000");
	expect_error("steps:\n  retry_limit: 0\n",
	    NAME ":2: steps.retry_limit: must be at least 1");
	expect_error("steps:\n  backoff: {jitter: some}\n",
	    NAME ":2: steps.backoff.jitter: invalid jitter 'some' (full, "
	    "equal or none)");
	expect_error("log:\n  level: loud\n",
	    NAME ":2: log.level: invalid log level 'loud' (debug, info, warn "
	    "or error)");
	expect_error("http: [listen]\n",
	    NAME ":1: http: expected a mapping, got a sequence");
	expect_error("database:\n  dsn: {host: db}\n",
	    NAME ":2: database.dsn: expected a string, got a mapping");
	expect_error("http:\n  listen: localhost\n",
	    NAME ":2: http.listen: expected host:port or unix:PATH, got "
	    "'localhost'");
	expect_error("http:\n  listen: \"[::1]:99999\"\n",
	    NAME ":2: http.listen: expected host:port or unix:PATH, got "
	    "'[::1]:99999'");
	expect_error("services:\n  users:\n    concurrency: -1\n",
	    NAME ":3: concurrency: must be at least 0");
	expect_error("services: [users]\n",
	    NAME ":1: services: expected a mapping, got a sequence");
	expect_error("services:\n  users: http://u\n",
	    NAME ":2: service: expected a mapping, got a string");
	expect_error("- 1\n",
	    NAME ":1: top level: expected a mapping, got a sequence");
	expect_error("http:\n  listen: a:1\nhttp:\n  listen: b:2\n",
	    NAME ":3: duplicate key 'http' (first at line 1)");
	/* Of two repeated keys, the repeat met first; its first line. */
	expect_error("workers: {}\nhttp: {}\nsteps: {}\nhttp: {}\n"
	    "workers: {}\nhttp: {}\n",
	    NAME ":4: duplicate key 'http' (first at line 2)");
	expect_error("b: 1\na: 1\nc: 1\nb: 2\na: 2\n",
	    NAME ":4: duplicate key 'b' (first at line 1)");
	expect_error("http: {listen: [\n",
	    NAME ":2: did not find expected node content (while parsing a "
	    "flow node at line 2)");
}

static void
test_tokens(void **state)
{
	struct config	*cfg;

	(void)state;
	expect_error("auth:\n  tokens:\n    - name: a\n"
	    "      sha256: 9f86d081884c7d659a2feaa0c55ad015"
	    "a3bf4f1b2b0b822cd15d6c15b0f00a0\n      scopes: [read]\n",
	    NAME ":4: sha256: expected 64 hex digits (the SHA-256 of the "
	    "token)");
	expect_error("auth:\n  tokens:\n    - name: a\n"
	    "      sha256: 9f86d081884c7d659a2feaa0c55ad015"
	    "a3bf4f1b2b0b822cd15d6c15b0f00a0g\n      scopes: [read]\n",
	    NAME ":4: sha256: expected 64 hex digits (the SHA-256 of the "
	    "token)");
	expect_error("auth:\n  tokens:\n    - name: a\n"
	    "      sha256: 9f86d081884c7d659a2feaa0c55ad015"
	    "a3bf4f1b2b0b822cd15d6c15b0f00a080\n      scopes: [read]\n",
	    NAME ":4: sha256: expected 64 hex digits (the SHA-256 of the "
	    "token)");
	expect_error("auth:\n  tokens:\n    - name: a\n"
	    "      sha256: 9f86d081884c7d659a2feaa0c55ad015"
	    "a3bf4f1b2b0b822cd15d6c15b0f00a08\n"
	    "      scopes: [read, root]\n",
	    NAME ":5: scopes: invalid scope 'root' (read, write or admin)");
	expect_error("auth:\n  tokens:\n    - name: a\n      scopes: [read]\n",
	    NAME ":3: token is missing 'sha256'");
	expect_error("auth:\n  tokens:\n    - name: a\n"
	    "      sha256: 9f86d081884c7d659a2feaa0c55ad015"
	    "a3bf4f1b2b0b822cd15d6c15b0f00a08\n",
	    NAME ":3: token is missing 'scopes'");
	expect_error("auth:\n  tokens:\n    - name: a\n"
	    "      sha256: 9f86d081884c7d659a2feaa0c55ad015"
	    "a3bf4f1b2b0b822cd15d6c15b0f00a08\n      scopes: read\n",
	    NAME ":5: scopes: expected a sequence, got a string");
	expect_error("auth:\n  tokens:\n    - name: a\n"
	    "      sha256: 9f86d081884c7d659a2feaa0c55ad015"
	    "a3bf4f1b2b0b822cd15d6c15b0f00a08\n      scopes: [read]\n"
	    "    - name: a\n"
	    "      sha256: 60303ae22b998861bce3b28f33eec1be"
	    "758a213c86c93c076dbe9f558c11c752\n      scopes: [read]\n",
	    NAME ":6: token name 'a' is used twice");
	expect_error("auth:\n  tokens:\n    - name: a\n"
	    "      sha256: 9f86d081884c7d659a2feaa0c55ad015"
	    "a3bf4f1b2b0b822cd15d6c15b0f00a08\n      scopes: [read]\n"
	    "    - name: b\n"
	    "      sha256: 9F86D081884C7D659A2FEAA0C55AD015"
	    "A3BF4F1B2B0B822CD15D6C15B0F00A08\n      scopes: [admin]\n",
	    NAME ":7: token 'b' has the sha256 of token 'a'");
	expect_error("auth:\n  tokens:\n    - name: a\n"
	    "      sha256: 9f86d081884c7d659a2feaa0c55ad015"
	    "a3bf4f1b2b0b822cd15d6c15b0f00a08\n      scopes: []\n",
	    NAME ":5: token 'a' has no scope: it could do nothing");
	expect_error("auth:\n  tokens: {name: a}\n",
	    NAME ":2: auth.tokens: expected a sequence, got a mapping");
	/* An explicit empty list: no tokens, the API is open. */
	cfg = load_ok("auth:\n  tokens: []\n");
	assert_int_equal(cfg->ntokens, 0);
	config_free(cfg);
}

static void
test_load_file(void **state)
{
	char		 dir[] = "/tmp/test_config.XXXXXX", path[PATH_MAX];
	char		 err[1024], want[PATH_MAX + 64];
	struct config	*cfg;
	FILE		*f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/taskerd.yaml", dir);
	assert_non_null(f = fopen(path, "w"));
	fputs(every_key, f);
	fputs("templates: {dir: t}\n", f);	/* a second templates: */
	fclose(f);
	assert_null(config_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s:48: duplicate key 'templates' "
	    "(first at line 13)", path);
	assert_string_equal(err, want);

	assert_non_null(f = fopen(path, "w"));
	fputs("workers: {count: 2}\ntemplates: {dir: t}\n", f);
	fclose(f);
	if ((cfg = config_load(path, err, sizeof(err))) == NULL)
		fail_msg("%s", err);
	assert_string_equal(cfg->path, path);
	assert_int_equal(cfg->workers_count, 2);
	snprintf(want, sizeof(want), "%s/t", dir);
	assert_string_equal(cfg->templates_dir, want);
	config_free(cfg);

	unlink(path);
	assert_null(config_load(path, err, sizeof(err)));
	snprintf(want, sizeof(want), "%s: cannot open: No such file or "
	    "directory", path);
	assert_string_equal(err, want);
	rmdir(dir);
}

/* The step defaults a config yields are what template loading takes. */
static void
test_step_defaults_feed_templates(void **state)
{
	static const char y[] =
	    "name: t\nstep_templates:\n  - name: a\n    handler: noop\n";
	struct config	*cfg;
	struct tmpl	*t;
	char		 err[256];

	(void)state;
	cfg = load_ok("steps: {retry_limit: 7, timeout: 9s, "
	    "backoff: {jitter: none}}\n");
	t = tmpl_load_buffer("t.yaml", y, sizeof(y) - 1, &cfg->step_defaults,
	    err, sizeof(err));
	assert_non_null(t);
	assert_int_equal(t->steps[0].retry_limit, 7);
	assert_int_equal(t->steps[0].timeout_ms, 9000);
	assert_int_equal(t->steps[0].backoff.jitter, JITTER_NONE);
	assert_int_equal(t->steps[0].backoff.base_ms, 1000);
	tmpl_free(t);
	config_free(cfg);
}

/* What a reload cannot apply is named; what it applies is not. */
static void
test_restart_changes(void **state)
{
	struct config	*a, *b;
	char		 err[256], *changed;

	(void)state;
	a = load("workers: {count: 2}\nhttp: {listen: \"127.0.0.1:1\"}\n",
	    err, sizeof(err));
	b = load("workers: {count: 2}\nhttp: {listen: \"127.0.0.1:1\"}\n"
	    "log: {level: debug}\nsteps: {retry_limit: 9}\n"
	    "templates: {dir: other}\n", err, sizeof(err));
	assert_non_null(a);
	assert_non_null(b);
	assert_null(config_restart_changes(a, b));
	config_free(b);
	b = load("workers: {count: 3}\nhttp: {listen: \"127.0.0.1:2\"}\n"
	    "database: {dsn: \"host=x\"}\n", err, sizeof(err));
	assert_non_null(b);
	changed = config_restart_changes(a, b);
	assert_string_equal(changed, "database.dsn, http.listen, "
	    "workers.count");
	free(changed);
	config_free(a);
	config_free(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_default),
		cmocka_unit_test(test_empty_file),
		cmocka_unit_test(test_every_key),
		cmocka_unit_test(test_templates_dir),
		cmocka_unit_test(test_unknown_keys),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_tokens),
		cmocka_unit_test(test_load_file),
		cmocka_unit_test(test_step_defaults_feed_templates),
		cmocka_unit_test(test_restart_changes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
