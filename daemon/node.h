/* node.h - this node among others: its lease on its claims, and hints. */
#ifndef TASKERD_NODE_H
#define TASKERD_NODE_H

#include <stdbool.h>
#include <libpq-fe.h>

/* Before anything runs: make sure no live node uses this node's id (its
 * claims would be taken for this node's own); wait out the lease of an
 * earlier run of this node.  Exits when the id is in use. */
void	node_check_id(PGconn *);
void	node_init(void);
/* True while this node's claims are certainly still its own: its last
 * renewal was sent less than a lease ago. */
bool	node_lease_ok(void);
/* Counts the lapses of this node's lease: a claim made before the last one
 * may have been taken over by another node meanwhile. */
unsigned node_epoch(void);
/* A database connection came up: a renewal that failed goes at once. */
void	node_db_up(void);
/* Ready work was left unclaimed here: wake the other nodes (debounced). */
void	node_hint(void);
/* "{3,7,9}": the template versions of this node's files, as its heartbeat
 * tells the others (nodes.templates); the caller frees it. */
char	*node_template_ids(void);
/* A clean stop wrote everything: end the lease, if no claims are left.
 * False while a renewal is in flight: call again later. */
bool	node_hand_back(void);

#endif
