/*
 * netaddr.h - what a socket address reaches.
 */
#ifndef TASKERD_NETADDR_H
#define TASKERD_NETADDR_H

#include <sys/socket.h>

#include <stdbool.h>

/* Whether sa is a loopback address (127.0.0.0/8, ::1, or ::ffff:127.x
 * mapped), whose connections come from this host only.  A wildcard
 * address (0.0.0.0, ::) is not: it takes them from every interface. */
bool	 sockaddr_is_loopback(const struct sockaddr *sa);

#endif
