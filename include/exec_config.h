/*
 * exec_config.h - the exec handler's handler_config: checked when a
 * template loads and again by the worker that runs it.
 *
 *   command: [program, arg, ...]   a list of strings, the first not empty
 *   env: { NAME: value, ... }      strings; NAME not empty, without '='
 */
#ifndef TASKERD_EXEC_CONFIG_H
#define TASKERD_EXEC_CONFIG_H

#include <stddef.h>
#include <jansson.h>

/*
 * 0 when cfg is a valid exec config, else -1 with the reason in err.  With
 * a base_dir, a program named by a relative path with a slash
 * ("./bin/x", "handlers/x") is rewritten in cfg to base_dir/path: the
 * template's own directory, whatever taskerd's working directory is.
 */
int	exec_config_check(json_t *cfg, const char *base_dir, char *err,
	    size_t errlen);

#endif
