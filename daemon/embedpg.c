/*
 * embedpg.c - a private PostgreSQL for taskerd's default configuration.
 *
 * The cluster lives in state_dir/pg/data and listens on a Unix socket in
 * state_dir/pg only (no TCP).  PostgreSQL refuses to run as root, so when
 * taskerd runs as root the cluster belongs to an unprivileged user: the
 * owner of the cluster there already, else the `postgres` system user of
 * Debian's packages if there is one, else `nobody`.  The server is our
 * child: SIGCHLD tells us when it dies, and it is restarted with a delay
 * that grows while it keeps dying (and starts over once it has run a
 * while); taskerd's database connections reconnect by themselves
 * meanwhile.
 */
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "childenv.h"
#include "duration.h"
#include "embedpg.h"
#include "fdlimit.h"
#include "log.h"
#include "sdnotify.h"
#include "xmalloc.h"

#define EMBEDPG_PORT		"5432"	/* only names the socket file */
#define EMBEDPG_WAIT_S		60
#define EMBEDPG_STOP_FAST_MS	12000
#define EMBEDPG_STOP_IMMEDIATE_MS 3000
#define EMBEDPG_RESTART_MAX_MS	10000
/* A server that ran this long before dying is restarted at the first delay
 * again: its crashes are not a loop. */
#define EMBEDPG_STABLE_MS	10000

static struct {
	char		*bindir;
	char		*datadir;
	char		*sockdir;
	char		*dsn;
	pid_t		 pid;
	bool		 drop;		/* run as uid/gid below */
	uid_t		 uid;
	gid_t		 gid;
	int		 delay_ms;
	struct timespec	 started;	/* the running server's start */
	struct event	*restart;
	bool		 stopping;
	int		 lockfd;	/* state_dir/taskerd.lock, held */
	pid_t		 owner;		/* taskerd (not a child it forked) */
} pg;

/* Whether /usr/lib/postgresql/V/bin has an executable name. */
static bool
has_program(const char *v, const char *name)
{
	char	*path;
	bool	 ok;

	xasprintf(&path, "/usr/lib/postgresql/%s/bin/%s", v, name);
	ok = access(path, X_OK) == 0;
	free(path);
	return ok;
}

/*
 * The server's bin directory: for a cluster there already, its own major
 * version's (a newer one installed beside it, as a Debian upgrade does,
 * cannot run it); for a new one, the newest with both initdb and postgres
 * (a client package alone installs a bin directory too).
 */
static char *
find_bindir(const char *datadir)
{
	DIR		*d;
	struct dirent	*e;
	FILE		*f;
	char		*path, v[16] = "", best[16] = "";
	long		 n, bestv = -1;

	xasprintf(&path, "%s/PG_VERSION", datadir);
	if ((f = fopen(path, "r")) != NULL) {
		if (fgets(v, sizeof(v), f) != NULL)
			v[strcspn(v, "\n")] = '\0';
		fclose(f);
		if (*v == '\0' || strspn(v, "0123456789.") != strlen(v))
			fatalx("embedded database: %s does not say a "
			    "PostgreSQL version", path);
		if (!has_program(v, "postgres"))
			fatalx("embedded database: the cluster in %s is "
			    "PostgreSQL %s, whose server is not installed "
			    "(/usr/lib/postgresql/%s/bin/postgres): install "
			    "postgresql-%s, or move the cluster to the installed "
			    "version with pg_upgrade", datadir, v, v, v);
		free(path);
		xasprintf(&path, "/usr/lib/postgresql/%s/bin", v);
		return path;
	}
	if (errno != ENOENT)
		fatal("embedded database: %s", path);
	free(path);
	if ((d = opendir("/usr/lib/postgresql")) == NULL)
		fatal("embedded database: /usr/lib/postgresql (is the "
		    "postgresql package installed?)");
	while ((e = readdir(d)) != NULL) {
		n = strtol(e->d_name, NULL, 10);
		if (n <= bestv || strlen(e->d_name) >= sizeof(best) ||
		    !has_program(e->d_name, "postgres") ||
		    !has_program(e->d_name, "initdb"))
			continue;
		snprintf(best, sizeof(best), "%s", e->d_name);
		bestv = n;
	}
	closedir(d);
	if (bestv == -1)
		fatalx("embedded database: no PostgreSQL server (postgres and "
		    "initdb) under /usr/lib/postgresql");
	xasprintf(&path, "/usr/lib/postgresql/%s/bin", best);
	return path;
}

/*
 * Who runs the server when taskerd runs as root (PostgreSQL will not run
 * as root): the owner of the cluster's directory when there is one - it
 * may be a service user's, and a root run must not take it away - else
 * Debian's postgres user, or nobody.  Returns whether the directory must
 * be given to that user.
 */
static bool
server_user(void)
{
	struct passwd	*pw;
	struct stat	 st;

	if (geteuid() != 0)
		return false;
	pg.drop = true;
	if (stat(pg.sockdir, &st) == 0 && st.st_uid != 0) {
		pg.uid = st.st_uid;
		pg.gid = (pw = getpwuid(st.st_uid)) != NULL ? pw->pw_gid :
		    st.st_gid;
		return false;
	}
	if ((pw = getpwnam("postgres")) == NULL &&
	    (pw = getpwnam("nobody")) == NULL)
		fatalx("embedded database: no unprivileged user");
	pg.uid = pw->pw_uid;
	pg.gid = pw->pw_gid;
	return true;
}

/* s as a connection string's value: quoted, with \ and ' escaped (a
 * state_dir may hold a space). */
static char *
dsn_quote(const char *s)
{
	char	*q, *p;

	q = p = xmalloc(strlen(s) * 2 + 3);
	*p++ = '\'';
	for (; *s != '\0'; s++) {
		if (*s == '\'' || *s == '\\')
			*p++ = '\\';
		*p++ = *s;
	}
	*p++ = '\'';
	*p = '\0';
	return q;
}

/* The log file a child of ours writes (initdb, the server), opened once
 * it is the server's user: opened as root, a link the server's user put
 * in its place would name a file of root's. */
static int
open_log(const char *path)
{
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
}

/*
 * Whether the server's user may enter dir and write in it (every directory
 * above it must let it through: a state_dir of root's, mode 0750, does
 * not).  Asked of a child that becomes that user.
 */
static bool
server_user_reaches(const char *dir)
{
	pid_t	pid;
	int	status;

	if (!pg.drop)
		return true;
	switch ((pid = fork())) {
	case -1:
		fatal("fork");
	case 0:
		if (setgroups(1, &pg.gid) == -1 || setgid(pg.gid) == -1 ||
		    setuid(pg.uid) == -1)
			_exit(2);
		_exit(access(dir, W_OK | X_OK) == 0 ? 0 : 1);
	default:
		break;
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			fatal("waitpid");
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* Run argv (as the cluster's owner) and wait; returns its exit status. */
static int
run(char *const argv[], const char *logfile)
{
	pid_t	pid;
	int	status, fd;

	switch ((pid = fork())) {
	case -1:
		fatal("fork");
	case 0:
		if (pg.drop && (setgroups(1, &pg.gid) == -1 ||
		    setgid(pg.gid) == -1 || setuid(pg.uid) == -1))
			_exit(126);
		if ((fd = open_log(logfile)) != -1) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		/* (A connection a thread was making may not be close-on-exec
		 * yet.) */
		close_range(3, ~0U, 0);
		fdlimit_restore();
		execv(argv[0], argv);
		_exit(127);
	default:
		break;
	}
	while (waitpid(pid, &status, 0) == -1)
		if (errno != EINTR)
			fatal("waitpid");
	return status;
}

static int
remove_entry(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
	return remove(path) == -1 && errno != ENOENT ? -1 : 0;
}

/*
 * Remove path and all it holds (nothing there is fine).  What an initdb
 * killed with its taskerd left may still be written to for a moment by
 * its orphaned server process (it ends at the end of its input): files
 * come and go under the walk, which is tried again for up to 5 s.
 */
static int
remove_tree(const char *path)
{
	int	i;

	for (i = 0; i < 50; i++) {
		if (access(path, F_OK) == -1)
			return 0;
		if (nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0)
			return 0;
		if (errno != ENOENT && errno != ENOTEMPTY && errno != EEXIST)
			return -1;
		usleep(100000);
	}
	return -1;
}

static void	wait_ready(void);
static void	stop_at_exit(void);

static void
mkdir_owned(const char *path, bool give)
{
	if (mkdir(path, 0700) == -1 && errno != EEXIST)
		fatal("embedded database: mkdir %s", path);
	if (give && chown(path, pg.uid, pg.gid) == -1)
		fatal("embedded database: chown %s", path);
}

static pid_t
spawn_server(void)
{
	/* jit=off: JIT compiles code at run time, which a unit with
	 * MemoryDenyWriteExecute= (a hardening drop-in) forbids, and short
	 * statements gain nothing from it. */
	char	*argv[] = { "postgres", "-D", NULL, "-p", EMBEDPG_PORT, "-c",
		    "listen_addresses=", "-c", "jit=off", "-k", NULL, NULL };
	char	*log, *postgres, **env;
	pid_t	 pid, parent = getpid();
	int	 fd;

	xasprintf(&postgres, "%s/postgres", pg.bindir);
	xasprintf(&log, "%s/postgresql.log", pg.sockdir);
	/* systemd's socket is taskerd's: a server built with systemd support
	 * would tell it READY=1 and STOPPING=1 as its own (childenv). */
	env = childenv(NULL, NULL);
	argv[2] = pg.datadir;
	argv[10] = pg.sockdir;
	switch ((pid = fork())) {
	case -1:
		fatal("fork");
	case 0:
		if (pg.drop && (setgroups(1, &pg.gid) == -1 ||
		    setgid(pg.gid) == -1 || setuid(pg.uid) == -1))
			_exit(126);
		/* Whatever ends taskerd (a failed start, kill -9) ends its
		 * server too, with a fast shutdown, instead of leaving it to
		 * hold the data directory.  (Set after the user switch,
		 * which clears it.) */
		if (prctl(PR_SET_PDEATHSIG, SIGINT) == -1 ||
		    getppid() != parent)
			_exit(125);
		if ((fd = open_log(log)) != -1) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		/* (A connection a thread was making may not be close-on-exec
		 * yet: the server would hold it open.) */
		close_range(3, ~0U, 0);
		/* Its own process group: a Ctrl-C meant for taskerd must not
		 * reach the server before taskerd has drained. */
		setpgid(0, 0);
		/* (Last: the log is opened under taskerd's limit.) */
		fdlimit_restore();
		execve(postgres, argv, env);
		_exit(127);
	default:
		break;
	}
	childenv_free(env);
	free(postgres);
	free(log);
	clock_gettime(CLOCK_MONOTONIC, &pg.started);
	log_info("embedded database started pid=%d datadir=%s", (int)pid,
	    log_quote(pg.datadir));
	return pid;
}

/* The server's lock files: postmaster.pid (LOCK_DATA) and its socket's
 * (LOCK_SOCKET). */
enum { LOCK_DATA, LOCK_SOCKET };

static char *
lock_file(int which)
{
	char	*path;

	if (which == LOCK_DATA)
		xasprintf(&path, "%s/postmaster.pid", pg.datadir);
	else
		xasprintf(&path, "%s/.s.PGSQL.%s.lock", pg.sockdir,
		    EMBEDPG_PORT);
	return path;
}

/* The pid a lock file names (its first line), or 0. */
static pid_t
lock_pid(int which)
{
	char	*path, line[32];
	FILE	*f;
	pid_t	 pid = 0;

	path = lock_file(which);
	if ((f = fopen(path, "r")) != NULL) {
		if (fgets(line, sizeof(line), f) != NULL)
			pid = (pid_t)strtol(line, NULL, 10);
		fclose(f);
	}
	free(path);
	return pid;
}

/* The pid in the data directory's postmaster.pid, or 0. */
static pid_t
server_pid(void)
{
	return lock_pid(LOCK_DATA);
}

/*
 * The lock files of a server that is gone, whose pid is some process that
 * is no server of ours: postmaster.pid and its socket's lock file, each
 * while it names pid.  PostgreSQL refuses to start while either names a
 * process it can signal.
 */
static void
remove_stale_locks(pid_t pid)
{
	char	*path;
	int	 which;

	for (which = LOCK_DATA; which <= LOCK_SOCKET; which++) {
		path = lock_file(which);
		if (lock_pid(which) == pid && unlink(path) == -1)
			log_warn("embedded database: unlink %s", path);
		free(path);
	}
}

/* The first len bytes of /proc/PID/NAME, NULs made spaces; "" if none. */
static void
proc_read(pid_t pid, const char *name, char *buf, size_t len)
{
	char	 path[64];
	size_t	 n = 0, i;
	FILE	*f;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	if ((f = fopen(path, "r")) != NULL) {
		n = fread(buf, 1, len - 1, f);
		fclose(f);
	}
	for (i = 0; i < n; i++)
		if (buf[i] == '\0')
			buf[i] = ' ';
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

/* The state letter of /proc/PID/stat and its ppid ("pid (comm) state
 * ppid ...": comm may hold spaces); state '?' if there is none. */
static char
proc_state(pid_t pid, pid_t *ppid)
{
	char	 buf[1024], *p, state = '?';
	int	 parent = 0;

	proc_read(pid, "stat", buf, sizeof(buf));
	if ((p = strrchr(buf, ')')) != NULL)
		sscanf(p + 1, " %c %d", &state, &parent);
	if (ppid != NULL)
		*ppid = parent;
	return state;
}

/* A process other than this one whose working directory is real (the
 * server's processes all run in the data directory); its pid, or 0. */
static pid_t
process_in(const char *real)
{
	char		 link[64], cwd[PATH_MAX], *end;
	DIR		*d;
	struct dirent	*e;
	ssize_t		 n;
	pid_t		 pid, found = 0;

	if ((d = opendir("/proc")) == NULL)
		return 0;
	while (found == 0 && (e = readdir(d)) != NULL) {
		pid = (pid_t)strtol(e->d_name, &end, 10);
		if (pid <= 0 || *end != '\0' || pid == getpid())
			continue;
		snprintf(link, sizeof(link), "/proc/%d/cwd", (int)pid);
		if ((n = readlink(link, cwd, sizeof(cwd) - 1)) <= 0)
			continue;
		cwd[n] = '\0';
		if (strcmp(cwd, real) == 0)
			found = pid;
	}
	closedir(d);
	return found;
}

/*
 * The pid in postmaster.pid is a zombie: a server that died (or was
 * stopped) and that the process which inherited it never reaped - a pid 1
 * that does not reap, in a container.  PostgreSQL takes it for a server
 * still running and refuses to start, every time.  Once none of the dead
 * server's processes runs in the data directory (they end when they see
 * it gone), its lock files are stale and removed.
 */
static void
zombie_server(pid_t pid)
{
	char	*real;
	pid_t	 left = 0;
	int	 i;

	if ((real = realpath(pg.datadir, NULL)) == NULL)
		return;
	for (i = 0; i < 100 && (left = process_in(real)) > 0; i++)
		usleep(100000);
	free(real);
	if (left > 0)
		fatalx("embedded database: the server left on %s (pid %d) is "
		    "dead, but its process %d still runs there",
		    pg.datadir, (int)pid, (int)left);
	log_warnx("embedded database: removing the lock files of a dead "
	    "server never reaped (a zombie: the process that inherited it "
	    "does not reap its children) pid=%d", (int)pid);
	remove_stale_locks(pid);
}

/*
 * A server already running on our data directory: one left by a taskerd
 * that is gone is stopped; one that a taskerd still supervises (another
 * one on the same state_dir) is a configuration error.  A stale
 * postmaster.pid whose pid is now a process elsewhere (its working
 * directory is not the data directory, as a server's and its children's
 * are) is removed, with the socket's lock file: PostgreSQL would refuse
 * to start while that process lives, if it is the server's user's (pids
 * are reused after a crash).
 */
static void
stray_server(void)
{
	char	 buf[1024], link[64], cwd[PATH_MAX], *p, *real;
	pid_t	 pid, ppid = 0;
	ssize_t	 n;
	int	 i;

	/* (The socket's lock file alone, if postmaster.pid went.) */
	if ((pid = server_pid()) <= 0)
		pid = lock_pid(LOCK_SOCKET);
	if (pid <= 0 || kill(pid, 0) == -1)
		return;		/* none, or a stale file postgres clears */
	if (proc_state(pid, &ppid) == 'Z') {
		zombie_server(pid);
		return;
	}
	proc_read(pid, "cmdline", buf, sizeof(buf));
	if ((p = strchr(buf, ' ')) == NULL || p - buf < 8 ||
	    strncmp(p - 8, "postgres", 8) != 0 ||
	    strstr(buf, pg.datadir) == NULL) {
		snprintf(link, sizeof(link), "/proc/%d/cwd", (int)pid);
		if ((n = readlink(link, cwd, sizeof(cwd) - 1)) <= 0)
			return;		/* (not ours to look at) */
		cwd[n] = '\0';
		if ((real = realpath(pg.datadir, NULL)) != NULL &&
		    strcmp(real, cwd) != 0) {
			log_warnx("embedded database: removing the stale "
			    "lock files of a server, whose pid is another "
			    "process now pid=%d", (int)pid);
			remove_stale_locks(pid);
		}
		free(real);
		return;
	}
	proc_read(ppid, "comm", buf, sizeof(buf));
	if (strcmp(buf, "taskerd") == 0)
		fatalx("embedded database: %s is in use by the server of "
		    "another taskerd (pid %d): is it using this state_dir?",
		    pg.datadir, (int)ppid);
	log_warnx("embedded database: stopping a server left running by an "
	    "earlier taskerd pid=%d", (int)pid);
	kill(pid, SIGINT);
	for (i = 0; i < 300 && kill(pid, 0) == 0; i++)
		usleep(100000);
	if (kill(pid, 0) == 0)
		fatalx("embedded database: the server left running (pid %d) "
		    "did not stop", (int)pid);
}

/*
 * Hold state_dir/taskerd.lock for as long as this taskerd runs, so that a
 * second one on the same state_dir stops at once with the first's pid.
 * Without it, two first starts at once both ran initdb into one cluster.
 * The lock goes with the process, however it ends; the descriptor is
 * closed on exec, so no child (a server left running) keeps it.
 */
static void
lock_state_dir(const char *state_dir)
{
	struct stat	 st;
	char		*path, buf[32];
	ssize_t		 n;

	xasprintf(&path, "%s/taskerd.lock", state_dir);
	pg.lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
	if (pg.lockfd == -1 && errno == EACCES)
		fatal("embedded database: open %s (another user's run left "
		    "it: give it to this one, or remove it while no taskerd "
		    "runs there)", path);
	if (pg.lockfd == -1)
		fatal("embedded database: open %s", path);
	/* A run as root (an operator's, by hand) leaves the lock to the
	 * state_dir's owner, the service's user, whose next start opens it
	 * for writing. */
	if (geteuid() == 0 && stat(state_dir, &st) == 0 &&
	    fchown(pg.lockfd, st.st_uid, st.st_gid) == -1)
		fatal("embedded database: chown %s", path);
	if (flock(pg.lockfd, LOCK_EX | LOCK_NB) == -1) {
		if (errno != EWOULDBLOCK)
			fatal("embedded database: lock %s", path);
		/* (Empty while the other has just taken the lock.) */
		n = pread(pg.lockfd, buf, sizeof(buf) - 1, 0);
		buf[n > 0 ? n : 0] = '\0';
		buf[strcspn(buf, "\n")] = '\0';
		fatalx("embedded database: state_dir %s is in use by another "
		    "taskerd%s%s%s", state_dir, buf[0] != '\0' ? " (pid " : "",
		    buf, buf[0] != '\0' ? ")" : "");
	}
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (ftruncate(pg.lockfd, 0) == -1 ||
	    pwrite(pg.lockfd, buf, (size_t)n, 0) != n)
		fatal("embedded database: write %s", path);
	free(path);
}

char *
embedpg_start(const char *state_dir)
{
	char		*initdb, *log, *versionfile, *aside, *dsn_host;
	int		 status;
	bool		 give;

	/* One made here is made for the server's user to enter, whatever
	 * the umask (077 would shut it out). */
	if (mkdir(state_dir, 0755) == 0)
		(void)chmod(state_dir, 0755);
	else if (errno != EEXIST)
		fatal("embedded database: mkdir %s", state_dir);
	lock_state_dir(state_dir);
	pg.owner = getpid();
	atexit(stop_at_exit);
	xasprintf(&pg.sockdir, "%s/pg", state_dir);
	xasprintf(&pg.datadir, "%s/pg/data", state_dir);
	/* The server's socket is a file there, whose path has a limit. */
	if (strlen(pg.sockdir) + sizeof("/.s.PGSQL." EMBEDPG_PORT) >
	    sizeof(((struct sockaddr_un *)0)->sun_path))
		fatalx("embedded database: state_dir %s is too long for the "
		    "server's socket in it (%zu bytes; at most %zu)", state_dir,
		    strlen(state_dir), sizeof(((struct sockaddr_un *)0)->
		    sun_path) - sizeof("/pg/.s.PGSQL." EMBEDPG_PORT));
	give = server_user();
	mkdir_owned(pg.sockdir, give);
	if (!server_user_reaches(pg.sockdir)) {
		struct passwd *pw = getpwuid(pg.uid);

		fatalx("embedded database: the server's user %s cannot reach "
		    "%s: every directory above it must let that user through "
		    "(state_dir mode 0755, say), or run taskerd as its own "
		    "user", pw != NULL ? pw->pw_name : "(unknown)", pg.sockdir);
	}
	pg.bindir = find_bindir(pg.datadir);
	xasprintf(&log, "%s/postgresql.log", pg.sockdir);

	/* A cluster is made aside and renamed into place once whole: a
	 * start stopped during initdb (systemctl restart, a power cut) must
	 * not leave a data directory that never starts.  (Unless the
	 * directory is there already, empty - a mount point, say: initdb
	 * fills it in place, as it always did.) */
	xasprintf(&versionfile, "%s/PG_VERSION", pg.datadir);
	if (access(versionfile, F_OK) == -1) {
		/* The locale is fixed: the caller's (a LANG an ssh client
		 * sent, not generated here) would fail initdb, or decide the
		 * cluster's collation by who started it first. */
		char *argv[] = { NULL, "-D", NULL, "-U", "postgres",
		    "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8",
		    "--no-instructions", NULL };

		if (access(pg.datadir, F_OK) == 0)
			aside = xstrdup(pg.datadir);
		else
			xasprintf(&aside, "%s.new", pg.datadir);
		if (strcmp(aside, pg.datadir) != 0 && remove_tree(aside) == -1)
			fatal("embedded database: cannot remove %s", aside);
		/* trust is safe: the server listens on no TCP port, and its
		 * socket is in a directory only its owner (and root) enter. */
		xasprintf(&initdb, "%s/initdb", pg.bindir);
		argv[0] = initdb;
		argv[2] = aside;
		log_info("embedded database: creating a cluster datadir=%s",
		    log_quote(pg.datadir));
		status = run(argv, log);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fatalx("embedded database: initdb failed (see %s%s)",
			    log, pg.drop ? "; it ran as the server's user, who "
			    "must be able to enter every directory above the "
			    "cluster" : "");
		if (strcmp(aside, pg.datadir) != 0 &&
		    rename(aside, pg.datadir) == -1)
			fatal("embedded database: rename %s", aside);
		free(initdb);
		free(aside);
	}
	free(versionfile);
	free(log);

	stray_server();
	pg.pid = spawn_server();
	dsn_host = dsn_quote(pg.sockdir);
	xasprintf(&pg.dsn, "host=%s port=%s dbname=postgres user=postgres",
	    dsn_host, EMBEDPG_PORT);
	free(dsn_host);
	wait_ready();
	return xstrdup(pg.dsn);
}

/*
 * Wait for the server just started to take connections.  One that says
 * it is starting up is recovering (from a crash, say: as long as the WAL
 * since the last checkpoint takes) and is waited for without a limit,
 * telling systemd to extend its start timeout: a limit would fail every
 * start of a long recovery, and each restart would begin it again.  One
 * that does not answer at all fails the start after EMBEDPG_WAIT_S.
 */
static void
wait_ready(void)
{
	char		*probe, version[256];
	PGconn		*c;
	int		 status;
	struct timespec	 answered, started;
	int64_t		 noted = -1, ms;

	/* A server that accepts the connection and then says nothing (a
	 * stopped one) would hold a probe without a timeout forever. */
	xasprintf(&probe, "%s connect_timeout=5", pg.dsn);
	clock_gettime(CLOCK_MONOTONIC, &started);
	answered = started;	/* its last sign of life */
	for (;;) {
		if (waitpid(pg.pid, &status, WNOHANG) == pg.pid) {
			pg.pid = 0;	/* (reaped: nothing to stop at exit) */
			fatalx("embedded database exited at start (see "
			    "%s/postgresql.log)", pg.sockdir);
		}
		switch (PQping(probe)) {
		case PQPING_OK:
			break;
		case PQPING_NO_ATTEMPT:
			fatalx("embedded database: cannot make a connection "
			    "string of %s", pg.sockdir);
		case PQPING_REJECT:
			clock_gettime(CLOCK_MONOTONIC, &answered);
			if ((ms = duration_ms_since(&started)) / 10000 >
			    noted) {
				noted = ms / 10000;
				log_info("embedded database is recovering, "
				    "waiting waited_s=%lld",
				    (long long)(noted * 10));
				sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu",
				    (unsigned long long)30 * 1000000);
			}
			usleep(100000);
			continue;
		default:
			if (duration_ms_since(&answered) >
			    EMBEDPG_WAIT_S * 1000)
				fatalx("embedded database not ready after %ds "
				    "(see %s/postgresql.log)", EMBEDPG_WAIT_S,
				    pg.sockdir);
			usleep(100000);
			continue;
		}
		c = PQconnectdb(probe);
		if (PQstatus(c) == CONNECTION_OK && server_pid() != pg.pid) {
			/* Some other server answers on our socket. */
			PQfinish(c);
			kill(pg.pid, SIGINT);
			fatalx("embedded database: another server runs on %s "
			    "(pid %d in postmaster.pid)", pg.datadir,
			    (int)server_pid());
		}
		if (PQstatus(c) == CONNECTION_OK) {
			snprintf(version, sizeof(version), "%d",
			    PQserverVersion(c));
			PQfinish(c);
			free(probe);
			log_info("embedded database ready socket=%s version=%s",
			    log_quote(pg.sockdir), log_quote(version));
			return;
		}
		if (duration_ms_since(&answered) > EMBEDPG_WAIT_S * 1000)
			fatalx("embedded database refuses connections: %s",
			    PQerrorMessage(c));
		PQfinish(c);
		usleep(100000);
	}
}

static void
restart_cb(evutil_socket_t fd, short what, void *arg)
{
	if (!pg.stopping)
		pg.pid = spawn_server();
}

void
embedpg_watch(struct event_base *base)
{
	pg.restart = evtimer_new(base, restart_cb, NULL);
}

bool
embedpg_reaped(pid_t pid, int status)
{
	struct timeval	 tv;
	char		*log;

	if (pg.pid == 0 || pid != pg.pid)
		return false;
	pg.pid = 0;
	if (pg.stopping)
		return true;
	if (duration_ms_since(&pg.started) >= EMBEDPG_STABLE_MS)
		pg.delay_ms = 0;
	pg.delay_ms = pg.delay_ms == 0 ? 250 : pg.delay_ms * 2;
	if (pg.delay_ms > EMBEDPG_RESTART_MAX_MS)
		pg.delay_ms = EMBEDPG_RESTART_MAX_MS;
	/* The server's own log says why; it is the operator's next read. */
	xasprintf(&log, "%s/postgresql.log", pg.sockdir);
	if (WIFSIGNALED(status))
		log_warnx("embedded database died signal=%d restart_in_ms=%d "
		    "log=%s", WTERMSIG(status), pg.delay_ms, log_quote(log));
	else
		log_warnx("embedded database died exit=%d restart_in_ms=%d "
		    "log=%s", WEXITSTATUS(status), pg.delay_ms, log_quote(log));
	free(log);
	tv.tv_sec = pg.delay_ms / 1000;
	tv.tv_usec = (pg.delay_ms % 1000) * 1000;
	evtimer_add(pg.restart, &tv);
	return true;
}

bool
embedpg_is_server(pid_t pid)
{
	return pg.pid > 0 && pid == pg.pid;
}

/* Signal the server and wait up to ms for it to exit; true if it did. */
static bool
stop_server(int sig, const char *mode, int ms)
{
	int	status, i;

	kill(pg.pid, sig);
	for (i = 0; i < ms / 100; i++) {
		if (waitpid(pg.pid, &status, WNOHANG) == pg.pid)
			return true;
		usleep(100000);
	}
	log_warnx("embedded database: no exit %d ms after %s shutdown "
	    "pid=%d", ms, mode, (int)pg.pid);
	return false;
}

/*
 * Fast (SIGINT: sessions end, a checkpoint, data safe), then immediate
 * (SIGQUIT: the next start recovers from the WAL), then SIGKILL: together
 * with the drain and the workers' grace this stays within the unit's
 * TimeoutStopSec=30s, after which systemd would kill the whole cgroup
 * anyway.  The server is reaped here, dead or alive.
 */
static void
stop_and_reap(void)
{
	int	status;

	if (pg.pid <= 0)
		return;
	if (!stop_server(SIGINT, "a fast", EMBEDPG_STOP_FAST_MS) &&
	    !stop_server(SIGQUIT, "an immediate", EMBEDPG_STOP_IMMEDIATE_MS)) {
		kill(pg.pid, SIGKILL);
		while (waitpid(pg.pid, &status, 0) == -1 && errno == EINTR)
			;
	}
	pg.pid = 0;
	log_info("embedded database stopped");
}

/*
 * A start that fails once the server runs (fatal: a migration, the HTTP
 * port) stops it before taskerd exits, as a normal stop does.  Left to
 * PR_SET_PDEATHSIG, the server shut down after taskerd was gone, while a
 * restarted taskerd found it still there; and one that had died unreaped
 * became a zombie of whoever inherited it, which PostgreSQL takes for a
 * server still running (stray_server).  (A signal during the start exits
 * with _exit, at once: PR_SET_PDEATHSIG covers that.)
 */
static void
stop_at_exit(void)
{
	if (getpid() == pg.owner && !pg.stopping)
		stop_and_reap();
}

void
embedpg_stop(void)
{
	pg.stopping = true;
	if (pg.restart != NULL)
		event_free(pg.restart);
	pg.restart = NULL;
	stop_and_reap();
	free(pg.bindir);
	free(pg.datadir);
	free(pg.sockdir);
	free(pg.dsn);
}
