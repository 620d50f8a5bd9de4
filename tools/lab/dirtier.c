/* SPDX-License-Identifier: Apache-2.0
 *
 * The lab guest's init: dirties a working set at a set rate and checks, on
 * every pass, that each page still holds what the previous pass wrote, so
 * that a page lost or stale after a migration is seen. It reports on the
 * serial console once per report period:
 *
 *   DIRTIER seq=<n> t=<s> pass=<p> dirtied_mb=<MiB> rate_mbs=<r> errors=<e>
 *
 * Knobs on the kernel command line: dirty_mb=N (working set, MiB, default
 * 128), dirty_rate=R (MiB/s, each page touch counting as 4 KiB; 0 means as
 * fast as possible), report_ms=N (default 1000), dirty_pattern=random
 * (default sequential): each pass visits the pages in a scattered order,
 * a fixed stride coprime with the page count, so that every page is still
 * written exactly once per pass and the check stays exact, while QEMU's
 * dirty bitmap sees writes all over the working set instead of a sweep.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096UL
#define BATCH_PAGES 256UL /* 1 MiB */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static long knob(const char *cmdline, const char *name, long fallback)
{
    char key[64];
    const char *at;
    snprintf(key, sizeof(key), "%s=", name);
    for (at = strstr(cmdline, key); at; at = strstr(at + 1, key)) {
        if (at == cmdline || at[-1] == ' ')
            return atol(at + strlen(key));
    }
    return fallback;
}

static unsigned long gcd(unsigned long a, unsigned long b)
{
    while (b) {
        unsigned long t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* A stride near 0.618 of the range, coprime with it: a full permutation. */
static unsigned long scatter_stride(unsigned long pages)
{
    unsigned long stride = pages * 618 / 1000 | 1;
    if (pages < 3)
        return 1;
    while (gcd(stride, pages) != 1)
        stride += 2;
    return stride % pages;
}

static void sleep_s(double seconds)
{
    struct timespec ts;
    if (seconds <= 0)
        return;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
}

int main(void)
{
    char cmdline[4096] = "";
    int fd;
    long dirty_mb, dirty_rate, report_ms;
    unsigned long pages, page, step, stride = 1, touched = 0, errors = 0;
    unsigned long seq = 0;
    uint32_t pass = 1;
    unsigned char *mem;
    double start, anchor, last_report, anchor_touched = 0;

    mount("proc", "/proc", "proc", 0, NULL);
    fd = open("/dev/console", O_WRONLY);
    if (fd >= 0) {
        dup2(fd, 1);
        dup2(fd, 2);
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    fd = open("/proc/cmdline", O_RDONLY);
    if (fd >= 0) {
        ssize_t n = read(fd, cmdline, sizeof(cmdline) - 1);
        cmdline[n > 0 ? n : 0] = '\0';
        close(fd);
    }
    dirty_mb = knob(cmdline, "dirty_mb", 128);
    dirty_rate = knob(cmdline, "dirty_rate", 0);
    report_ms = knob(cmdline, "report_ms", 1000);
    pages = (unsigned long)dirty_mb * 1024 * 1024 / PAGE;
    if (strstr(cmdline, "dirty_pattern=random"))
        stride = scatter_stride(pages);

    printf("DIRTIER start dirty_mb=%ld dirty_rate=%ld report_ms=%ld "
           "pattern=%s\n", dirty_mb, dirty_rate, report_ms,
           stride == 1 ? "sequential" : "random");
    mem = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE,
               MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (mem == MAP_FAILED) {
        printf("DIRTIER cannot map %ld MiB\n", dirty_mb);
        for (;;)
            pause();
    }
    for (page = 0; page < pages; page++)
        *(uint32_t *)(mem + page * PAGE) = pass;
    printf("DIRTIER ready\n");

    start = anchor = last_report = now();
    for (;;) {
        pass++;
        for (step = 0, page = 0; step < pages;
             step++, page = (page + stride) % pages) {
            uint32_t *word = (uint32_t *)(mem + page * PAGE);
            if (*word != pass - 1) {
                if (errors < 20)
                    printf("DIRTIER CORRUPTION page=%lu got=%u expect=%u\n",
                           page, *word, pass - 1);
                errors++;
            }
            *word = pass;
            touched++;
            if (touched % BATCH_PAGES)
                continue;
            if (dirty_rate > 0) {
                double due = anchor + (touched - anchor_touched) * PAGE
                             / (dirty_rate * 1048576.0);
                double late = now() - due;
                if (late > 1.0) {
                    /* Paused or starved: start over rather than burst. */
                    anchor = now();
                    anchor_touched = touched;
                } else {
                    sleep_s(-late);
                }
            }
            if ((now() - last_report) * 1000 >= report_ms) {
                double t = now();
                seq++;
                printf("DIRTIER seq=%lu t=%.1f pass=%u dirtied_mb=%lu "
                       "rate_mbs=%.1f errors=%lu\n", seq, t - start, pass,
                       touched * PAGE / 1048576,
                       touched * PAGE / 1048576.0 / (t - start), errors);
                last_report = t;
            }
        }
    }
}
