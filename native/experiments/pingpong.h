/* pingpong.h - the cost of a context switch, measured the classic way (chapter 01, "Blocking I/O").
 *
 * Two tasks pinned to the same CPU pass one byte back and forth over two pipes. Each round trip blocks each task
 * once, so the CPU switches twice; the time per round trip over two is the cost of one switch plus one pipe read
 * and one pipe write (the book says so: there is no way to switch without some system call to cause it).
 */
#ifndef URINGKIT_PINGPONG_H
#define URINGKIT_PINGPONG_H

/* cffi-begin */
struct uk_pingpong_result {
    double seconds;             /* wall time of all round trips */
    long round_trips;
    long voluntary_switches;    /* of the measuring task (getrusage): it blocked in read and gave up the CPU */
    long involuntary_switches;  /* of the measuring task: preempted, e.g. by the partner it just woke */
};

/* use_threads: partner is a thread of this process (else a forked child). cpu: where both run (-1: don't pin).
 * Returns 0 or -errno. */
int uk_pingpong(int use_threads, int cpu, long round_trips, struct uk_pingpong_result *out);
/* cffi-end */

#endif
