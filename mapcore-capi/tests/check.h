/*
 * A minimal test harness for the C tests of mapcore-capi: CHECK counts passes and failures,
 * prints each failure with its line, and finish() prints "NAME: N passed, N failed" and gives
 * the exit status (non-zero if any check failed or none ran).
 */
#ifndef MAPCORE_CHECK_H
#define MAPCORE_CHECK_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mapcore.h"

static int checks_passed;
static int checks_failed;

#define CHECK(cond)                                                                           \
    do {                                                                                      \
        if (cond) {                                                                           \
            checks_passed++;                                                                  \
        } else {                                                                              \
            checks_failed++;                                                                  \
            fprintf(stderr, "%s:%d: FAILED: %s\n", __FILE__, __LINE__, #cond);                \
        }                                                                                     \
    } while (0)

/* Checks that `call` returned `expected`; on a mismatch prints what it returned instead,
 * with the message in `err`. */
#define CHECK_STATUS(call, expected, err)                                                     \
    do {                                                                                      \
        mapcore_status got_ = (call);                                                         \
        if (got_ == (expected)) {                                                             \
            checks_passed++;                                                                  \
        } else {                                                                              \
            checks_failed++;                                                                  \
            fprintf(stderr, "%s:%d: FAILED: %s returned %s, expected %s (message: %s)\n",     \
                    __FILE__, __LINE__, #call, mapcore_status_name(got_),                     \
                    mapcore_status_name(expected), got_ == MAPCORE_OK ? "" : (err)->message); \
        }                                                                                     \
    } while (0)

#define CHECK_STR(got, expected)                                                              \
    do {                                                                                      \
        const char *got_ = (got);                                                             \
        const char *want_ = (expected);                                                       \
        if (strcmp(got_, want_) == 0) {                                                       \
            checks_passed++;                                                                  \
        } else {                                                                              \
            checks_failed++;                                                                  \
            fprintf(stderr, "%s:%d: FAILED: %s is \"%s\", expected \"%s\"\n", __FILE__,       \
                    __LINE__, #got, got_, want_);                                             \
        }                                                                                     \
    } while (0)

/* A map over the built-in Linux host, or the test stops. */
static inline mapcore_map *new_libc_map(const mapcore_config *config) {
    mapcore_error err;
    mapcore_map *map = NULL;
    if (mapcore_map_new_libc(config, &map, &err) != MAPCORE_OK || map == NULL) {
        fprintf(stderr, "mapcore_map_new_libc failed: %s\n", err.message);
        exit(2);
    }
    return map;
}

/* The permissions ("rw-", "r-x", ...) of the page at `addr` in /proc/self/maps, or "---" if
 * it is not mapped. */
static inline const char *prot_at(uintptr_t addr) {
    static char perms[4];
    strcpy(perms, "---");
    FILE *maps = fopen("/proc/self/maps", "r");
    if (maps == NULL) {
        return perms;
    }
    unsigned long start, end;
    char p[5];
    char line[512];
    while (fgets(line, sizeof line, maps) != NULL) {
        if (sscanf(line, "%lx-%lx %4s", &start, &end, p) == 3 && start <= addr && addr < end) {
            memcpy(perms, p, 3);
            break;
        }
    }
    fclose(maps);
    return perms;
}

/* Whether `len` bytes at `addr` are all zero. */
static inline int all_zero(uintptr_t addr, size_t len) {
    const volatile uint8_t *p = (const volatile uint8_t *)addr;
    for (size_t i = 0; i < len; i++) {
        if (p[i] != 0) {
            return 0;
        }
    }
    return 1;
}

static inline int finish(const char *name) {
    printf("%s: %d passed, %d failed\n", name, checks_passed, checks_failed);
    return checks_failed == 0 && checks_passed > 0 ? 0 : 1;
}

#endif
