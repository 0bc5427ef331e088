/* histogram.c - the load generator's latency histogram: log-linear buckets in fixed memory (layout in
 * loadgen.h), and the percentiles read from it. */
#include "loadgen.h"

unsigned uk_hist_index(uint64_t us)
{
    if (us < UK_HIST_LINEAR)
        return us;
    unsigned msb = 63 - __builtin_clzll(us);          /* >= 8 */
    unsigned shift = msb - 7;                          /* bucket width 2^shift in group `shift` */
    if (shift > UK_HIST_GROUPS)
        return UK_HIST_BUCKETS - 1;
    return UK_HIST_LINEAR + (shift - 1) * UK_HIST_SUB + (unsigned)(us >> shift) - UK_HIST_SUB;
}

uint64_t uk_load_bucket_low(unsigned i)
{
    if (i < UK_HIST_LINEAR)
        return i;
    unsigned shift = (i - UK_HIST_LINEAR) / UK_HIST_SUB + 1;
    return (uint64_t)((i - UK_HIST_LINEAR) % UK_HIST_SUB + UK_HIST_SUB) << shift;
}

uint64_t uk_load_bucket_width(unsigned i)
{
    return i < UK_HIST_LINEAR ? 1 : 1ULL << ((i - UK_HIST_LINEAR) / UK_HIST_SUB + 1);
}

double uk_load_percentile(const struct uk_load_result *r, double percent)
{
    uint64_t total = 0, seen = 0;
    for (unsigned i = 0; i < UK_HIST_BUCKETS; i++)
        total += r->latency_us[i];
    if (total == 0 || percent <= 0)
        return 0;
    uint64_t rank = (uint64_t)(percent / 100.0 * total + 0.999999);   /* the rank-th smallest latency */
    if (rank < 1)
        rank = 1;
    for (unsigned i = 0; i < UK_HIST_BUCKETS; i++) {
        seen += r->latency_us[i];
        if (seen >= rank) {
            double mid = uk_load_bucket_low(i) + (uk_load_bucket_width(i) - 1) / 2.0;
            return mid < r->latency_max_us ? mid : r->latency_max_us;
        }
    }
    return r->latency_max_us;
}
