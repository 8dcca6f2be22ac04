/* node.h - this node's heartbeat and the lease on its claims (node.c). */
#ifndef TASKERD_NODE_H
#define TASKERD_NODE_H

#include <stdbool.h>

void	node_init(void);
/* True while this node's claims are certainly still its own: its last
 * renewal was sent less than a lease ago. */
bool	node_lease_ok(void);
/* Ready work was left unclaimed here: wake the other nodes (debounced). */
void	node_hint(void);

#endif
