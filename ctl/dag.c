/*
 * dag.c - a template's or task's steps drawn as a tree on a terminal.
 *
 * A DAG is not a tree, so each step is drawn once, under its first parent
 * (the parent listed first in depends_on, which the API orders by
 * position), and noted "(also after X)" there; under each of its other
 * parents a reference line "(drawn under P)" stands in for it.  Following
 * first parents from any step ends at a root, so the first-parent edges
 * form a forest and every step is drawn exactly once.
 *
 * The tree is column 0 of an out_table, so the caller's columns (state,
 * attempts, ...) line up however deep a step sits.  Nothing depends on
 * anything but the array: the same answer draws the same bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "xmalloc.h"

struct dag_node {
	const json_t	*step;
	const char	*name;
	int		 first_parent;	/* index, or -1: a root */
	int		*kids;		/* children, in array order */
	int		 nkids;
	bool		 drawn;
};

struct dag {
	struct dag_node	*n;
	int		 count;
	struct out_table *t;
	dag_cells_fn	 cells;
	void		*arg;
};

/* Tree glyphs: branch, last branch, continuation, blank. */
static const char *const glyphs_utf8[] = { "├── ", "└── ", "│   ", "    " };
static const char *const glyphs_ascii[] = { "|-- ", "`-- ", "|   ", "    " };

static int
dag_index(const struct dag *g, const char *name)
{
	int	i;

	for (i = 0; i < g->count; i++)
		if (strcmp(g->n[i].name, name) == 0)
			return i;
	return -1;
}

/* "(also after c, d)": the parents other than the first, or "". */
static char *
dag_also(const struct dag *g, int i)
{
	const json_t	*deps = json_object_get(g->n[i].step, "depends_on");
	char		*out = xstrdup(""), *next;
	const char	*p;
	size_t		 k;
	bool		 first = true;

	for (k = 0; k < json_array_size(deps); k++) {
		p = json_string_value(json_array_get(deps, k));
		if (p == NULL || dag_index(g, p) == -1 ||
		    dag_index(g, p) == g->n[i].first_parent)
			continue;
		xasprintf(&next, "%s%s%s", out, first ? " (also after " : ", ",
		    p);
		free(out);
		out = next;
		first = false;
	}
	if (!first) {
		xasprintf(&next, "%s)", out);
		free(out);
		out = next;
	}
	return out;
}

static void
dag_draw(struct dag *g, int i, const char *prefix, const char *branch)
{
	const char *const *gl = ctl.utf8 ? glyphs_utf8 : glyphs_ascii;
	struct dag_node	*nd = &g->n[i];
	char		*also, *sub;
	int		 k, c;

	also = dag_also(g, i);
	out_table_row(g->t);
	out_table_set(g->t, 0, NULL, "%s%s%s%s", prefix, branch, nd->name,
	    also);
	free(also);
	nd->drawn = true;
	if (g->cells != NULL)
		g->cells(g->t, nd->step, g->arg);

	/* The children's prefix continues this node's line unless it was the
	 * last child of its parent (or a root). */
	xasprintf(&sub, "%s%s", prefix, branch[0] == '\0' ? "" :
	    strcmp(branch, gl[1]) == 0 ? gl[3] : gl[2]);
	for (k = 0; k < nd->nkids; k++) {
		const char *b = k == nd->nkids - 1 ? gl[1] : gl[0];

		c = nd->kids[k];
		if (g->n[c].first_parent == i && !g->n[c].drawn)
			dag_draw(g, c, sub, b);
		else {
			out_table_row(g->t);
			out_table_set(g->t, 0, NULL, "%s%s%s (drawn under %s)",
			    sub, b, g->n[c].name,
			    g->n[c].first_parent >= 0 ?
			    g->n[g->n[c].first_parent].name : "?");
		}
	}
	free(sub);
}

void
dag_print(FILE *f, const json_t *steps, int ncols, const char *const *headers,
    dag_cells_fn cells, void *arg)
{
	struct dag	 g;
	const json_t	*deps;
	const char	*p;
	size_t		 k;
	int		 i, j;

	memset(&g, 0, sizeof(g));
	g.count = (int)json_array_size(steps);
	g.n = xcalloc((size_t)g.count + 1, sizeof(*g.n));
	g.cells = cells;
	g.arg = arg;
	for (i = 0; i < g.count; i++) {
		g.n[i].step = json_array_get(steps, (size_t)i);
		g.n[i].name = out_str(g.n[i].step, "name", "?");
		g.n[i].first_parent = -1;
		g.n[i].kids = xcalloc((size_t)g.count + 1, sizeof(int));
	}
	/* Children in array order: for each step, tell each known parent. */
	for (i = 0; i < g.count; i++) {
		deps = json_object_get(g.n[i].step, "depends_on");
		for (k = 0; k < json_array_size(deps); k++) {
			p = json_string_value(json_array_get(deps, k));
			if (p == NULL || (j = dag_index(&g, p)) == -1 || j == i)
				continue;
			/* A parent named twice (a malformed answer) is one. */
			if (g.n[j].nkids > 0 &&
			    g.n[j].kids[g.n[j].nkids - 1] == i)
				continue;
			if (g.n[i].first_parent == -1)
				g.n[i].first_parent = j;
			g.n[j].kids[g.n[j].nkids++] = i;
		}
	}

	g.t = out_table_new(ncols, headers);
	for (i = 0; i < g.count; i++)
		if (g.n[i].first_parent == -1)
			dag_draw(&g, i, "", "");
	/* Only a malformed answer (a cycle) leaves steps undrawn. */
	for (i = 0; i < g.count; i++)
		if (!g.n[i].drawn)
			dag_draw(&g, i, "", "");
	out_table_print(g.t, f);

	for (i = 0; i < g.count; i++)
		free(g.n[i].kids);
	free(g.n);
}
