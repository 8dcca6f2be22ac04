/*
 * log.c - logfmt lines on stderr.
 *
 * Callers write "text key=value ..."; the text before the first " key=" is
 * quoted into msg="...", so every line is machine-readable while call sites
 * stay short.  Every function preserves errno so it can sit in error paths.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "autoconf.h"
#include "log.h"

#ifdef HAVE_SYSTEMD
#define SD_JOURNAL_SUPPRESS_LOCATION
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#endif

static const char	*log_procname = "taskerd";
static enum log_level	 log_level = LOG_LVL_INFO;
static int		 log_journal;	/* stderr is the journal's stream */

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void
log_init(const char *procname, enum log_level level)
{
	log_procname = procname;
	log_level = level;
	log_journal = log_stderr_is_journal();
}

void
log_setlevel(enum log_level level)
{
	log_level = level;
}

const char *
log_level_name(void)
{
	return level_names[log_level];
}

int
log_parse_level(const char *s, enum log_level *out)
{
	size_t	i;

	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcmp(s, level_names[i]) == 0) {
			*out = (enum log_level)i;
			return 0;
		}
	}
	if (strcmp(s, "warning") == 0) {
		*out = LOG_LVL_WARN;
		return 0;
	}
	return -1;
}

/* Offset of the first " key=" in s (key: [a-z0-9_.]+), or strlen(s). */
static size_t
split_at_fields(const char *s)
{
	const char	*p, *k;

	for (p = s; (p = strchr(p, ' ')) != NULL; p++) {
		k = p + 1;
		while (*k != '\0' && (islower((unsigned char)*k) ||
		    isdigit((unsigned char)*k) || *k == '_' || *k == '.'))
			k++;
		if (k > p + 1 && *k == '=')
			return (size_t)(p - s);
	}
	return strlen(s);
}

/*
 * A value as a logfmt field wants it: bare when it is a plain word, else in
 * double quotes with '"' and '\\' escaped and control characters as spaces.
 * Values come from outside (libpq errors quote names, handlers choose their
 * error codes, paths hold spaces) and one stray quote would make the rest
 * of the line unreadable to a log parser.  The answer lives in one of a few
 * rotating buffers, so a call may quote several values; a value too long
 * for them is cut, its closing quote kept.
 */
const char *
log_quote(const char *s)
{
	static __thread char	 ring[4][1024];
	static __thread unsigned next;
	char			*out;
	const char		*p;
	size_t			 o = 0;

	if (s == NULL)
		return "-";
	for (p = s; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == '"' || *p == '\\' ||
		    *p == '=' || *p == 0x7f)
			break;
	if (*p == '\0' && p > s)
		return s;
	out = ring[next++ % 4];
	out[o++] = '"';
	for (p = s; *p != '\0' && o + 3 < sizeof(ring[0]); p++) {
		if (*p == '"' || *p == '\\')
			out[o++] = '\\';
		out[o++] = (unsigned char)*p < 0x20 || *p == 0x7f ? ' ' : *p;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

/*
 * Under systemd, stderr is a stream to the journal and JOURNAL_STREAM names
 * it ("DEV:INODE"); then each event is sent as a journal entry whose
 * key=value pairs become fields (TASK_ID=, STEP=, ...), so `journalctl
 * TASK_ID=42` finds a task's whole story.
 */
#ifdef HAVE_SYSTEMD
int
log_stderr_is_journal(void)
{
	const char		*js = getenv("JOURNAL_STREAM");
	struct stat		 st;
	unsigned long long	 dev, ino;

	if (js == NULL || sscanf(js, "%llu:%llu", &dev, &ino) != 2 ||
	    fstat(STDERR_FILENO, &st) == -1)
		return 0;
	return (unsigned long long)st.st_dev == dev &&
	    (unsigned long long)st.st_ino == ino;
}

/* fields: "key=value key2=\"quoted value\" ..." as log_emit keeps them. */
static void
log_journal_send(enum log_level level, const char *msg, const char *fields)
{
	static const int	 prio[] = { 7, 6, 4, 3 };
	struct iovec		 iov[34];
	char			 message[4200], buf[34][512], field[512];
	const char		*p = fields, *k, *v;
	size_t			 n = 0, kl, i, j;

	/* buf[0] stays unused: the message has its own, larger buffer. */
	snprintf(message, sizeof(message), "MESSAGE=%s", msg);
	n++;
	snprintf(buf[n], sizeof(buf[n]), "PRIORITY=%d", prio[level]);
	n++;
	snprintf(buf[n], sizeof(buf[n]), "SYSLOG_IDENTIFIER=%s",
	    log_procname);
	n++;
	while (*p != '\0' && n < sizeof(buf) / sizeof(buf[0])) {
		while (*p == ' ')
			p++;
		k = p;
		while (*p != '\0' && *p != '=' && *p != ' ')
			p++;
		if (*p != '=')
			break;
		kl = (size_t)(p - k);
		p++;
		j = 0;
		for (i = 0; i < kl && j < 60; i++)
			buf[n][j++] = k[i] == '.' ? '_' :
			    (char)toupper((unsigned char)k[i]);
		buf[n][j++] = '=';
		if (*p == '"') {
			for (v = p + 1; *v != '\0' && *v != '"'; v++) {
				if (*v == '\\' && v[1] != '\0')
					v++;
				if (j < sizeof(buf[n]) - 1)
					buf[n][j++] = *v;
			}
			p = *v == '"' ? v + 1 : v;
		} else {
			for (v = p; *v != '\0' && *v != ' '; v++)
				if (j < sizeof(buf[n]) - 1)
					buf[n][j++] = *v;
			p = v;
		}
		buf[n][j] = '\0';
		/* A field named as one taskerd sets would be a second of it,
		 * and journalctl shows one: a "message" goes into MESSAGE
		 * ("libevent: accept: Too many open files"), the others get
		 * a prefix. */
		if (strncmp(buf[n], "MESSAGE=", 8) == 0) {
			i = strlen(message);
			snprintf(message + i, sizeof(message) - i, ": %s",
			    buf[n] + 8);
			continue;
		}
		if (strncmp(buf[n], "PRIORITY=", 9) == 0 ||
		    strncmp(buf[n], "SYSLOG_IDENTIFIER=", 18) == 0) {
			snprintf(field, sizeof(field), "TASKERD_%s", buf[n]);
			memcpy(buf[n], field, sizeof(buf[n]));
		}
		n++;
	}
	for (j = 0; j < n; j++) {
		iov[j].iov_base = j == 0 ? message : buf[j];
		iov[j].iov_len = strlen(iov[j].iov_base);
	}
	sd_journal_sendv(iov, (int)n);
}
#else
int
log_stderr_is_journal(void)
{
	return 0;
}
#endif

static void
log_emit(enum log_level level, const char *suffix, const char *fmt,
    va_list ap)
{
	char		 text[4096], line[4600], ts[32];
	struct timeval	 tv;
	struct tm	 tm;
	size_t		 cut, i, o;
	int		 n;

	if (level < log_level)
		return;
	vsnprintf(text, sizeof(text), fmt, ap);
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

	cut = split_at_fields(text);
#ifdef HAVE_SYSTEMD
	if (log_journal) {
		char msg[4096];

		snprintf(msg, sizeof(msg), "%.*s%s%s", (int)cut, text,
		    suffix ? ": " : "", suffix ? suffix : "");
		log_journal_send(level, msg, text + cut);
		return;
	}
#endif
	n = snprintf(line, sizeof(line), "ts=%s.%03ldZ level=%s proc=%s:%ld "
	    "msg=\"", ts, (long)(tv.tv_usec / 1000),
	    level_names[level], log_procname, (long)getpid());
	o = n > 0 ? (size_t)n : 0;
	/* One event, one line: control characters (a libpq message's
	 * newlines and tabs, say) become spaces everywhere in the line. */
	for (i = 0; text[i] != '\0'; i++)
		if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
			text[i] = ' ';
	for (i = 0; i < cut && o + 3 < sizeof(line); i++) {
		if (text[i] == '"' || text[i] == '\\')
			line[o++] = '\\';
		line[o++] = text[i];
	}
	if (suffix != NULL && o < sizeof(line))
		o += (size_t)snprintf(line + o, sizeof(line) - o, ": %s",
		    suffix);
	if (o >= sizeof(line) - 1)
		o = sizeof(line) - 2;
	if (o + 1 < sizeof(line))
		line[o++] = '"';
	snprintf(line + o, sizeof(line) - o, "%s\n", text + cut);
	if (strlen(line) == sizeof(line) - 1)
		line[sizeof(line) - 2] = '\n';	/* truncated: still one line */
	fputs(line, stderr);
	fflush(stderr);
}

#define LOG_BODY(level, suffix) do {		\
	int	saved = errno;			\
	va_list	ap;				\
	va_start(ap, fmt);			\
	log_emit(level, suffix, fmt, ap);	\
	va_end(ap);				\
	errno = saved;				\
} while (0)

void
log_debug(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_DEBUG, NULL);
}

void
log_info(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_INFO, NULL);
}

void
log_warnx(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_WARN, NULL);
}

void
log_warn(const char *fmt, ...)
{
	const char *e = strerror(errno);

	LOG_BODY(LOG_LVL_WARN, e);
}

void
fatal(const char *fmt, ...)
{
	const char *e = strerror(errno);

	LOG_BODY(LOG_LVL_ERROR, e);
	exit(1);
}

void
fatalx(const char *fmt, ...)
{
	LOG_BODY(LOG_LVL_ERROR, NULL);
	exit(1);
}
