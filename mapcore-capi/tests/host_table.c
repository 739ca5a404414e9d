/*
 * A host written in C (mmap, mprotect, madvise, munmap behind a mapcore_host table) that
 * counts its calls and fails the ones a test chooses: code JIT'd through it runs; a failed
 * protect rolls everything back (pages read-write, finalize actions undone, nothing recorded);
 * a failed rollback quarantines the pages; failed reserve and release change nothing;
 * capabilities reach the map; bad tables are refused.
 */
#include "check.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

/* The host's state: the table's ctx. */
struct host {
    uint32_t caps;
    size_t page;
    int protects, discards, writes, fill_zeros, flushes, reserves, releases;
    int fail_protect[4]; /* 1-based numbers of the protect calls to fail, 0 = none */
    int fail_reserve, fail_release;
};

static struct host *as_host(void *ctx) { return (struct host *)ctx; }

static size_t h_page_size(void *ctx) { return as_host(ctx)->page; }

static uint32_t h_capabilities(void *ctx) { return as_host(ctx)->caps; }

static int32_t h_reserve(void *ctx, size_t size, uintptr_t *base) {
    struct host *h = as_host(ctx);
    h->reserves++;
    if (h->fail_reserve) {
        return ENOMEM;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        return errno;
    }
    *base = (uintptr_t)p;
    return 0;
}

static int32_t h_release(void *ctx, uintptr_t base, size_t size) {
    struct host *h = as_host(ctx);
    h->releases++;
    if (h->fail_release) {
        return EBUSY;
    }
    return munmap((void *)base, size) == 0 ? 0 : errno;
}

static int32_t h_protect(void *ctx, uintptr_t addr, size_t len, uint8_t prot) {
    struct host *h = as_host(ctx);
    h->protects++;
    for (int i = 0; i < 4; i++) {
        if (h->fail_protect[i] == h->protects) {
            return EACCES;
        }
    }
    int p = (prot & MAPCORE_GROUP_READ ? PROT_READ : 0) | (prot & MAPCORE_GROUP_WRITE ? PROT_WRITE : 0) |
            (prot & MAPCORE_GROUP_EXEC ? PROT_EXEC : 0);
    return mprotect((void *)addr, len, p) == 0 ? 0 : errno;
}

static int32_t h_discard(void *ctx, uintptr_t addr, size_t len) {
    struct host *h = as_host(ctx);
    h->discards++;
    if (!(h->caps & MAPCORE_CAP_DISCARD)) {
        return 0; /* allowed: the map zero-fills reused pages itself */
    }
    return madvise((void *)addr, len, MADV_DONTNEED) == 0 ? 0 : errno;
}

static void h_write(void *ctx, uintptr_t addr, const uint8_t *bytes, size_t len) {
    as_host(ctx)->writes++;
    memcpy((void *)addr, bytes, len);
}

static void h_fill_zero(void *ctx, uintptr_t addr, size_t len) {
    as_host(ctx)->fill_zeros++;
    memset((void *)addr, 0, len);
}

static int32_t h_flush_icache(void *ctx, uintptr_t addr, size_t len) {
    as_host(ctx)->flushes++;
    __builtin___clear_cache((char *)addr, (char *)addr + len);
    return 0;
}

static mapcore_host table_for(struct host *h) {
    mapcore_host t = {
        .ctx = h,
        .page_size = h_page_size,
        .capabilities = h_capabilities,
        .reserve = h_reserve,
        .release = h_release,
        .protect = h_protect,
        .discard = h_discard,
        .write = h_write,
        .fill_zero = h_fill_zero,
        .flush_icache = h_flush_icache,
    };
    return t;
}

static mapcore_map *new_host_map(struct host *h) {
    memset(h, 0, sizeof *h);
    h->page = (size_t)sysconf(_SC_PAGESIZE);
    h->caps = MAPCORE_CAP_DISCARD | MAPCORE_CAP_REUSE_EXECUTABLE;
    mapcore_host t = table_for(h);
    mapcore_map *map = NULL;
    mapcore_error err;
    CHECK_STATUS(mapcore_map_new_host(&t, NULL, &map, &err), MAPCORE_OK, &err);
    if (map == NULL) {
        exit(2);
    }
    return map;
}

#if defined(__x86_64__)
static const uint8_t RETURN_7[] = {0xb8, 0x07, 0x00, 0x00, 0x00, 0xc3}; /* mov eax, 7; ret */
#elif defined(__aarch64__)
static const uint8_t RETURN_7[] = {0xe0, 0x00, 0x80, 0x52, 0xc0, 0x03, 0x5f, 0xd6}; /* mov w0, #7; ret */
#else
#error "machine code for x86-64 and aarch64 only"
#endif
static const uint8_t DATA[] = "read-only data";

static int live_registrations;

static int32_t do_register(void *ctx, const uint8_t *args, size_t len) {
    (void)ctx, (void)args, (void)len;
    live_registrations++;
    return 0;
}

static int32_t do_deregister(void *ctx, const uint8_t *args, size_t len) {
    (void)ctx, (void)args, (void)len;
    live_registrations--;
    return 0;
}

/* Code (r-x) in page 0, data (r--) in page 2, one register/deregister pair. */
static mapcore_status init_code(mapcore_map *map, uintptr_t base, uintptr_t *key, mapcore_error *err) {
    size_t page = mapcore_map_page_size(map);
    mapcore_segment s[2] = {
        {MAPCORE_GROUP_READ | MAPCORE_GROUP_EXEC, base, sizeof RETURN_7, RETURN_7, sizeof RETURN_7},
        {MAPCORE_GROUP_READ, base + 2 * page, sizeof DATA, DATA, sizeof DATA},
    };
    mapcore_action_pair pair = {.finalize = {.func = do_register}, .dealloc = {.func = do_deregister}};
    return mapcore_map_initialize(map, s, 2, &pair, 1, key, err);
}

static void jit_through_c_host(void) {
    struct host h;
    mapcore_map *map = new_host_map(&h);
    mapcore_error err;
    uintptr_t base, key;
    CHECK(mapcore_map_page_size(map) == h.page);
    CHECK_STATUS(mapcore_map_reserve(map, 4 * h.page, &base, &err), MAPCORE_OK, &err);
    CHECK(h.reserves == 1);
    CHECK_STATUS(init_code(map, base, &key, &err), MAPCORE_OK, &err);
    CHECK(key == base);
    CHECK(h.writes == 2 && h.protects == 2 && h.flushes == 1);
    CHECK_STR(prot_at(base), "r-x");
    CHECK_STR(prot_at(base + 2 * h.page), "r--");
    CHECK(live_registrations == 1);
    int (*f)(void) = (int (*)(void))key;
    CHECK(f() == 7);

    CHECK_STATUS(mapcore_map_deinitialize(map, key, &err), MAPCORE_OK, &err);
    CHECK(live_registrations == 0);
    CHECK_STR(prot_at(base), "rw-");
    CHECK(h.discards >= 1);
    CHECK(all_zero(base, 4 * h.page));

    /* Reuse at once, then let free release it: the live region's dealloc runs. */
    CHECK_STATUS(init_code(map, base, &key, &err), MAPCORE_OK, &err);
    CHECK(f() == 7);
    mapcore_map_free(map);
    CHECK(live_registrations == 0);
    CHECK(h.releases == 1);
    CHECK_STR(prot_at(base), "---");
}

static void failed_protect_rolls_back(void) {
    struct host h;
    mapcore_map *map = new_host_map(&h);
    mapcore_error err;
    uintptr_t base, key = 0;
    CHECK_STATUS(mapcore_map_reserve(map, 4 * h.page, &base, &err), MAPCORE_OK, &err);

    /* The second protect of initialize (the data page) fails. */
    h.fail_protect[0] = h.protects + 2;
    CHECK_STATUS(init_code(map, base, &key, &err), MAPCORE_ERR_HOST, &err);
    CHECK(err.host_op == MAPCORE_HOST_OP_PROTECT);
    CHECK(err.code == EACCES);
    CHECK(err.index == 1); /* the data segment */
    CHECK(!err.quarantined);
    CHECK_STR(err.message, "host Protect failed on segment 1: Permission denied (os error 13)");
    CHECK(key == 0);
    /* Rolled back: nothing recorded, no finalize action kept, every page read-write and zero. */
    CHECK(mapcore_map_region_count(map) == 0);
    CHECK(live_registrations == 0);
    CHECK_STR(prot_at(base), "rw-");
    CHECK_STR(prot_at(base + 2 * h.page), "rw-");
    CHECK(all_zero(base, 4 * h.page));

    /* The same request succeeds now and the code runs. */
    CHECK_STATUS(init_code(map, base, &key, &err), MAPCORE_OK, &err);
    CHECK(((int (*)(void))key)() == 7);
    CHECK_STATUS(mapcore_map_deinitialize(map, key, &err), MAPCORE_OK, &err);

    /* Now the protect fails and so does the rollback's reset: the pages are quarantined. */
    h.fail_protect[0] = h.protects + 2;
    h.fail_protect[1] = h.protects + 3;
    CHECK_STATUS(init_code(map, base, &key, &err), MAPCORE_ERR_HOST, &err);
    CHECK(err.quarantined);
    CHECK(mapcore_map_region_count(map) == 0);
    CHECK(live_registrations == 0);
    /* Quarantined pages are never handed out again. */
    CHECK_STATUS(init_code(map, base, &key, &err), MAPCORE_ERR_OVERLAP, &err);
    /* Release still gives the whole slab back. */
    CHECK_STATUS(mapcore_map_release(map, base, &err), MAPCORE_OK, &err);
    CHECK_STR(prot_at(base), "---");
    mapcore_map_free(map);
}

static void failed_reserve_and_release(void) {
    struct host h;
    mapcore_map *map = new_host_map(&h);
    mapcore_error err;
    uintptr_t base = 0;

    h.fail_reserve = 1;
    CHECK_STATUS(mapcore_map_reserve(map, 4 * h.page, &base, &err), MAPCORE_ERR_HOST, &err);
    CHECK(err.host_op == MAPCORE_HOST_OP_RESERVE && err.code == ENOMEM);
    CHECK(err.index == MAPCORE_NO_INDEX);
    CHECK(mapcore_map_slab_count(map) == 0 && base == 0);
    h.fail_reserve = 0;

    CHECK_STATUS(mapcore_map_reserve(map, 4 * h.page, &base, &err), MAPCORE_OK, &err);
    h.fail_release = 1;
    CHECK_STATUS(mapcore_map_release(map, base, &err), MAPCORE_ERR_HOST, &err);
    CHECK(err.host_op == MAPCORE_HOST_OP_RELEASE && err.code == EBUSY);
    CHECK(mapcore_map_slab_count(map) == 1); /* still reserved: the release may be retried */
    h.fail_release = 0;
    CHECK_STATUS(mapcore_map_release(map, base, &err), MAPCORE_OK, &err);
    CHECK(mapcore_map_slab_count(map) == 0);
    mapcore_map_free(map);
}

static void capabilities_reach_the_map(void) {
    struct host h;
    mapcore_map *map = new_host_map(&h);
    mapcore_error err;
    uintptr_t base, key;
    mapcore_map_free(map);

    /* Without MAPCORE_CAP_DISCARD: discard is never called, reused pages are zero-filled. */
    memset(&h, 0, sizeof h);
    h.page = (size_t)sysconf(_SC_PAGESIZE);
    h.caps = MAPCORE_CAP_REUSE_EXECUTABLE;
    mapcore_host t = table_for(&h);
    CHECK_STATUS(mapcore_map_new_host(&t, NULL, &map, &err), MAPCORE_OK, &err);
    CHECK_STATUS(mapcore_map_reserve(map, 4 * h.page, &base, &err), MAPCORE_OK, &err);
    CHECK_STATUS(init_code(map, base, &key, &err), MAPCORE_OK, &err);
    CHECK_STATUS(mapcore_map_deinitialize(map, key, &err), MAPCORE_OK, &err);
    CHECK(h.discards == 0);
    CHECK(!all_zero(base, h.page)); /* the old code is still there... */
    int fills = h.fill_zeros;
    mapcore_segment empty = {MAPCORE_GROUP_READ, base, h.page, NULL, 0};
    CHECK_STATUS(mapcore_map_initialize(map, &empty, 1, NULL, 0, &key, &err), MAPCORE_OK, &err);
    CHECK(h.fill_zeros > fills);
    CHECK(all_zero(base, h.page)); /* ...until initialize zero-fills the reused page */
    mapcore_map_free(map);

    /* Without MAPCORE_CAP_REUSE_EXECUTABLE: pages that were executable are not reused. */
    memset(&h, 0, sizeof h);
    h.page = (size_t)sysconf(_SC_PAGESIZE);
    h.caps = MAPCORE_CAP_DISCARD;
    t = table_for(&h);
    CHECK_STATUS(mapcore_map_new_host(&t, NULL, &map, &err), MAPCORE_OK, &err);
    CHECK_STATUS(mapcore_map_reserve(map, 4 * h.page, &base, &err), MAPCORE_OK, &err);
    CHECK_STATUS(init_code(map, base, &key, &err), MAPCORE_OK, &err);
    CHECK_STATUS(mapcore_map_deinitialize(map, key, &err), MAPCORE_OK, &err);
    CHECK_STATUS(init_code(map, base, &key, &err), MAPCORE_ERR_OVERLAP, &err);
    CHECK(err.index == 0); /* the code page */
    mapcore_map_free(map);
}

static void bad_tables_are_refused(void) {
    struct host h;
    memset(&h, 0, sizeof h);
    h.page = (size_t)sysconf(_SC_PAGESIZE);
    mapcore_map *map = NULL;
    mapcore_error err;

    mapcore_host t = table_for(&h);
    t.protect = NULL;
    CHECK_STATUS(mapcore_map_new_host(&t, NULL, &map, &err), MAPCORE_ERR_INVALID_ARGUMENT, &err);
    CHECK_STR(err.message, "host table entry `protect` is null");
    t = table_for(&h);
    t.flush_icache = NULL;
    CHECK_STATUS(mapcore_map_new_host(&t, NULL, &map, &err), MAPCORE_ERR_INVALID_ARGUMENT, &err);
    CHECK_STR(err.message, "host table entry `flush_icache` is null");

    t = table_for(&h);
    h.page = 3 * 4096;
    CHECK_STATUS(mapcore_map_new_host(&t, NULL, &map, &err), MAPCORE_ERR_INVALID_ARGUMENT, &err);
    CHECK_STR(err.message, "host page size 0x3000 is zero or not a power of two");
    h.page = 0;
    CHECK_STATUS(mapcore_map_new_host(&t, NULL, &map, &err), MAPCORE_ERR_INVALID_ARGUMENT, &err);
    h.page = 4096;
    h.caps = 0x80;
    CHECK_STATUS(mapcore_map_new_host(&t, NULL, &map, &err), MAPCORE_ERR_INVALID_ARGUMENT, &err);
    CHECK_STR(err.message, "host capabilities 0x80 have unknown bits");
    CHECK_STATUS(mapcore_map_new_host(NULL, NULL, &map, &err), MAPCORE_ERR_INVALID_ARGUMENT, &err);
    CHECK_STR(err.message, "`host` is null");
    CHECK(map == NULL);
    CHECK(h.reserves == 0); /* nothing was reserved by a refused table */
}

int main(void) {
    jit_through_c_host();
    failed_protect_rolls_back();
    failed_reserve_and_release();
    capabilities_reach_the_map();
    bad_tables_are_refused();
    return finish("host_table");
}
