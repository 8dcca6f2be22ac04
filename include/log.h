/*
 * log.h - logging.  Lines are logfmt on stderr:
 *   ts=2026-11-25T12:00:00.123Z level=info msg="..." key=value ...
 * All functions preserve errno.  fatal() appends strerror(errno) and exits 1;
 * fatalx() does not append it.
 */
#ifndef TASKERD_LOG_H
#define TASKERD_LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_DEBUG, LOG_LVL_INFO, LOG_LVL_WARN, LOG_LVL_ERROR };

/* Also decides where lines go: the journal, with each key=value as a
 * field, when stderr is the journal's stream; logfmt on stderr otherwise. */
void	log_init(const char *procname, enum log_level);
int	log_stderr_is_journal(void);
void	log_setlevel(enum log_level);
/* The level in force, as log_parse_level reads it. */
const char *log_level_name(void);
int	log_parse_level(const char *, enum log_level *);

/* The message is a printf format; by convention it is "text key=value ...":
 * everything up to the first " key=" becomes msg="...", the rest is kept. */
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

/* s as a field's value: bare if it is one plain word, else "quoted" with
 * its quotes and backslashes escaped ("-" for NULL).  For any value that
 * comes from outside: log_warnx("... error=%s", log_quote(err)).  Valid
 * until four more calls. */
const char *log_quote(const char *);

#endif
