/*
 * handler_exec.c - a step run by a program, so handlers can be written in
 * any language.
 *
 * handler_config: `command` (the argv list; a name without a slash is
 * looked up in PATH) and `env` (a map added to the environment).  The
 * program gets the step input - {"context", "steps", "attempt"} - as JSON
 * on stdin, and the step's identity in TASKERD_TASK_ID, TASKERD_STEP_NAME,
 * TASKERD_ATTEMPT, TASKERD_IDEMPOTENCY_KEY and TASKERD_CORRELATION_ID.
 *
 *   exit 0            success; stdout, if not blank, is JSON: the results
 *   exit 75           retryable failure (EX_TEMPFAIL)
 *   any other exit    permanent failure
 *   killed by signal  retryable, like a worker that dies
 *
 * A failure's message is the end of what the program wrote to stderr.
 *
 * The program leads its own process group, so that all of it (a shell
 * script's children too) can be stopped at once: when it exits, whatever
 * it left in the group is killed; when the supervisor stops this worker at
 * the step's deadline (SIGTERM), or the worker leaves any other way it
 * chooses (the supervisor went away, an error), the group is killed first;
 * and if the worker is killed outright, PR_SET_PDEATHSIG takes the program
 * with it (and the supervisor, a subreaper too, kills what the program
 * started: pool.c).  What the program moves out of its group (setsid, a
 * shell's job control) is found too: the worker is a child subreaper, so
 * such strays become its children when their parents die, and at each of
 * those moments every child the worker has is killed and reaped.
 */
#include <sys/types.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "handler_config.h"
#include "handler.h"
#include "jsontext.h"
#include "log.h"
#include "utf8.h"
#include "xmalloc.h"

#define EXEC_TEMPFAIL		75	/* sysexits.h EX_TEMPFAIL */
#define EXEC_STDERR_KEEP	1024	/* bytes of stderr a message keeps */
#define EXEC_POLL_MS		100	/* look for an exit while pipes stay open */

extern char	**environ;

static int	exec_init(void);
static void	exec_run(const struct proto_run_step *,
		    struct proto_step_outcome *);

const struct handler handler_exec = {
	.name = "exec",
	.init = exec_init,
	.run = exec_run,
};

/* The running program's process group, for the SIGTERM handler. */
static volatile sig_atomic_t	exec_pgid;
/* Where the kernel lists the worker's children, by thread: programs are
 * children of the thread that runs the step and forks them, and strays,
 * reparented, of the main thread (today the two are one thread, and so
 * are the lists).  Made before they are needed, so the signal handler
 * only reads them. */
static char			exec_children[2][48];

/* What the program wrote; stderr keeps only its last EXEC_STDERR_KEEP. */
struct exec_io {
	char	*out;
	size_t	 outlen, outcap, outmax;
	int	 out_over;		/* stdout passed outmax */
	char	 err[EXEC_STDERR_KEEP];
	size_t	 errlen;
	int	 err_cut;		/* the start of stderr was dropped */
};

/* SIGKILL each process a children file lists, and its group if it leads
 * one; how many there were. */
static int
exec_kill_listed(const char *path)
{
	char		buf[4096], *p;
	pid_t		pid;
	ssize_t		n;
	int		fd, killed = 0;

	if (path[0] == '\0' || (fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	for (p = buf; *p != '\0';) {
		for (pid = 0; *p >= '0' && *p <= '9'; p++)
			pid = pid * 10 + (*p - '0');
		/* Only whole numbers: a list longer than buf is cut
		 * anywhere, and "1" of "1234" must not become kill(-1).
		 * The rest is read in the next round. */
		if (*p != ' ' && *p != '\n')
			break;
		if (pid > 1) {
			if (getpgid(pid) == pid)
				kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			killed++;
		}
		while (*p != '\0' && (*p < '0' || *p > '9'))
			p++;
	}
	return killed;
}

/*
 * Kill and reap every child of the worker, and their groups: a program's
 * strays, reparented here.  A worker starts no process but its programs,
 * so between steps any child is one.  Killing a stray hands its own
 * children to us in turn: rounds until none is left, for at most half a
 * second (a process stuck in the kernel is left to the next sweep).
 * Only async-signal-safe calls: the SIGTERM handler sweeps too.
 */
static void
exec_kill_strays(void)
{
	struct timespec	pause = { 0, 10 * 1000 * 1000 };
	int		round, status;

	for (round = 0; round < 50; round++) {
		/* Any thread may reap any thread's children. */
		while (waitpid(-1, &status, WNOHANG) > 0)
			;
		if (exec_kill_listed(exec_children[0]) +
		    exec_kill_listed(exec_children[1]) == 0)
			return;		/* no child left */
		nanosleep(&pause, NULL);
	}
}

/*
 * The supervisor stops a worker whose step ran past its deadline with
 * SIGTERM: stop the program's whole group and its strays first, then die
 * of the signal as before.  Only async-signal-safe calls.
 */
static void
exec_sigterm(int sig)
{
	handler_exec_abort();
	signal(sig, SIG_DFL);
	raise(sig);
}

void
handler_exec_abort(void)
{
	pid_t	pgid = (pid_t)exec_pgid;

	if (pgid > 0)
		kill(-pgid, SIGKILL);
	exec_kill_strays();
}

static int
exec_init(void)
{
	struct sigaction	sa;

	/* Orphans of a program's processes come to us, not to init. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) == -1)
		log_warn("exec handler: PR_SET_CHILD_SUBREAPER: what a program "
		    "moves out of its group may outlive it");
	snprintf(exec_children[0], sizeof(exec_children[0]),
	    "/proc/self/task/%d/children", (int)getpid());
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = exec_sigterm;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGTERM, &sa, NULL) == -1) {
		log_warn("exec handler: sigaction");
		return -1;
	}
	/* fatal() leaves through exit(): the program goes too. */
	if (atexit(handler_exec_abort) != 0)
		return -1;
	return 0;
}

static void
exec_env_add(char ***envp, size_t *n, const char *name, const char *value)
{
	char	*s;

	xasprintf(&s, "%s=%s", name, value);
	*envp = xreallocarray(*envp, *n + 2, sizeof(**envp));
	(*envp)[(*n)++] = s;
	(*envp)[*n] = NULL;
}

/* The worker's environment without taskerd's own variables and those the
 * config sets, then the config's, then the step's identity. */
static char **
exec_env(const json_t *env, const struct proto_run_step *run)
{
	char		**envp = NULL, buf[32];
	const char	 *key, *eq;
	json_t		 *v;
	size_t		  n = 0, i;

	envp = xcalloc(1, sizeof(*envp));
	for (i = 0; environ[i] != NULL; i++) {
		if ((eq = strchr(environ[i], '=')) == NULL ||
		    strncmp(environ[i], "TASKERD_", 8) == 0)
			continue;
		if (env != NULL) {
			json_object_foreach((json_t *)env, key, v) {
				if (strlen(key) == (size_t)(eq - environ[i]) &&
				    strncmp(key, environ[i], strlen(key)) == 0)
					break;
			}
			if (key != NULL)
				continue;
		}
		envp = xreallocarray(envp, n + 2, sizeof(*envp));
		envp[n++] = xstrdup(environ[i]);
		envp[n] = NULL;
	}
	if (env != NULL) {
		json_object_foreach((json_t *)env, key, v)
			exec_env_add(&envp, &n, key, json_string_value(v));
	}
	snprintf(buf, sizeof(buf), "%" PRId64, run->task_id);
	exec_env_add(&envp, &n, "TASKERD_TASK_ID", buf);
	exec_env_add(&envp, &n, "TASKERD_STEP_NAME", run->step_name);
	snprintf(buf, sizeof(buf), "%u", run->attempt);
	exec_env_add(&envp, &n, "TASKERD_ATTEMPT", buf);
	exec_env_add(&envp, &n, "TASKERD_IDEMPOTENCY_KEY",
	    run->idempotency_key);
	exec_env_add(&envp, &n, "TASKERD_CORRELATION_ID", run->correlation_id);
	return envp;
}

static void
exec_strv_free(char **v)
{
	size_t	i;

	if (v == NULL)
		return;
	for (i = 0; v[i] != NULL; i++)
		free(v[i]);
	free(v);
}

/* The config, checked again here (the supervisor checked it at load, but
 * a worker trusts nothing it is sent); its argv. */
static char **
exec_argv(const json_t *cfg, struct proto_step_outcome *o)
{
	const json_t	*cmd;
	char		**argv, why[256];
	size_t		  i;

	if (exec_config_check((json_t *)cfg, NULL, why, sizeof(why)) == -1) {
		outcome_fail(o, OUTCOME_PERMANENT, "bad_config", "%s", why);
		return NULL;
	}
	cmd = json_object_get(cfg, "command");
	argv = xcalloc(json_array_size(cmd) + 1, sizeof(*argv));
	for (i = 0; i < json_array_size(cmd); i++)
		argv[i] = xstrdup(json_string_value(json_array_get(cmd, i)));
	return argv;
}

/*
 * In the child, between fork and exec: only async-signal-safe calls (the
 * worker has threads).  On failure errno goes up the status pipe.
 */
static void __attribute__((noreturn))
exec_child(int in, int out, int err, int status, pid_t parent,
    const char *path, char **argv, char **envp)
{
	sigset_t	all;
	struct rlimit	rl;
	int		e, fd, maxfd;

	setpgid(0, 0);
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent)
		_exit(127);	/* the worker is already gone */
	signal(SIGPIPE, SIG_DFL);	/* the worker ignores it */
	signal(SIGTERM, SIG_DFL);
	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	if (dup2(in, 0) == -1 || dup2(out, 1) == -1 || dup2(err, 2) == -1)
		goto fail;
	/* Nothing of the worker's (curl's sockets) reaches the program; the
	 * status pipe stays open until the exec succeeds. */
	if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) == -1) {
		/* (Before Linux 5.11: every fd the limit allows.) */
		maxfd = getrlimit(RLIMIT_NOFILE, &rl) == 0 &&
		    rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < INT_MAX ?
		    (int)rl.rlim_cur : 65536;
		for (fd = 3; fd < maxfd; fd++) {
			if (fd != status)
				close(fd);
		}
	}
	execve(path, argv, envp);
fail:
	e = errno;
	(void)!write(status, &e, sizeof(e));
	_exit(127);
}

static void
exec_read_out(int fd, struct exec_io *io, int *open_)
{
	char	buf[65536];
	ssize_t	n;
	size_t	take;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		take = (size_t)n;
		if (io->outlen + take > io->outmax) {
			io->out_over = 1;
			take = io->outmax - io->outlen;
		}
		if (io->outlen + take > io->outcap) {
			io->outcap = io->outcap == 0 ? 65536 : io->outcap * 2;
			while (io->outcap < io->outlen + take)
				io->outcap *= 2;
			io->out = xreallocarray(io->out, io->outcap, 1);
		}
		memcpy(io->out + io->outlen, buf, take);
		io->outlen += take;
	}
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
		*open_ = 0;
}

static void
exec_read_err(int fd, struct exec_io *io, int *open_)
{
	char	buf[4096];
	ssize_t	n;
	size_t	k, drop;

	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		k = (size_t)n;
		if (k > sizeof(io->err)) {
			memcpy(io->err, buf + k - sizeof(io->err),
			    sizeof(io->err));
			io->err_cut = 1;
			io->errlen = sizeof(io->err);
			continue;
		}
		if (io->errlen + k > sizeof(io->err)) {
			drop = io->errlen + k - sizeof(io->err);
			memmove(io->err, io->err + drop, io->errlen - drop);
			io->errlen -= drop;
			io->err_cut = 1;
		}
		memcpy(io->err + io->errlen, buf, k);
		io->errlen += k;
	}
	if (n == 0 || (n == -1 && errno != EAGAIN && errno != EINTR))
		*open_ = 0;
}

/* Whether the program has exited, leaving it unreaped: while its zombie
 * stands, its pid (the group's id) cannot be reused. */
static int
exec_exited(pid_t pid, int block)
{
	siginfo_t	info;

	memset(&info, 0, sizeof(info));
	while (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT |
	    (block ? 0 : WNOHANG)) == -1) {
		if (errno == ECHILD)
			return 1;	/* see exec_talk's waitpid */
		if (errno != EINTR)
			fatal("waitid");
	}
	return info.si_pid == pid;
}

/*
 * Feed the input, gather stdout and stderr until both close, and reap the
 * program.  A program that exits while something it started still holds
 * its pipes is noticed within EXEC_POLL_MS.  Whatever is left in its group
 * is killed.  Closes in; returns the wait status.
 */
static int
exec_talk(pid_t pid, int in, int out, int err, const char *input,
    size_t inlen, struct exec_io *io)
{
	struct pollfd	pfd[3];
	size_t		done = 0;
	ssize_t		n;
	int		out_open = 1, err_open = 1, status = 0;

	if (inlen == 0) {
		close(in);
		in = -1;
	}
	while (out_open || err_open || in != -1) {
		pfd[0].fd = in;
		pfd[0].events = POLLOUT;
		pfd[1].fd = out_open ? out : -1;
		pfd[1].events = POLLIN;
		pfd[2].fd = err_open ? err : -1;
		pfd[2].events = POLLIN;
		if (poll(pfd, 3, EXEC_POLL_MS) == -1 && errno != EINTR)
			fatal("poll");
		if (in != -1 && pfd[0].revents != 0) {
			n = write(in, input + done, inlen - done);
			if (n > 0)
				done += (size_t)n;
			/* EPIPE: the program did not want all of it. */
			if ((n == -1 && errno != EAGAIN && errno != EINTR) ||
			    done == inlen) {
				close(in);
				in = -1;
			}
		}
		if (out_open && pfd[1].revents != 0)
			exec_read_out(out, io, &out_open);
		if (err_open && pfd[2].revents != 0)
			exec_read_err(err, io, &err_open);
		if (io->out_over)
			kill(-pid, SIGKILL);
		if (exec_exited(pid, 0)) {
			/* What it left behind must not keep the step open:
			 * take what is in the pipes now. */
			exec_read_out(out, io, &out_open);
			exec_read_err(err, io, &err_open);
			break;
		}
	}
	if (in != -1)
		close(in);
	(void)exec_exited(pid, 1);
	kill(-pid, SIGKILL);
	exec_pgid = 0;
	while (waitpid(pid, &status, 0) == -1) {
		/* A sweep on the worker's other thread, the watcher (its
		 * SIGTERM handler, or its way out), took it: killed, and the
		 * worker is on its way out. */
		if (errno == ECHILD) {
			status = SIGKILL;
			break;
		}
		if (errno != EINTR)
			fatal("waitpid");
	}
	exec_kill_strays();
	return status;
}

/* The end of stderr as a message: valid UTF-8, trailing blanks gone. */
static char *
exec_err_text(const struct exec_io *io)
{
	const char	*s = io->err;
	size_t		 len = io->errlen, outlen;
	char		*text;

	/* Start after the first newline when the start was cut off, so the
	 * message does not begin mid-line. */
	if (io->err_cut) {
		const char *nl = memchr(s, '\n', len);

		if (nl != NULL && (size_t)(nl - s) + 1 < len) {
			len -= (size_t)(nl - s) + 1;
			s = nl + 1;
		}
	}
	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' ' ||
	    s[len - 1] == '\r' || s[len - 1] == '\t'))
		len--;
	if (len == 0)
		return NULL;
	text = utf8_repair(s, len, &outlen);
	/* PostgreSQL text holds no NUL. */
	for (len = 0; len < outlen; len++) {
		if (text[len] == '\0')
			text[len] = '?';
	}
	return text;
}

/* Turn the program's exit into the outcome. */
static void
exec_outcome(const char *prog, int status, struct exec_io *io,
    struct proto_step_outcome *o)
{
	json_t		*results;
	json_error_t	 jerr;
	char		*why;
	size_t		 i, bom;
	int		 code;

	why = exec_err_text(io);
	if (WIFSIGNALED(status) && !io->out_over) {
		outcome_fail(o, OUTCOME_RETRYABLE, "exec_signal", "%s was "
		    "killed by signal %d (%s)%s%s", prog, WTERMSIG(status),
		    strsignal(WTERMSIG(status)), why != NULL ? ": " : "",
		    why != NULL ? why : "");
	} else if (io->out_over) {
		outcome_fail(o, OUTCOME_PERMANENT, "results_too_large",
		    "%s wrote more than %zu bytes to stdout", prog,
		    io->outmax);
	} else if ((code = WEXITSTATUS(status)) != 0) {
		outcome_fail(o, code == EXEC_TEMPFAIL ? OUTCOME_RETRYABLE :
		    OUTCOME_PERMANENT, code == EXEC_TEMPFAIL ? "exec_tempfail" :
		    "exec_failed", "%s exited with status %d%s%s", prog, code,
		    why != NULL ? ": " : "", why != NULL ? why : "");
	} else {
		/* (A byte order mark first, as some runtimes write, is no
		 * part of the JSON: as for an http answer.) */
		bom = io->outlen >= 3 && memcmp(io->out, "\xef\xbb\xbf", 3) == 0 ?
		    3 : 0;
		for (i = bom; i < io->outlen; i++) {
			if (io->out[i] != ' ' && io->out[i] != '\t' &&
			    io->out[i] != '\r' && io->out[i] != '\n')
				break;
		}
		if (i == io->outlen)
			outcome_success(o, json_object());
		else if ((results = json_loadb(io->out + bom, io->outlen - bom,
		    JSON_DECODE_ANY, &jerr)) == NULL)
			outcome_fail(o, OUTCOME_PERMANENT, "bad_output",
			    "%s exited 0 but its stdout is not JSON: %s "
			    "(line %d%s)%s%s", prog, jerr.text, jerr.line,
			    json_error_code(&jerr) ==
			    json_error_numeric_overflow ? "; write integers "
			    "beyond 64 bits as strings" : "",
			    why != NULL ? ": " : "", why != NULL ? why : "");
		else if (proto_json_depth(results) > PROTO_MAX_JSON_DEPTH) {
			json_decref(results);
			outcome_fail(o, OUTCOME_PERMANENT, "bad_output",
			    "%s exited 0 but its JSON is nested deeper than "
			    "%d levels", prog, PROTO_MAX_JSON_DEPTH);
		} else
			outcome_success(o, results);
	}
	free(why);
}

/* An exec that may work on the next attempt: the binary is being
 * replaced by a deployment, or the machine is short of memory or files.
 * A program that is not there, or not runnable, stays so. */
static int
exec_errno_transient(int e)
{
	return e == ETXTBSY || e == ENOMEM || e == EAGAIN || e == EMFILE ||
	    e == ENFILE;
}

/* The interpreter a script's "#!" line names (a new string), or NULL:
 * execve says ENOENT for a missing one as for a missing script.  It is
 * the line's first word, as the kernel reads it (an argument may follow
 * a blank). */
static char *
exec_interpreter(const char *path)
{
	char	 buf[256], *p;
	ssize_t	 n;
	int	 fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return NULL;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 3 || buf[0] != '#' || buf[1] != '!')
		return NULL;
	buf[n] = '\0';
	p = buf + 2 + strspn(buf + 2, " \t");
	p[strcspn(p, " \t\n")] = '\0';
	return xstrdup(p);
}

static void
exec_run(const struct proto_run_step *run, struct proto_step_outcome *o)
{
	struct exec_io	 io;
	json_t		 *env;
	char		**argv, **envp = NULL, *path = NULL, *input = NULL;
	char		 *interp;
	int		  p_in[2] = { -1, -1 }, p_out[2] = { -1, -1 };
	int		  p_err[2] = { -1, -1 }, p_st[2] = { -1, -1 };
	int		  e = 0, status, i;
	ssize_t		  n;
	size_t		  len;
	pid_t		  pid, parent = getpid();

	if ((argv = exec_argv(run->config, o)) == NULL)
		return;
	memset(&io, 0, sizeof(io));
	io.outmax = handler_max_output();
	env = json_object_get(run->config, "env");
	if ((path = exec_find_program(argv[0], env)) == NULL) {
		outcome_fail(o, OUTCOME_PERMANENT, "exec_failed", "cannot run "
		    "%s: not found in %s", argv[0], exec_path_name(env));
		goto done;
	}
	if ((input = jsontext(run->input, 0)) == NULL)
		fatalx("exec: cannot encode the step input");
	envp = exec_env(env, run);
	if (exec_children[1][0] == '\0')	/* steps run on one thread */
		snprintf(exec_children[1], sizeof(exec_children[1]),
		    "/proc/self/task/%d/children", (int)gettid());

	if (pipe2(p_in, O_CLOEXEC) == -1 || pipe2(p_out, O_CLOEXEC) == -1 ||
	    pipe2(p_err, O_CLOEXEC) == -1 || pipe2(p_st, O_CLOEXEC) == -1) {
		outcome_fail(o, OUTCOME_RETRYABLE, "exec_failed", "pipe: %s",
		    strerror(errno));
		goto done;
	}
	if ((pid = fork()) == -1) {
		outcome_fail(o, OUTCOME_RETRYABLE, "exec_failed", "fork: %s",
		    strerror(errno));
		goto done;
	}
	if (pid == 0)
		exec_child(p_in[0], p_out[1], p_err[1], p_st[1], parent, path,
		    argv, envp);
	/* Both sides set the group, so it exists whichever runs first. */
	setpgid(pid, pid);
	exec_pgid = pid;
	close(p_in[0]);
	close(p_out[1]);
	close(p_err[1]);
	close(p_st[1]);
	p_in[0] = p_out[1] = p_err[1] = p_st[1] = -1;

	/* The status pipe closes at exec; an errno on it means no exec. */
	while ((n = read(p_st[0], &e, sizeof(e))) == -1 && errno == EINTR)
		;
	(void)fcntl(p_in[1], F_SETFL, O_NONBLOCK);
	(void)fcntl(p_out[0], F_SETFL, O_NONBLOCK);
	(void)fcntl(p_err[0], F_SETFL, O_NONBLOCK);
	status = exec_talk(pid, p_in[1], p_out[0], p_err[0], input,
	    n == (ssize_t)sizeof(e) ? 0 : strlen(input), &io);
	p_in[1] = -1;	/* exec_talk closed it */
	if (n == (ssize_t)sizeof(e) && e == ENOENT &&
	    (interp = exec_interpreter(path)) != NULL) {
		/* (The kernel reads the line to its \n: saved with Windows
		 * line ends, "/bin/sh\r", which no screen shows.) */
		if ((len = strlen(interp)) > 0 && interp[len - 1] == '\r') {
			interp[len - 1] = '\0';
			outcome_fail(o, OUTCOME_PERMANENT, "exec_failed",
			    "cannot run %s: its #! line ends in a carriage "
			    "return (Windows line ends), and no interpreter "
			    "\"%s\\r\" is there", path, interp);
		} else
			outcome_fail(o, OUTCOME_PERMANENT, "exec_failed",
			    "cannot run %s: its interpreter %s is not there",
			    path, interp);
		free(interp);
	} else if (n == (ssize_t)sizeof(e))
		outcome_fail(o, exec_errno_transient(e) ? OUTCOME_RETRYABLE :
		    OUTCOME_PERMANENT, "exec_failed", "cannot run %s: %s",
		    path, strerror(e));
	else
		exec_outcome(argv[0], status, &io, o);
done:
	for (i = 0; i < 2; i++) {
		if (p_in[i] != -1)
			close(p_in[i]);
		if (p_out[i] != -1)
			close(p_out[i]);
		if (p_err[i] != -1)
			close(p_err[i]);
		if (p_st[i] != -1)
			close(p_st[i]);
	}
	free(io.out);
	free(input);
	free(path);
	exec_strv_free(argv);
	exec_strv_free(envp);
}
