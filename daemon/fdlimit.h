#ifndef TASKERD_FDLIMIT_H
#define TASKERD_FDLIMIT_H

#include <sys/resource.h>

/*
 * Every API client holds a descriptor, and the soft limit a service gets
 * (1024 under systemd, for programs that still wait with select()) would
 * cap taskerd at a few hundred clients.  taskerd waits with epoll and
 * poll, and raises its soft limit to the hard one at start; its children
 * (workers, the programs exec steps run, the embedded server) get the
 * limit taskerd was given back.
 */
void	fdlimit_raise(void);
rlim_t	fdlimit_current(void);
/* In a forked child, before exec: async-signal-safe. */
void	fdlimit_restore(void);

#endif
