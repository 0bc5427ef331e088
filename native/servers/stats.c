/* stats.c - atomic updates of the shared server counters (see stats.h). */
#include "stats.h"

void uk_stat_add(uint64_t *counter, int64_t delta)
{
    /* Relaxed: the counters order nothing; they only have to add up. */
    __atomic_fetch_add(counter, (uint64_t)delta, __ATOMIC_RELAXED);
}
