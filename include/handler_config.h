/*
 * handler_config.h - what a step's handler_config must hold for the
 * handlers that run programs or shared objects: checked when a template
 * loads, and again by the worker that runs the step.
 *
 * exec:
 *   command: [program, arg, ...]   a list of strings, the first not empty
 *   env: { NAME: value, ... }      strings; NAME not empty, without '=',
 *                                  not TASKERD_*
 *
 * plugin (see taskerd_plugin.h):
 *   library: path                  the shared object
 *   symbol: name                   the function; default the handler_class
 *   anything else                  the plugin's own, passed to it
 */
#ifndef TASKERD_HANDLER_CONFIG_H
#define TASKERD_HANDLER_CONFIG_H

#include <stddef.h>
#include <jansson.h>

/*
 * Each returns 0 when cfg is valid, else -1 with the reason in err.
 *
 * With a base_dir (the template file's directory), a program or library
 * named by a relative path with a slash ("./bin/x", "lib/x.so") is
 * rewritten in cfg to base_dir/path, whatever taskerd's working directory.
 */
int	exec_config_check(json_t *cfg, const char *base_dir, char *err,
	    size_t errlen);

/* The file execve should run for an exec command[0]: a name with a slash
 * as it is, else the first executable regular file of that name in PATH:
 * env's (the step's "env" map), if it sets one, else the process's.  A
 * new string, or NULL when there is none. */
char	*exec_find_program(const char *name, const json_t *env);
/* Which PATH exec_find_program searched, for messages. */
const char *exec_path_name(const json_t *env);

/* handler_class, when not NULL, is the symbol if cfg names none; it is
 * then written into cfg, which is all a worker gets. */
int	plugin_config_check(json_t *cfg, const char *handler_class,
	    const char *base_dir, char *err, size_t errlen);

/* noop: sleep_ms (an integer >= 0), fail ("retryable" or "permanent"),
 * results (any JSON), nothing else. */
int	noop_config_check(const json_t *cfg, char *err, size_t errlen);

#endif
