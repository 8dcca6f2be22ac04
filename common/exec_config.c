/*
 * exec_config.c - see exec_config.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errbuf.h"
#include "exec_config.h"
#include "xmalloc.h"

/* A string PostgreSQL, execve and the environment can all carry. */
static int
exec_plain_string(const json_t *v)
{
	return json_is_string(v) &&
	    strlen(json_string_value(v)) == json_string_length(v);
}

int
exec_config_check(json_t *cfg, const char *base_dir, char *err,
    size_t errlen)
{
	json_t		*cmd, *env, *v;
	const char	*key, *prog;
	char		*abs;
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
			    "string", i);
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
			if (!exec_plain_string(v)) {
				errbuf_set(err, errlen, "exec env.%s must be a "
				    "string", key);
				return -1;
			}
		}
	}
	if (base_dir != NULL && prog[0] != '/' && strchr(prog, '/') != NULL) {
		xasprintf(&abs, "%s/%s", base_dir, prog);
		json_array_set_new(cmd, 0, json_string(abs));
		free(abs);
	}
	return 0;
}
