/*
 * oldversions.c - template versions the files no longer have, for the
 * tasks still running on them.
 *
 * A task runs to its end on the version it was created with.  When that
 * version leaves the template files (a new version replaced it, or an old
 * one came back, and a reload or a restart followed), the node has no
 * template for the task's next steps.  It loads the version as it was
 * registered (templates.source, the file's text; the jsonb definition for
 * a version registered before migration 013) when its files hold another
 * version of the same template and no live node has this one in its files
 * (nodes.templates, which the heartbeat renews; a node older than 013
 * says nothing, and might).  A version a live node has belongs to that
 * node, with its programs: a rolling deploy's (sched.c hands the steps
 * back).
 *
 * Loaded versions are kept until exit: claims point into them, and there
 * are few.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "oldversions.h"
#include "db.h"
#include "sched.h"
#include "supervisor.h"
#include "log.h"
#include "xmalloc.h"

static const char sql_version[] =
"SELECT n.name, t.name, t.version, coalesce(t.source, t.definition::text),"
"  EXISTS (SELECT 1 FROM nodes o WHERE o.id <> $2"
"    AND o.lease_expires_at > now()"
"    AND (o.templates IS NULL OR t.id = ANY(o.templates)))"
" FROM templates t JOIN namespaces n ON n.id = t.namespace_id"
" WHERE t.id = $1";

static struct {
	struct tmpl	**items;
	size_t		  n;
	json_t		 *asked;	/* {"id": true}: lookups in flight */
} ov;

const struct tmpl *
oldversions_find(int64_t db_id)
{
	size_t	i;

	for (i = 0; i < ov.n; i++)
		if (ov.items[i]->db_id == db_id)
			return ov.items[i];
	return NULL;
}

size_t
oldversions_count(void)
{
	return ov.n;
}

const struct tmpl *
oldversions_item(size_t i)
{
	return i < ov.n ? ov.items[i] : NULL;
}

/* Whether the files hold a version of namespace/name. */
static bool
in_the_files(const char *namespace, const char *name)
{
	const struct tmpl_registry	*reg = sv.templates;
	size_t				 i;

	for (i = 0; i < reg->n; i++)
		if (strcmp(reg->items[i]->namespace, namespace) == 0 &&
		    strcmp(reg->items[i]->name, name) == 0)
			return true;
	return false;
}

static void
lookup_done(struct db_job *job, void *arg)
{
	int64_t		 id = *(int64_t *)arg;
	PGresult	*res = db_job_result(job, 0);
	const char	*ns, *name, *version, *text;
	struct tmpl	*t;
	char		 key[24], label[64], err[1024], *path;

	snprintf(key, sizeof(key), "%lld", (long long)id);
	json_object_del(ov.asked, key);
	free(arg);
	if (res == NULL || PQntuples(res) != 1 || oldversions_find(id) != NULL)
		return;		/* (passing trouble: asked again later) */
	ns = PQgetvalue(res, 0, 0);
	name = PQgetvalue(res, 0, 1);
	version = PQgetvalue(res, 0, 2);
	text = PQgetvalue(res, 0, 3);
	if (!in_the_files(ns, name) || strcmp(PQgetvalue(res, 0, 4), "t") == 0)
		return;		/* another node's, or may be */
	/* Relative programs are found from the template directory, where
	 * its file was. */
	snprintf(label, sizeof(label), "stored template %lld", (long long)id);
	xasprintf(&path, "%s/%s", sv.conf->templates_dir, label);
	t = tmpl_load_buffer(path, text, (size_t)PQgetlength(res, 0, 3),
	    &sv.templates->defaults, err, sizeof(err));
	free(path);
	if (t != NULL && (strcmp(t->namespace, ns) != 0 ||
	    strcmp(t->name, name) != 0 || strcmp(t->version, version) != 0)) {
		snprintf(err, sizeof(err), "it names another template");
		tmpl_free(t);
		t = NULL;
	}
	/* (A name may hold spaces and quotes: one quoted field.) */
	xasprintf(&path, "%s/%s@%s", ns, name, version);
	if (t == NULL) {
		log_warnx("a template version no longer in the files cannot "
		    "be loaded as stored, its tasks wait template=%s "
		    "template_id=%lld error=%s", log_quote(path),
		    (long long)id, log_quote(err));
		free(path);
		return;
	}
	t->db_id = id;
	ov.items = xreallocarray(ov.items, ov.n + 1, sizeof(*ov.items));
	ov.items[ov.n++] = t;
	log_info("template version no longer in the files loaded as stored, "
	    "for its tasks template=%s template_id=%lld", log_quote(path),
	    (long long)id);
	free(path);
	sched_kick();
}

void
oldversions_lookup(int64_t db_id)
{
	struct db_job	*job;
	int64_t		*arg;
	char		 key[24];
	const char	*params[2] = { key, sv.node_id };

	if (ov.asked == NULL)
		ov.asked = json_object();
	snprintf(key, sizeof(key), "%lld", (long long)db_id);
	if (json_object_get(ov.asked, key) != NULL ||
	    oldversions_find(db_id) != NULL)
		return;
	json_object_set_new(ov.asked, key, json_true());
	arg = xmalloc(sizeof(*arg));
	*arg = db_id;
	job = db_job_new(lookup_done, arg);
	db_job_add(job, sql_version, 2, params);
	db_submit(job);
}

void
oldversions_free(void)
{
	while (ov.n > 0)
		tmpl_free(ov.items[--ov.n]);
	free(ov.items);
	json_decref(ov.asked);
	memset(&ov, 0, sizeof(ov));
}
