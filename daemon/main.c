/*
 * main.c - taskerd's command line: run, --check, --migrate.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "autoconf.h"
#include "config.h"
#include "protocol.h"
#include "template.h"
#include "db.h"
#include "migrate.h"
#include "supervisor.h"
#include "log.h"

/* Exit 2 on a usage error, as tasker-ctl does; 1 is for a config that
 * does not load, a database that does not answer and the like. */
static void __attribute__((noreturn))
usage(int code)
{
	fprintf(code ? stderr : stdout,
	    "usage: taskerd -c FILE [--check | --migrate]\n"
	    "  -c, --config FILE  configuration file (YAML)\n"
	    "      --check        validate the config and templates, then exit\n"
	    "      --migrate      apply database migrations, then exit\n"
	    "  -V, --version      print the version\n"
	    "  -h, --help         this text\n");
	exit(code);
}

/* Lines of warnings (freed here), each as "warning: LINE". */
static void
print_warnings(char *lines)
{
	char	*p, *line;

	for (p = lines; p != NULL && (line = strsep(&p, "\n")) != NULL;)
		fprintf(stderr, "warning: %s\n", line);
	free(lines);
}

int
main(int argc, char **argv)
{
	enum { OPT_CHECK = 256, OPT_MIGRATE };
	static const struct option longopts[] = {
		{ "config",	required_argument,	NULL, 'c' },
		{ "check",	no_argument,		NULL, OPT_CHECK },
		{ "migrate",	no_argument,		NULL, OPT_MIGRATE },
		{ "version",	no_argument,		NULL, 'V' },
		{ "help",	no_argument,		NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char		*path = NULL;
	bool			 check = false, migrate = false;
	struct config		*conf;
	struct tmpl_registry	*reg;
	char			 err[1024], *errs = NULL, *perr = NULL;
	PGconn			*pg;
	PQconninfoOption	*opts = NULL;
	int			 ch, n;

	/* Until the daemon's loop handles it, a SIGHUP (a deploy script's
	 * reload) would end the process: the start reads the files anyway. */
	signal(SIGHUP, SIG_IGN);
	log_init("taskerd", LOG_LVL_INFO);
	while ((ch = getopt_long(argc, argv, "c:Vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case OPT_CHECK:
			check = true;
			break;
		case OPT_MIGRATE:
			migrate = true;
			break;
		case 'V':
			printf("taskerd %s (protocol %d)\n", PACKAGE_VERSION,
			    PROTO_VERSION);
			return 0;
		case 'h':
			usage(0);
		default:
			usage(2);
		}
	}
	if (optind != argc || path == NULL || (check && migrate))
		usage(2);

	if ((conf = config_load(path, err, sizeof(err))) == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	/* A misspelt option would otherwise pass --check, then be retried
	 * at start as if the database were away. */
	if (conf->database_dsn != NULL &&
	    (opts = PQconninfoParse(conf->database_dsn, &perr)) == NULL) {
		if (perr != NULL)
			perr[strcspn(perr, "\n")] = '\0';
		fprintf(stderr, "%s: database.dsn: %s\n", path,
		    perr != NULL ? perr : "out of memory");
		PQfreemem(perr);
		config_free(conf);
		return 1;
	}
	PQconninfoFree(opts);
	log_setlevel(conf->log_level);

	if (migrate) {
		if (conf->database_dsn == NULL) {
			fprintf(stderr, "%s: no database.dsn to migrate\n",
			    path);
			return 1;
		}
		signal(SIGTERM, stop_during_start);
		signal(SIGINT, stop_during_start);
		if ((pg = db_connect_blocking(conf->database_dsn, err,
		    sizeof(err))) == NULL) {
			fprintf(stderr, "database: %s\n", err);
			return 1;
		}
		n = migrate_run(pg, err, sizeof(err));
		PQfinish(pg);
		if (n == -1) {
			fprintf(stderr, "migrate: %s\n", err);
			return 1;
		}
		printf("%d migration(s) applied; schema is current\n", n);
		config_free(conf);
		return 0;
	}

	reg = tmpl_registry_load(conf->templates_dir, &conf->step_defaults,
	    &errs);
	if (reg == NULL) {
		fprintf(stderr, "%s", errs ? errs : "templates: unknown error");
		if (errs != NULL && errs[0] != '\0' &&
		    errs[strlen(errs) - 1] != '\n')
			fputc('\n', stderr);
		free(errs);
		config_free(conf);
		return 1;
	}
	free(errs);
	if (check) {
		print_warnings(config_warnings(conf));
		print_warnings(tmpl_registry_warnings(reg));
		print_warnings(config_service_warnings(conf, reg));
		printf("%s: ok (%zu template(s) in %s)\n", path, reg->n,
		    conf->templates_dir);
		tmpl_registry_free(reg);
		config_free(conf);
		return 0;
	}
	return supervisor_run(conf, reg, argv[0]);
}
