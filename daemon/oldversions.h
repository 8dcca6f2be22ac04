/* oldversions.h - template versions the files no longer have, loaded as
 * stored for the tasks still running on them. */
#ifndef TASKERD_OLDVERSIONS_H
#define TASKERD_OLDVERSIONS_H

#include <stdint.h>

#include "template.h"

/* A version loaded so; NULL when none is. */
const struct tmpl *oldversions_find(int64_t db_id);
/* Those loaded so far, i < oldversions_count() (which only grows). */
size_t	oldversions_count(void);
const struct tmpl *oldversions_item(size_t i);
/* A claim met template db_id, which the files do not have: load it as
 * stored if the files have a later version of it (then claim again). */
void	oldversions_lookup(int64_t db_id);
/* After db_shutdown. */
void	oldversions_free(void);

#endif
