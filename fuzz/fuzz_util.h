/* fuzz_util.h - shared by the libFuzzer targets: pare's parsers read files, so each input is
 * written to a file of this process (in /dev/shm when there is one) and parsed from there. */
#ifndef PARE_FUZZ_UTIL_H
#define PARE_FUZZ_UTIL_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* this process's folder for the inputs (made once) */
static inline const char *fuzz_dir(void) {
    static char dir[256];
    if (!dir[0]) {
        struct stat sb;
        snprintf(dir, sizeof dir, "%s/pare-fuzz-%d", stat("/dev/shm", &sb) == 0 ? "/dev/shm" : "/tmp", (int)getpid());
        mkdir(dir, 0700);
    }
    return dir;
}

/* fuzz_dir()/name, written with data; returns the path (static) or NULL */
static inline const char *fuzz_write(const char *name, const uint8_t *data, size_t n) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", fuzz_dir(), name);
    FILE *f = fopen(path, "wb");
    if (!f) return NULL;
    if (n && fwrite(data, 1, n, f) != n) { fclose(f); return NULL; }
    fclose(f);
    return path;
}

#endif
