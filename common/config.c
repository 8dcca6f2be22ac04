/*
 * config.c - the daemon's configuration file.
 *
 * Every key is one row of config_keys: its path, type, where it is stored,
 * its default and a line of doc.  The defaults in the table are the only
 * defaults: config_default() and a file that leaves a key out both get them
 * from there.  services and auth.tokens are lists of records, each record
 * read with its own small table.
 */
#include <ctype.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errbuf.h"
#include "xmalloc.h"
#include "yamltree.h"
#include "config.h"
#include "http_rules.h"

static int	config_key_services(struct yt_doc *, const struct yt_key *,
		    yaml_node_t *, void *, void *);
static int	config_key_tokens(struct yt_doc *, const struct yt_key *,
		    yaml_node_t *, void *, void *);
static int	config_key_sha256(struct yt_doc *, const struct yt_key *,
		    yaml_node_t *, void *, void *);
static int	config_key_scopes(struct yt_doc *, const struct yt_key *,
		    yaml_node_t *, void *, void *);

#define C(f)	offsetof(struct config, f)
#define SV(f)	offsetof(struct service_config, f)
#define TK(f)	offsetof(struct auth_token, f)

static const struct yt_key config_keys[] = {
	/* A config rendered with its variable unset must not quietly make
	 * a node with a private database. */
	{ "database.dsn", YT_STRING, C(database_dsn), NULL, 0, 0, YT_NOT_NULL,
	    NULL, "libpq connection string; unset: embedded PostgreSQL" },
	{ "database.pool", YT_INT, C(database_pool), "4", 1, 64, 0, NULL,
	    "connections to the database, and one more for the heartbeat" },
	{ "database.statement_timeout", YT_DURATION,
	    C(database_statement_timeout_ms), "30s", 100, 3600000, 0, NULL,
	    "longest statement; a database silent for longer still is "
	    "dropped" },
	{ "database.lock_timeout", YT_DURATION,
	    C(database_lock_timeout_ms), "5s", 100, 3600000, 0, NULL,
	    "longest wait on a lock held elsewhere; then tried again later" },
	{ "http.listen", YT_STRING, C(http_listen), "127.0.0.1:8080", 0, 0, 0,
	    NULL, "host:port or unix:PATH" },
	/* (Bounded so that what libevent is given, twice max_body and
	 * whole seconds of the timeout, fits its types.) */
	{ "http.max_body", YT_SIZE, C(http_max_body), "1MiB", 1,
	    (int64_t)1 << 30, 0, NULL, "largest request body accepted" },
	{ "http.max_headers", YT_SIZE, C(http_max_headers), "16KiB", 1,
	    (int64_t)1 << 30, 0, NULL, "largest request header block "
	    "accepted" },
	{ "http.timeout", YT_DURATION, C(http_timeout_ms), "30s", 1,
	    (int64_t)24 * 3600 * 1000, 0, NULL, "idle time before a client "
	    "connection is closed" },
	{ "workers.count", YT_INT, C(workers_count), "4", 1, 1024, 0, NULL,
	    "worker processes" },
	{ "workers.path", YT_STRING, C(workers_path), NULL, 0, 0, 0, NULL,
	    "taskerd-worker binary; unset: the installed one" },
	{ "workers.user", YT_STRING, C(workers_user), NULL, 0, 0, 0, NULL,
	    "when started as root, workers run as this user" },
	{ "workers.ping_interval", YT_DURATION, C(workers_ping_interval_ms),
	    "5s", 100, INT32_MAX, 0, NULL,
	    "how often each worker is pinged, busy or idle" },
	{ "workers.ping_timeout", YT_DURATION, C(workers_ping_timeout_ms),
	    "15s", 100, INT32_MAX, 0, NULL,
	    "a worker silent this long is killed and replaced" },
	/* (A frame's length is 32 bits; below 4 KiB not even a step's
	 * identity and its answer fit.) */
	{ "workers.max_frame", YT_SIZE, C(workers_max_frame), "16MiB", 4096,
	    (int64_t)1 << 30, 0, NULL, "largest message to or from a worker" },
	{ "templates.dir", YT_STRING, C(templates_dir), "templates", 0, 0, 0,
	    NULL, "template directory, relative to this file's directory" },
	{ "scheduler.batch", YT_INT, C(scheduler_batch), "256", 1, 10000, 0,
	    NULL, "most steps claimed in one query" },
	{ "scheduler.prefetch", YT_INT, C(scheduler_prefetch), "64", 0, 10000,
	    0, NULL, "steps claimed ahead of a free worker" },
	{ "scheduler.lease", YT_DURATION, C(node_lease_ms), "10s", 1000,
	    3600000, 0, NULL, "a node's claims outlive its last heartbeat by "
	    "this" },
	{ "steps.retry_limit", YT_INT, C(step_defaults.retry_limit), "3", 1,
	    INT_MAX, 0, NULL, "total attempts of a step that sets none" },
	/* A step's timeout is an int column (milliseconds, at most 24.8
	 * days), and so are the delays, for the same reason. */
	{ "steps.timeout", YT_DURATION, C(step_defaults.timeout_ms), "30s", 1,
	    INT_MAX, 0, NULL, "attempt timeout of a step that sets none" },
	{ "steps.backoff.base", YT_DURATION, C(step_defaults.backoff.base_ms),
	    "1s", 0, INT_MAX, 0, NULL, "delay before a step's attempt 2" },
	{ "steps.backoff.max", YT_DURATION, C(step_defaults.backoff.max_ms),
	    "5m", 0, INT_MAX, 0, NULL, "cap on the retry delay" },
	{ "steps.backoff.jitter", YT_JITTER, C(step_defaults.backoff.jitter),
	    "full", 0, 0, 0, NULL, "full, equal or none" },
	{ "state_dir", YT_STRING, C(state_dir), "/var/lib/taskerd", 0, 0, 0,
	    NULL, "home of the embedded PostgreSQL and runtime files" },
	{ "node_id", YT_STRING, C(node_id), NULL, 0, 0, 0, NULL,
	    "this node's name in leases; unset: HOSTNAME/LISTEN" },
	{ "log.level", YT_LOGLEVEL, C(log_level), "info", 0, 0, 0, NULL,
	    "debug, info, warn or error" },
	{ "services", YT_FUNC, 0, NULL, 0, 0, 0, config_key_services,
	    "name: {base_url, timeout, concurrency, breaker}" },
	/* ("tokens:" with no value - a rendered config whose list came out
	 * empty - would open the API without a word: "[]" says it.  So
	 * would "auth:" with nothing under it.) */
	{ "auth", YT_SECTION, 0, NULL, 0, 0, YT_NOT_NULL, NULL,
	    "{tokens}; left out: the API is open" },
	{ "auth.tokens", YT_FUNC, 0, NULL, 0, 0, YT_NOT_NULL,
	    config_key_tokens, "list of {name, sha256, scopes}; [] or none: "
	    "the API is open" },
};

static const struct yt_key service_keys[] = {
	{ "base_url", YT_STRING, SV(base_url), NULL, 0, 0, 0, NULL,
	    "prefix of the service's relative step URLs" },
	{ "timeout", YT_DURATION, SV(timeout_ms), "0", 0, INT32_MAX, 0, NULL,
	    "per call; 0: the step's own" },
	{ "concurrency", YT_INT, SV(concurrency), "0", 0, INT_MAX, 0, NULL,
	    "calls in flight; 0: unlimited" },
	{ "breaker.failures", YT_INT, SV(breaker_failures), "0", 0, INT_MAX, 0,
	    NULL, "consecutive failures that open the breaker; 0: none" },
	{ "breaker.cooldown", YT_DURATION, SV(breaker_cooldown_ms), "30s", 0,
	    (int64_t)7 * 24 * 3600 * 1000, 0, NULL, "time the breaker stays "
	    "open" },
};

static const struct yt_key token_keys[] = {
	{ "name", YT_STRING, TK(name), NULL, 0, 0, YT_REQUIRED, NULL,
	    "who holds it, for logs" },
	{ "sha256", YT_FUNC, 0, NULL, 0, 0, YT_REQUIRED, config_key_sha256,
	    "hex SHA-256 of the bearer token" },
	{ "scopes", YT_FUNC, 0, NULL, 0, 0, YT_REQUIRED, config_key_scopes,
	    "subset of read, write, admin" },
};

static const struct {
	const char	*name;
	enum auth_scope	 bit;
} config_scopes[] = {
	{ "read", SCOPE_READ },
	{ "write", SCOPE_WRITE },
	{ "admin", SCOPE_ADMIN },
};

static int
config_key_services(struct yt_doc *doc, const struct yt_key *k,
    yaml_node_t *v, void *base, void *arg)
{
	struct config		*cfg = base;
	struct service_config	*svc;
	yaml_node_t		*sv;
	size_t			 i;
	char			 why[128];

	(void)arg;
	if (yt_expect(doc, v, YAML_MAPPING_NODE, k->name) == -1)
		return -1;
	for (i = 0; i < yt_len(v); i++) {
		/* Counted before decoding so config_free sees it on error. */
		cfg->services = xreallocarray(cfg->services,
		    cfg->nservices + 1, sizeof(*cfg->services));
		svc = &cfg->services[cfg->nservices++];
		memset(svc, 0, sizeof(*svc));
		svc->name = xstrdup(yt_text(yt_key(doc, v, i)));
		yt_defaults(service_keys, YT_NELEM(service_keys), svc);
		sv = yt_value(doc, v, i);
		if (yt_is_null(sv))
			continue;
		if (yt_decode(doc, sv, service_keys, YT_NELEM(service_keys),
		    svc, NULL, "service") == -1)
			return -1;
		if (svc->base_url != NULL && http_rules_base_url_check(
		    svc->base_url, why, sizeof(why)) == -1)
			return yt_error(doc, yt_lookup(doc, sv, "base_url"),
			    "services.%s.base_url %s", svc->name, why);
	}
	return 0;
}

static int
config_key_sha256(struct yt_doc *doc, const struct yt_key *k, yaml_node_t *v,
    void *base, void *arg)
{
	struct auth_token	*tok = base;
	const char		*s;
	size_t			 i;
	int			 hi, lo;

	(void)arg;
	if (yt_expect(doc, v, YAML_SCALAR_NODE, k->name) == -1)
		return -1;
	s = yt_text(v);
	for (i = 0; s[i] != '\0'; i++)
		if (!isxdigit((unsigned char)s[i]))
			break;
	if (i != 64 || s[i] != '\0')
		return yt_error(doc, v, "%s: expected 64 hex digits (the "
		    "SHA-256 of the token)", k->name);
	for (i = 0; i < 32; i++) {
		hi = tolower((unsigned char)s[2 * i]);
		lo = tolower((unsigned char)s[2 * i + 1]);
		hi = hi <= '9' ? hi - '0' : hi - 'a' + 10;
		lo = lo <= '9' ? lo - '0' : lo - 'a' + 10;
		tok->sha256[i] = (unsigned char)(hi << 4 | lo);
	}
	return 0;
}

static int
config_key_scopes(struct yt_doc *doc, const struct yt_key *k, yaml_node_t *v,
    void *base, void *arg)
{
	struct auth_token	*tok = base;
	yaml_node_t		*item;
	size_t			 i, j;

	(void)arg;
	if (yt_expect(doc, v, YAML_SEQUENCE_NODE, k->name) == -1)
		return -1;
	for (i = 0; i < yt_len(v); i++) {
		item = yt_item(doc, v, i);
		if (yt_expect(doc, item, YAML_SCALAR_NODE, k->name) == -1)
			return -1;
		for (j = 0; j < YT_NELEM(config_scopes); j++)
			if (strcmp(yt_text(item), config_scopes[j].name) == 0)
				break;
		if (j == YT_NELEM(config_scopes))
			return yt_error(doc, item, "%s: invalid scope '%s' "
			    "(read, write or admin)", k->name, yt_text(item));
		tok->scopes |= config_scopes[j].bit;
	}
	return 0;
}

static int
config_key_tokens(struct yt_doc *doc, const struct yt_key *k, yaml_node_t *v,
    void *base, void *arg)
{
	struct config		*cfg = base;
	struct auth_token	*tok;
	yaml_node_t		*item;
	size_t			 i, j;

	(void)arg;
	if (yt_expect(doc, v, YAML_SEQUENCE_NODE, k->name) == -1)
		return -1;
	for (i = 0; i < yt_len(v); i++) {
		cfg->tokens = xreallocarray(cfg->tokens, cfg->ntokens + 1,
		    sizeof(*cfg->tokens));
		tok = &cfg->tokens[cfg->ntokens++];
		memset(tok, 0, sizeof(*tok));
		item = yt_item(doc, v, i);
		if (yt_decode(doc, item, token_keys, YT_NELEM(token_keys), tok,
		    NULL, "token") == -1)
			return -1;
		/* Names are what logs and metrics show: they must tell
		 * tokens apart. */
		for (j = 0; j < i; j++) {
			if (strcmp(cfg->tokens[j].name, tok->name) == 0)
				return yt_error(doc, yt_lookup(doc, item,
				    "name"), "token name '%s' is used twice",
				    tok->name);
			/* One token cannot be two: the second would never
			 * match, its scopes never apply. */
			if (memcmp(cfg->tokens[j].sha256, tok->sha256,
			    sizeof(tok->sha256)) == 0)
				return yt_error(doc, yt_lookup(doc, item,
				    "sha256"), "token '%s' has the sha256 of "
				    "token '%s'", tok->name,
				    cfg->tokens[j].name);
		}
		if (tok->scopes == 0)
			return yt_error(doc, yt_lookup(doc, item, "scopes"),
			    "token '%s' has no scope: it could do nothing",
			    tok->name);
	}
	return 0;
}

/* "host:port" with a numeric port, or "unix:PATH". */
static int
config_check_listen(struct yt_doc *doc, const struct config *cfg)
{
	const char	*s = cfg->http_listen, *port;
	char		*end;
	long		 n;

	if (strncmp(s, "unix:", 5) == 0 && s[5] != '\0')
		return 0;
	if ((port = strrchr(s, ':')) != NULL && port > s) {
		n = strtol(port + 1, &end, 10);
		if (port[1] != '\0' && *end == '\0' && n >= 1 && n <= 65535)
			return 0;
	}
	return yt_error(doc, yt_lookup(doc, yt_lookup(doc, yt_root(doc),
	    "http"), "listen"), "http.listen: expected host:port or "
	    "unix:PATH, got '%s'", s);
}

/* A worker answers pings; silence longer than the interval between them
 * is needed before it can mean anything. */
static int
config_check_ping(struct yt_doc *doc, const struct config *cfg)
{
	yaml_node_t	*workers, *node;

	if (cfg->workers_ping_timeout_ms > cfg->workers_ping_interval_ms)
		return 0;
	workers = yt_lookup(doc, yt_root(doc), "workers");
	if ((node = yt_lookup(doc, workers, "ping_timeout")) == NULL &&
	    (node = yt_lookup(doc, workers, "ping_interval")) == NULL)
		node = workers;
	return yt_error(doc, node, "workers.ping_timeout (%lld ms) must be "
	    "longer than workers.ping_interval (%lld ms): every worker would "
	    "be killed between two pings",
	    (long long)cfg->workers_ping_timeout_ms,
	    (long long)cfg->workers_ping_interval_ms);
}

/* A base above the cap is a slip (the delays would all be the cap): say
 * so rather than guess which was meant. */
static int
config_check_backoff(struct yt_doc *doc, const struct config *cfg)
{
	const struct backoff	*b = &cfg->step_defaults.backoff;
	yaml_node_t		*bo, *node;

	if (b->base_ms <= b->max_ms)
		return 0;
	bo = yt_lookup(doc, yt_lookup(doc, yt_root(doc), "steps"), "backoff");
	if ((node = yt_lookup(doc, bo, "base")) == NULL)
		node = yt_lookup(doc, bo, "max");
	return yt_error(doc, node, "steps.backoff.base (%lld ms) is longer "
	    "than steps.backoff.max (%lld ms), which caps every delay",
	    (long long)b->base_ms, (long long)b->max_ms);
}

/* Relative to the config file's directory, so that the file means the same
 * whatever directory taskerd was started from. */
static void
config_resolve(const struct config *cfg, char **dirp)
{
	const char	*slash;
	char		*dir;

	if (cfg->path == NULL || *dirp == NULL || (*dirp)[0] == '/' ||
	    (slash = strrchr(cfg->path, '/')) == NULL)
		return;
	xasprintf(&dir, "%.*s/%s", (int)(slash - cfg->path), cfg->path,
	    *dirp);
	free(*dirp);
	*dirp = dir;
}

static struct config *
config_parse(struct yt_doc *doc)
{
	struct config	*cfg;
	yaml_node_t	*root;
	char		 cwd[PATH_MAX], *abs;

	cfg = config_default();
	cfg->path = xstrdup(yt_name(doc));
	/* An empty file is a valid config: every key at its default. */
	if ((root = yt_root(doc)) != NULL &&
	    yt_decode(doc, root, config_keys, YT_NELEM(config_keys), cfg,
	    NULL, NULL) == -1) {
		config_free(cfg);
		return NULL;
	}
	if (config_check_listen(doc, cfg) == -1 ||
	    config_check_ping(doc, cfg) == -1 ||
	    config_check_backoff(doc, cfg) == -1) {
		config_free(cfg);
		return NULL;
	}
	/* (state_dir too: the embedded server's socket directory must be
	 * absolute, and so must a libpq host - from the working directory
	 * when the config file's own is relative, as for -c taskerd.yaml.) */
	config_resolve(cfg, &cfg->templates_dir);
	config_resolve(cfg, &cfg->state_dir);
	if (cfg->state_dir != NULL && cfg->state_dir[0] != '/' &&
	    getcwd(cwd, sizeof(cwd)) != NULL) {
		xasprintf(&abs, "%s/%s", cwd, cfg->state_dir);
		free(cfg->state_dir);
		cfg->state_dir = abs;
	}
	return cfg;
}

struct config *
config_load_buffer(const char *name, const char *buf, size_t len, char *err,
    size_t errlen)
{
	struct yt_doc	*doc;
	struct config	*cfg;

	if ((doc = yt_load_buffer(name, buf, len, err, errlen)) == NULL)
		return NULL;
	cfg = config_parse(doc);
	yt_free(doc);
	return cfg;
}

struct config *
config_load(const char *path, char *err, size_t errlen)
{
	struct yt_doc	*doc;
	struct config	*cfg;

	if ((doc = yt_load_file(path, err, errlen)) == NULL)
		return NULL;
	cfg = config_parse(doc);
	yt_free(doc);
	return cfg;
}

struct config *
config_default(void)
{
	struct config	*cfg;

	cfg = xcalloc(1, sizeof(*cfg));
	yt_defaults(config_keys, YT_NELEM(config_keys), cfg);
	return cfg;
}

void
config_free(struct config *cfg)
{
	size_t	i;

	if (cfg == NULL)
		return;
	for (i = 0; i < cfg->nservices; i++) {
		free(cfg->services[i].name);
		yt_release(service_keys, YT_NELEM(service_keys),
		    &cfg->services[i]);
	}
	free(cfg->services);
	for (i = 0; i < cfg->ntokens; i++)
		yt_release(token_keys, YT_NELEM(token_keys), &cfg->tokens[i]);
	free(cfg->tokens);
	yt_release(config_keys, YT_NELEM(config_keys), cfg);
	free(cfg->path);
	free(cfg);
}

char *
config_restart_changes(const struct config *a, const struct config *b)
{
	const struct yt_key	*k;
	char			*out = NULL, *more;
	size_t			 i;

	for (i = 0; i < YT_NELEM(config_keys); i++) {
		k = &config_keys[i];
		if (strcmp(k->name, "templates.dir") == 0 ||
		    strncmp(k->name, "steps.", 6) == 0 ||
		    strcmp(k->name, "log.level") == 0 || yt_same(k, a, b))
			continue;
		if (out == NULL)
			out = xstrdup(k->name);
		else {
			xasprintf(&more, "%s, %s", out, k->name);
			free(out);
			out = more;
		}
	}
	return out;
}

const struct service_config *
config_service(const struct config *cfg, const char *name)
{
	size_t	i;

	for (i = 0; i < cfg->nservices; i++)
		if (strcmp(cfg->services[i].name, name) == 0)
			return &cfg->services[i];
	return NULL;
}

int64_t
config_lock_timeout_ms(const struct config *cfg)
{
	if (cfg->database_lock_timeout_ms < cfg->database_statement_timeout_ms)
		return cfg->database_lock_timeout_ms;
	return cfg->database_statement_timeout_ms / 2;
}

char *
config_warnings(const struct config *cfg)
{
	char	*out = NULL;

	if (config_lock_timeout_ms(cfg) != cfg->database_lock_timeout_ms)
		xasprintf(&out, "%s: database.lock_timeout (%lld ms) is not "
		    "shorter than database.statement_timeout (%lld ms): waits "
		    "on a lock end after %lld ms",
		    cfg->path != NULL ? cfg->path : "config",
		    (long long)cfg->database_lock_timeout_ms,
		    (long long)cfg->database_statement_timeout_ms,
		    (long long)config_lock_timeout_ms(cfg));
	return out;
}

char *
config_service_warnings(const struct config *cfg,
    const struct tmpl_registry *reg)
{
	const struct tmpl		*t;
	const struct tmpl_step		*st;
	const struct service_config	*svc;
	const char			*url;
	char				*line, *out = NULL, where[64];
	size_t				 i, k;

	for (i = 0; i < reg->n; i++) {
		t = reg->items[i];
		for (k = 0; k < t->nsteps; k++) {
			st = &t->steps[k];
			if (strcmp(st->handler, "http") != 0 ||
			    st->dependent_system == NULL ||
			    (url = http_rules_relative_url(st->handler_config,
			    where, sizeof(where))) == NULL)
				continue;
			svc = config_service(cfg, st->dependent_system);
			if (svc != NULL && svc->base_url != NULL)
				continue;
			xasprintf(&line, "%s:%d: step \"%s\": %s %s is "
			    "relative, and service \"%s\" %s", t->path,
			    st->line, st->name, where, url,
			    st->dependent_system,
			    svc == NULL ? "is not among the config's services" :
			    "has no base_url in the config");
			errbuf_line(&out, line);
			free(line);
		}
	}
	return out;
}
