/*
 * handler_config.c - see handler_config.h.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "errbuf.h"
#include "handler_config.h"
#include "jsontext.h"
#include "xmalloc.h"

/* A string PostgreSQL, execve and the environment can all carry. */
static int
exec_plain_string(const json_t *v)
{
	return json_is_string(v) &&
	    strlen(json_string_value(v)) == json_string_length(v);
}

/* For an error on v, not a string: how to write it if it is a scalar
 * YAML read as something else (8080, true). */
static const char *
exec_quote_hint(const json_t *v, char *buf, size_t len)
{
	char	*text;

	if (!json_is_number(v) && !json_is_boolean(v))
		return "";
	text = jsontext(v, 0);
	snprintf(buf, len, ": write \"%s\", in quotes", text);
	free(text);
	return buf;
}

/* base_dir/path for a relative path with a slash, else NULL: a bare
 * name is for PATH (exec) or the library path (plugin) to find. */
static char *
handler_config_path(const char *path, const char *base_dir)
{
	char	*abs;

	if (base_dir == NULL || path[0] == '/' || strchr(path, '/') == NULL)
		return NULL;
	while (strncmp(path, "./", 2) == 0)
		path += 2;
	xasprintf(&abs, "%s/%s", base_dir, path);
	return abs;
}

int
exec_config_check(json_t *cfg, const char *base_dir, char *err,
    size_t errlen)
{
	json_t		*cmd, *env, *v;
	const char	*key, *prog;
	char		*abs, hint[64];
	size_t		 i;

	if (!json_is_object(cfg)) {
		errbuf_set(err, errlen, "exec handler_config must be a map");
		return -1;
	}
	json_object_foreach(cfg, key, v) {
		if (strcmp(key, "command") != 0 && strcmp(key, "env") != 0) {
			errbuf_set(err, errlen, "exec handler_config: unknown "
			    "key '%s' (command, env)", key);
			return -1;
		}
	}
	cmd = json_object_get(cfg, "command");
	if (!json_is_array(cmd) || json_array_size(cmd) == 0) {
		errbuf_set(err, errlen, "exec handler_config needs command, a "
		    "list of strings: [program, arg, ...]");
		return -1;
	}
	json_array_foreach(cmd, i, v) {
		if (!exec_plain_string(v)) {
			errbuf_set(err, errlen, "exec command[%zu] must be a "
			    "string%s", i, exec_quote_hint(v, hint,
			    sizeof(hint)));
			return -1;
		}
	}
	prog = json_string_value(json_array_get(cmd, 0));
	if (*prog == '\0') {
		errbuf_set(err, errlen, "exec command[0] must name a program");
		return -1;
	}
	if ((env = json_object_get(cfg, "env")) != NULL) {
		if (!json_is_object(env)) {
			errbuf_set(err, errlen, "exec env must be a map of "
			    "names to strings");
			return -1;
		}
		json_object_foreach(env, key, v) {
			if (*key == '\0' || strchr(key, '=') != NULL) {
				errbuf_set(err, errlen, "exec env: '%s' is not "
				    "a variable name", key);
				return -1;
			}
			if (strncmp(key, "TASKERD_", 8) == 0) {
				errbuf_set(err, errlen, "exec env: %s: TASKERD_ "
				    "variables are the step's own", key);
				return -1;
			}
			if (!exec_plain_string(v)) {
				errbuf_set(err, errlen, "exec env.%s must be a "
				    "string%s", key, exec_quote_hint(v, hint,
				    sizeof(hint)));
				return -1;
			}
		}
	}
	if ((abs = handler_config_path(prog, base_dir)) != NULL) {
		json_array_set_new(cmd, 0, json_string(abs));
		free(abs);
	}
	return 0;
}

const char *
exec_path_name(const json_t *env)
{
	return json_string_value(json_object_get(env, "PATH")) != NULL ?
	    "the step's env PATH" : "PATH";
}

char *
exec_find_program(const char *name, const json_t *env)
{
	const char	*path, *p, *end;
	char		*cand;
	struct stat	 st;

	if (strchr(name, '/') != NULL)
		return xstrdup(name);
	/* The program runs with the step's PATH, when it sets one: that is
	 * where its name is looked for. */
	if ((path = json_string_value(json_object_get(env, "PATH"))) ==
	    NULL && (path = getenv("PATH")) == NULL)
		path = "";
	if (*path == '\0')
		path = "/usr/local/bin:/usr/bin:/bin";
	for (p = path; ; p = end + 1) {
		end = strchrnul(p, ':');
		/* An empty PATH entry means the current directory. */
		xasprintf(&cand, "%.*s/%s", end == p ? 1 : (int)(end - p),
		    end == p ? "." : p, name);
		if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) &&
		    access(cand, X_OK) == 0)
			return cand;
		free(cand);
		if (*end == '\0')
			return NULL;
	}
}

/* A C identifier, which is all dlsym can find. */
static int
plugin_symbol_ok(const char *s)
{
	if (!isalpha((unsigned char)*s) && *s != '_')
		return 0;
	for (s++; *s != '\0'; s++) {
		if (!isalnum((unsigned char)*s) && *s != '_')
			return 0;
	}
	return 1;
}

int
plugin_config_check(json_t *cfg, const char *handler_class,
    const char *base_dir, char *err, size_t errlen)
{
	json_t		*lib, *sym;
	const char	*name;
	char		*abs;

	if (!json_is_object(cfg)) {
		errbuf_set(err, errlen, "plugin handler_config must be a map");
		return -1;
	}
	lib = json_object_get(cfg, "library");
	if (!exec_plain_string(lib) || *json_string_value(lib) == '\0') {
		errbuf_set(err, errlen, "a plugin step needs handler_config."
		    "library, the shared object to load%s%s%s",
		    handler_class != NULL ? " (handler_class '" : "",
		    handler_class != NULL ? handler_class : "",
		    handler_class != NULL ? "' makes it a plugin step)" : "");
		return -1;
	}
	if ((sym = json_object_get(cfg, "symbol")) != NULL) {
		if (!exec_plain_string(sym) ||
		    !plugin_symbol_ok(json_string_value(sym))) {
			errbuf_set(err, errlen, "plugin symbol must be a C "
			    "function name");
			return -1;
		}
	} else if ((name = handler_class) == NULL) {
		errbuf_set(err, errlen, "a plugin step needs handler_config."
		    "symbol, the C function to call");
		return -1;
	} else if (!plugin_symbol_ok(name)) {
		errbuf_set(err, errlen, "a plugin step needs a C function "
		    "name: handler_config.symbol, or a handler_class that is "
		    "one ('%s' is not)", name);
		return -1;
	} else
		json_object_set_new(cfg, "symbol", json_string(name));
	if ((abs = handler_config_path(json_string_value(lib), base_dir)) !=
	    NULL) {
		json_object_set_new(cfg, "library", json_string(abs));
		free(abs);
	}
	return 0;
}

int
noop_config_check(const json_t *cfg, char *err, size_t errlen)
{
	const char	*key, *fail;
	json_t		*v;

	/* (The template loader sees to it that cfg is a mapping.) */
	json_object_foreach((json_t *)cfg, key, v) {
		if (strcmp(key, "sleep_ms") == 0) {
			if (!json_is_integer(v) || json_integer_value(v) < 0) {
				snprintf(err, errlen, "noop sleep_ms must be "
				    "an integer >= 0");
				return -1;
			}
		} else if (strcmp(key, "fail") == 0) {
			fail = json_string_value(v);
			if (fail == NULL || (strcmp(fail, "retryable") != 0 &&
			    strcmp(fail, "permanent") != 0)) {
				snprintf(err, errlen, "noop fail must be "
				    "\"retryable\" or \"permanent\"");
				return -1;
			}
		} else if (strcmp(key, "results") != 0) {
			snprintf(err, errlen, "noop handler_config: unknown key "
			    "'%.64s' (valid: sleep_ms, fail, results)", key);
			return -1;
		}
	}
	return 0;
}
