/*
 * Quickstart for C: JIT a tiny function into mapcore memory, call it, then reuse the same pages
 * for different code.
 *
 * Build and run from the repository root:
 *   cargo build --release -p mapcore-capi
 *   cc -Wall -Wextra -Imapcore-capi/include mapcore-capi/examples/quickstart.c \
 *      target/release/libmapcore_capi.a -lpthread -ldl -lm -o quickstart
 *   ./quickstart
 *
 * The map is over the built-in Linux host (mmap, mprotect, madvise, munmap). Its steps:
 * reserve a slab of address space; initialize a region in it (copy the code in, make it
 * read+execute, run a finalize action); call the code; deinitialize the region (its dealloc
 * action runs, the pages become read-write and zero again); initialize new code at the same
 * addresses and call it; release the slab.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "mapcore.h"

#if defined(__x86_64__)
/* int f(void) { return 42; }: mov eax, 42; ret */
static const uint8_t RETURN_42[] = {0xb8, 0x2a, 0x00, 0x00, 0x00, 0xc3};
/* int g(int a, int b) { return a + b; }: lea eax, [rdi + rsi]; ret */
static const uint8_t ADD[] = {0x8d, 0x04, 0x37, 0xc3};
#elif defined(__aarch64__)
/* mov w0, #42; ret */
static const uint8_t RETURN_42[] = {0x40, 0x05, 0x80, 0x52, 0xc0, 0x03, 0x5f, 0xd6};
/* add w0, w0, w1; ret */
static const uint8_t ADD[] = {0x00, 0x00, 0x01, 0x0b, 0xc0, 0x03, 0x5f, 0xd6};
#else
#error "the quickstart carries machine code for x86-64 and aarch64 only"
#endif

/* Stops the program with the error's name and message if a call failed. */
static void check(mapcore_status status, const mapcore_error *err, const char *what) {
    if (status != MAPCORE_OK) {
        fprintf(stderr, "%s failed: %s: %s\n", what, mapcore_status_name(status), err->message);
        exit(1);
    }
}

/* The finalize action: runs inside initialize, once the code is in place and executable.
 * A runtime would register unwind info here; this one prints its argument bytes. */
static int32_t on_finalize(void *ctx, const uint8_t *args, size_t len) {
    printf("    [finalize] %s: %.*s\n", (const char *)ctx, (int)len, (const char *)args);
    return 0;
}

/* The dealloc action: runs inside deinitialize (or release), before the pages are reset. */
static int32_t on_dealloc(void *ctx, const uint8_t *args, size_t len) {
    printf("    [dealloc]  %s: %.*s\n", (const char *)ctx, (int)len, (const char *)args);
    return 0;
}

int main(void) {
    mapcore_error err;
    mapcore_map *map;
    check(mapcore_map_new_libc(NULL, &map, &err), &err, "mapcore_map_new_libc");
    size_t page = mapcore_map_page_size(map);

    /* 1. Reserve a slab of 4 pages: read-write, reads as zero. */
    uintptr_t base;
    check(mapcore_map_reserve(map, 4 * page, &base, &err), &err, "reserve");
    printf("1. reserved %zu bytes at %#lx (page size %zu)\n", 4 * page, (unsigned long)base, page);

    /* 2. Initialize a region: one read+execute code segment, one finalize/dealloc pair. */
    char name[] = "region one";
    mapcore_segment code = {
        .group = MAPCORE_GROUP_READ | MAPCORE_GROUP_EXEC,
        .addr = base,
        .size = sizeof RETURN_42,
        .content = RETURN_42,
        .content_len = sizeof RETURN_42,
    };
    mapcore_action_pair pair = {
        .finalize = {.func = on_finalize, .ctx = name, .args = (const uint8_t *)"register", .args_len = 8},
        .dealloc = {.func = on_dealloc, .ctx = name, .args = (const uint8_t *)"deregister", .args_len = 10},
    };
    uintptr_t key;
    printf("2. initialize: %zu bytes of code, r-x, at %#lx\n", sizeof RETURN_42, (unsigned long)base);
    check(mapcore_map_initialize(map, &code, 1, &pair, 1, &key, &err), &err, "initialize");

    /* 3. Call it. The key is the address of the lowest segment: here, the code. */
    int (*return_42)(void) = (int (*)(void))key;
    printf("3. called the JIT'd code: f() = %d\n", return_42());

    /* A bad request is refused and changes nothing: the code page is in use. */
    mapcore_status again = mapcore_map_initialize(map, &code, 1, NULL, 0, NULL, &err);
    printf("   initializing the same pages again: %s (%s)\n", mapcore_status_name(again), err.message);

    /* 4. Deinitialize: the dealloc action runs, the pages are read-write and zero again. */
    printf("4. deinitialize region %#lx\n", (unsigned long)key);
    check(mapcore_map_deinitialize(map, key, &err), &err, "deinitialize");

    /* 5. Reuse the same addresses for different code. */
    char name2[] = "region two";
    code.size = code.content_len = sizeof ADD;
    code.content = ADD;
    pair.finalize.ctx = pair.dealloc.ctx = name2;
    printf("5. initialize different code at the same address\n");
    check(mapcore_map_initialize(map, &code, 1, &pair, 1, &key, &err), &err, "initialize again");
    int (*add)(int, int) = (int (*)(int, int))key;
    printf("   called the new code: g(100, 23) = %d\n", add(100, 23));

    /* 6. Release the slab: the live region's dealloc action runs first, then it is unmapped. */
    printf("6. release the slab\n");
    check(mapcore_map_release(map, base, &err), &err, "release");
    printf("   slabs left: %zu, regions left: %zu\n", mapcore_map_slab_count(map),
           mapcore_map_region_count(map));

    mapcore_map_free(map);
    return 0;
}
