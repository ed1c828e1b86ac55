/* The node's identity provider (ztunnel/identity.c); the thread-safe accessors are declared in
 * proxy.h. */
#ifndef ZT_IDENTITY_H
#define ZT_IDENTITY_H

#include <jansson.h>

struct zt;

/* Load the CA (files, or an in-memory CA when none is configured), build the TLS contexts and
 * start the refresh timer on the control loop. 0 or -errno (logged). */
int zt_identity_start(struct zt *zt);
void zt_identity_stop(struct zt *zt);
/* Reload the CA files now if they changed (SIGHUP; they are also checked every few seconds). */
void zt_identity_reload(struct zt *zt);
json_t *zt_identity_dump(struct zt *zt);

#endif
