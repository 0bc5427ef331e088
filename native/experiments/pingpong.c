/* pingpong.c - two tasks on one CPU passing a byte back and forth (see pingpong.h). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "pingpong.h"

struct partner {
    int in, out;   /* read a byte from in, echo it to out, until in reaches EOF */
};

static void *echo_loop(void *arg)
{
    const struct partner *p = arg;
    char byte;
    while (read(p->in, &byte, 1) == 1)
        if (write(p->out, &byte, 1) != 1)
            break;
    return NULL;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int pin(pid_t tid, int cpu, cpu_set_t *old)
{
    cpu_set_t set;
    if (cpu < 0)
        return 0;
    if (old && sched_getaffinity(tid, sizeof *old, old) < 0)
        return -errno;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(tid, sizeof set, &set) < 0 ? -errno : 0;
}

int uk_pingpong(int use_threads, int cpu, long round_trips, struct uk_pingpong_result *out)
{
    int to_partner[2], from_partner[2], err = 0;
    struct partner p;
    pthread_t thread;
    pid_t child = -1;
    cpu_set_t old;
    struct rusage before, after;
    char byte = 'x';
    double start;
    long i;

    if (round_trips <= 0)
        return -EINVAL;
    if (pipe2(to_partner, O_CLOEXEC) < 0)
        return -errno;
    if (pipe2(from_partner, O_CLOEXEC) < 0) {
        err = -errno;
        close(to_partner[0]);
        close(to_partner[1]);
        return err;
    }
    p.in = to_partner[0];
    p.out = from_partner[1];
    if ((err = pin(0, cpu, &old)) < 0)  /* pin ourselves first: a thread or child inherits it */
        goto out_pipes;
    if (use_threads) {
        if ((err = -pthread_create(&thread, NULL, echo_loop, &p)) < 0)
            goto out_affinity;
    } else {
        child = fork();
        if (child < 0) {
            err = -errno;
            goto out_affinity;
        }
        if (child == 0) {
            close(to_partner[1]);
            close(from_partner[0]);
            echo_loop(&p);
            _exit(0);
        }
    }

    getrusage(RUSAGE_THREAD, &before);
    start = now();
    for (i = 0; i < round_trips; i++) {
        if (write(to_partner[1], &byte, 1) != 1 || read(from_partner[0], &byte, 1) != 1) {
            err = -EIO;
            break;
        }
    }
    out->seconds = now() - start;
    getrusage(RUSAGE_THREAD, &after);
    out->round_trips = i;
    out->voluntary_switches = after.ru_nvcsw - before.ru_nvcsw;
    out->involuntary_switches = after.ru_nivcsw - before.ru_nivcsw;

    close(to_partner[1]);  /* EOF: the partner's loop ends */
    to_partner[1] = -1;
    if (use_threads)
        pthread_join(thread, NULL);
    else
        while (waitpid(child, NULL, 0) < 0 && errno == EINTR)
            ;
out_affinity:
    if (cpu >= 0)
        sched_setaffinity(0, sizeof old, &old);
out_pipes:
    close(to_partner[0]);
    if (to_partner[1] >= 0)
        close(to_partner[1]);
    close(from_partner[0]);
    close(from_partner[1]);
    return err;
}
