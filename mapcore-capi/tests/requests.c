/*
 * Bad requests through the C ABI, on the built-in Linux host: each is refused with the right
 * status, index, address and message, and changes nothing (no region recorded, no finalize
 * action run, every page still read-write and zero as /proc/self/maps and the bytes show).
 */
#include "check.h"

static mapcore_map *map;
static size_t page;
static uintptr_t base;  /* an 8-page slab: pages 0-5 stay free, 6-7 hold live regions */
static uintptr_t other; /* a second, 2-page slab */
static int finalize_runs;

static int32_t count_finalize(void *ctx, const uint8_t *args, size_t len) {
    (void)ctx, (void)args, (void)len;
    finalize_runs++;
    return 0;
}

static const uint8_t BYTES[8] = {1, 2, 3, 4, 5, 6, 7, 8};

static mapcore_segment seg(uint8_t group, uintptr_t addr, size_t size) {
    mapcore_segment s = {group, addr, size, BYTES, size < sizeof BYTES ? size : sizeof BYTES};
    return s;
}

/* The free pages 0-5 of `base` are read-write and zero. */
static int free_pages_untouched(void) {
    for (size_t i = 0; i < 6; i++) {
        if (strcmp(prot_at(base + i * page), "rw-") != 0 || !all_zero(base + i * page, page)) {
            return 0;
        }
    }
    return 1;
}

/* Initializes `segments` with one finalize action and checks that it is refused with `want`,
 * naming `index`, with `message` (unless NULL), and that nothing changed. */
static void refused(const mapcore_segment *segments, size_t count, mapcore_status want,
                    size_t index, const char *message, int line) {
    mapcore_action_pair pair = {.finalize = {.func = count_finalize}};
    mapcore_error err;
    size_t regions = mapcore_map_region_count(map);
    uintptr_t key = 12345;
    int failed_before = checks_failed;
    mapcore_status got = mapcore_map_initialize(map, segments, count, &pair, 1, &key, &err);
    CHECK_STATUS(got, want, &err);
    if (got == MAPCORE_OK) {
        fprintf(stderr, "  (the request of line %d)\n", line);
        return;
    }
    CHECK(err.status == want);
    CHECK(err.index == index);
    if (message != NULL) {
        CHECK_STR(err.message, message);
    }
    CHECK(key == 12345); /* not written on failure */
    CHECK(mapcore_map_region_count(map) == regions);
    CHECK(finalize_runs == 0);
    CHECK(free_pages_untouched());
    if (checks_failed != failed_before) {
        fprintf(stderr, "  (the request of line %d: index %zu, message \"%s\")\n", line, err.index,
                err.message);
    }
}

static void reserve_errors(void) {
    mapcore_error err;
    uintptr_t got = 7;
    size_t slabs = mapcore_map_slab_count(map);

    CHECK_STATUS(mapcore_map_reserve(map, 0, &got, &err), MAPCORE_ERR_INVALID_SIZE, &err);
    CHECK(err.addr == 0);
    CHECK_STR(err.message, "reservation size 0x0 is zero or not a page multiple");
    CHECK_STATUS(mapcore_map_reserve(map, page + 1, &got, &err), MAPCORE_ERR_INVALID_SIZE, &err);
    CHECK(err.addr == page + 1);
    CHECK(err.index == MAPCORE_NO_INDEX);
    CHECK(got == 7);
    CHECK(mapcore_map_slab_count(map) == slabs);

    /* A map whose maximum reservation is 4 pages. */
    mapcore_config small = mapcore_config_default();
    small.max_reservation = 4 * page;
    mapcore_map *limited = new_libc_map(&small);
    CHECK_STATUS(mapcore_map_reserve(limited, 8 * page, &got, &err), MAPCORE_ERR_TOO_LARGE, &err);
    CHECK(err.addr == 8 * page);
    CHECK(mapcore_map_slab_count(limited) == 0);
    CHECK_STATUS(mapcore_map_reserve(limited, 4 * page, &got, &err), MAPCORE_OK, &err);
    CHECK(mapcore_map_slab_count(limited) == 1);
    mapcore_map_free(limited);
}

static void initialize_errors(void) {
    mapcore_segment s[MAPCORE_MAX_SEGMENTS + 1];

    s[0] = seg(MAPCORE_GROUP_READ, base + 1, 10);
    refused(s, 1, MAPCORE_ERR_MISALIGNED, 0, "segment 0 is not page-aligned", __LINE__);

    s[0] = seg(MAPCORE_GROUP_READ, base, 4);
    s[0].content_len = 8;
    refused(s, 1, MAPCORE_ERR_CONTENT_TOO_LONG, 0, "segment 0 has more content than size",
            __LINE__);

    s[0] = seg(MAPCORE_GROUP_READ, base, page);
    s[1] = seg(MAPCORE_GROUP_READ, (uintptr_t)0x10000, page);
    refused(s, 2, MAPCORE_ERR_NOT_IN_SLAB, 1, "segment 1 is outside every slab", __LINE__);

    s[0] = seg(MAPCORE_GROUP_READ, base + 5 * page, 4 * page); /* runs past the slab's end */
    refused(s, 1, MAPCORE_ERR_SPANS_SLABS, 0, "segment 0 is not inside the request's slab",
            __LINE__);
    s[0] = seg(MAPCORE_GROUP_READ, base, page);
    s[1] = seg(MAPCORE_GROUP_READ, other, page); /* another slab */
    /* The segment in another slab than the lowest segment's is named. */
    refused(s, 2, MAPCORE_ERR_SPANS_SLABS, other < base ? 0 : 1, NULL, __LINE__);

    s[0] = seg(MAPCORE_GROUP_READ, base, page + 1); /* covers pages 0 and 1 */
    s[1] = seg(MAPCORE_GROUP_READ | MAPCORE_GROUP_WRITE, base + page, page);
    refused(s, 2, MAPCORE_ERR_SHARED_PAGE, 1, "segment 1 shares a page with another segment",
            __LINE__);

    s[0] = seg(MAPCORE_GROUP_READ, base, page);
    s[1] = seg(MAPCORE_GROUP_READ, base + 6 * page, page); /* the live region */
    refused(s, 2, MAPCORE_ERR_OVERLAP, 1, "segment 1 overlaps memory that is in use", __LINE__);

    s[0] = seg(MAPCORE_GROUP_READ | MAPCORE_GROUP_WRITE | MAPCORE_GROUP_EXEC, base, page);
    refused(s, 1, MAPCORE_ERR_WRITE_EXECUTE, 0, "segment 0 asks for write and execute together",
            __LINE__);

    s[0] = seg(MAPCORE_GROUP_READ | MAPCORE_GROUP_FINALIZE, base, page);
    refused(s, 1, MAPCORE_ERR_NO_STANDARD_SEGMENT, MAPCORE_NO_INDEX,
            "initialize request has no standard-lifetime segment", __LINE__);

    s[0] = seg(MAPCORE_GROUP_READ, base, SIZE_MAX - page);
    refused(s, 1, MAPCORE_ERR_OVERFLOW, 0, "segment 0 overflows the address space", __LINE__);

    /* Unknown group bits: LLVM's wire has four; anything else is refused, not ignored. */
    s[0] = seg(MAPCORE_GROUP_READ, base, page);
    s[1] = seg(0x10 | MAPCORE_GROUP_READ, base + page, page);
    refused(s, 2, MAPCORE_ERR_INVALID_ARGUMENT, 1, "segment 1 has unknown group bits 0x11",
            __LINE__);

    s[0] = seg(MAPCORE_GROUP_READ, base, page);
    s[0].content = NULL;
    refused(s, 1, MAPCORE_ERR_INVALID_ARGUMENT, 0, "segment 0 has content_len > 0 and null content",
            __LINE__);

    for (size_t i = 0; i <= MAPCORE_MAX_SEGMENTS; i++) {
        s[i] = seg(MAPCORE_GROUP_READ, base, 0);
    }
    refused(s, MAPCORE_MAX_SEGMENTS + 1, MAPCORE_ERR_CAPACITY_EXCEEDED, MAPCORE_NO_INDEX,
            "capacity exceeded: Segments", __LINE__);

    /* Errors of the C boundary: NULL arrays and handles. */
    mapcore_error err;
    CHECK_STATUS(mapcore_map_initialize(map, NULL, 1, NULL, 0, NULL, &err),
                 MAPCORE_ERR_INVALID_ARGUMENT, &err);
    CHECK_STR(err.message, "`segments` is null");
    s[0] = seg(MAPCORE_GROUP_READ, base, page);
    CHECK_STATUS(mapcore_map_initialize(NULL, s, 1, NULL, 0, NULL, &err),
                 MAPCORE_ERR_INVALID_ARGUMENT, &err);
    CHECK_STR(err.message, "`map` is null");
    CHECK_STATUS(mapcore_map_initialize(map, s, 1, NULL, 2, NULL, &err),
                 MAPCORE_ERR_INVALID_ARGUMENT, &err);
    CHECK_STR(err.message, "`actions` is null");
    /* err may be NULL: the status alone still comes back. */
    s[0].addr = base + 1;
    CHECK(mapcore_map_initialize(map, s, 1, NULL, 0, NULL, NULL) == MAPCORE_ERR_MISALIGNED);
    CHECK(free_pages_untouched());
}

static void action_errors(void) {
    mapcore_segment s = seg(MAPCORE_GROUP_READ, base, page);
    mapcore_action_pair pairs[MAPCORE_MAX_ACTION_PAIRS + 1];
    memset(pairs, 0, sizeof pairs);
    for (size_t i = 0; i <= MAPCORE_MAX_ACTION_PAIRS; i++) {
        pairs[i].finalize.func = count_finalize;
    }
    mapcore_error err;
    CHECK_STATUS(mapcore_map_initialize(map, &s, 1, pairs, MAPCORE_MAX_ACTION_PAIRS + 1, NULL, &err),
                 MAPCORE_ERR_CAPACITY_EXCEEDED, &err);
    CHECK(err.limit == MAPCORE_LIMIT_ACTION_PAIRS);
    CHECK_STR(err.message, "capacity exceeded: ActionPairs");

    uint8_t args[MAPCORE_MAX_ACTION_ARGS + 1] = {0};
    pairs[2].dealloc.func = count_finalize;
    pairs[2].dealloc.args = args;
    pairs[2].dealloc.args_len = sizeof args;
    CHECK_STATUS(mapcore_map_initialize(map, &s, 1, pairs, 3, NULL, &err),
                 MAPCORE_ERR_ARGS_TOO_LONG, &err);
    CHECK(err.index == 2);
    CHECK_STR(err.message, "an action of pair 2 has 41 argument bytes, more than 40");

    pairs[2].dealloc.args = NULL;
    pairs[2].dealloc.args_len = 4;
    CHECK_STATUS(mapcore_map_initialize(map, &s, 1, pairs, 3, NULL, &err),
                 MAPCORE_ERR_INVALID_ARGUMENT, &err);
    CHECK(err.index == 2);
    CHECK(finalize_runs == 0);
    CHECK(mapcore_map_region_count(map) == 2);
    CHECK(free_pages_untouched());
}

static void address_errors(uintptr_t live, uintptr_t live2) {
    mapcore_error err;
    size_t slabs = mapcore_map_slab_count(map), regions = mapcore_map_region_count(map);

    CHECK_STATUS(mapcore_map_deinitialize(map, base + page, &err), MAPCORE_ERR_UNKNOWN_KEY, &err);
    CHECK(err.addr == base + page);
    CHECK_STATUS(mapcore_map_deinitialize(map, 0x10000, &err), MAPCORE_ERR_NOT_IN_ANY_SLAB, &err);
    CHECK_STR(err.message, "0x10000 is not inside any slab");
    /* `live2` is two pages long: its second page is inside it but is not its key. */
    CHECK_STATUS(mapcore_map_deinitialize(map, live2 + page, &err), MAPCORE_ERR_INTERIOR_ADDRESS,
                 &err);
    CHECK(err.addr == live2 + page);
    CHECK_STATUS(mapcore_map_release(map, base + page, &err), MAPCORE_ERR_NOT_SLAB_BASE, &err);
    CHECK_STATUS(mapcore_map_release(map, 0x10000, &err), MAPCORE_ERR_NOT_IN_ANY_SLAB, &err);
    CHECK_STATUS(mapcore_map_release(NULL, base, &err), MAPCORE_ERR_INVALID_ARGUMENT, &err);

    CHECK(mapcore_map_slab_count(map) == slabs);
    CHECK(mapcore_map_region_count(map) == regions);
    CHECK(strcmp(prot_at(live), "r--") == 0);
    CHECK(memcmp((const void *)live, BYTES, sizeof BYTES) == 0);
}

static void names_and_config(void) {
    CHECK_STR(mapcore_status_name(MAPCORE_OK), "MAPCORE_OK");
    CHECK_STR(mapcore_status_name(MAPCORE_ERR_OVERLAP), "MAPCORE_ERR_OVERLAP");
    CHECK_STR(mapcore_status_name(MAPCORE_ERR_BATCH), "MAPCORE_ERR_BATCH");
    CHECK_STR(mapcore_status_name(-1), "MAPCORE_ERR_UNKNOWN");
    CHECK_STR(mapcore_status_name(1000), "MAPCORE_ERR_UNKNOWN");

    mapcore_error err;
    CHECK_STATUS(mapcore_map_new_libc(NULL, NULL, &err), MAPCORE_ERR_INVALID_ARGUMENT, &err);
    CHECK_STR(err.message, "`out` is null");

    mapcore_config config = mapcore_config_default();
    CHECK(!config.allow_write_exec && !config.retain_contents && config.max_reservation > 0);

    /* allow_write_exec lets a write+execute segment through. */
    config.allow_write_exec = true;
    mapcore_map *wx = new_libc_map(&config);
    uintptr_t slab, key;
    CHECK_STATUS(mapcore_map_reserve(wx, page, &slab, &err), MAPCORE_OK, &err);
    mapcore_segment s = seg(MAPCORE_GROUP_READ | MAPCORE_GROUP_WRITE | MAPCORE_GROUP_EXEC, slab, page);
    CHECK_STATUS(mapcore_map_initialize(wx, &s, 1, NULL, 0, &key, &err), MAPCORE_OK, &err);
    CHECK_STR(prot_at(slab), "rwx");
    mapcore_map_free(wx);
    CHECK_STR(prot_at(slab), "---"); /* freeing the map unmapped the slab */

    /* A zeroed config is the defaults. */
    mapcore_config zero;
    memset(&zero, 0, sizeof zero);
    mapcore_map *z = new_libc_map(&zero);
    CHECK_STATUS(mapcore_map_reserve(z, 1024 * page, &slab, &err), MAPCORE_OK, &err);
    mapcore_map_free(z);

    /* Functions of a NULL map report nothing rather than crash. */
    CHECK(mapcore_map_page_size(NULL) == 0);
    CHECK(mapcore_map_slab_count(NULL) == 0);
    mapcore_map_free(NULL);
}

int main(void) {
    mapcore_error err;
    map = new_libc_map(NULL);
    page = mapcore_map_page_size(map);
    CHECK(page >= 4096 && (page & (page - 1)) == 0);
    CHECK_STATUS(mapcore_map_reserve(map, 8 * page, &base, &err), MAPCORE_OK, &err);
    CHECK_STATUS(mapcore_map_reserve(map, 2 * page, &other, &err), MAPCORE_OK, &err);

    /* Two live regions at the end of the slab: one page read-only, and (via a second segment)
     * page 7. */
    uintptr_t live, live2;
    mapcore_segment s = seg(MAPCORE_GROUP_READ, base + 6 * page, page);
    CHECK_STATUS(mapcore_map_initialize(map, &s, 1, NULL, 0, &live, &err), MAPCORE_OK, &err);
    CHECK(live == base + 6 * page);
    mapcore_segment s2 = seg(MAPCORE_GROUP_READ, other, 2 * page);
    CHECK_STATUS(mapcore_map_initialize(map, &s2, 1, NULL, 0, &live2, &err), MAPCORE_OK, &err);

    reserve_errors();
    initialize_errors();
    action_errors();
    address_errors(live, live2);
    names_and_config();

    /* After all that, the free pages take a real request. */
    mapcore_segment ok = seg(MAPCORE_GROUP_READ, base, page);
    uintptr_t key;
    CHECK_STATUS(mapcore_map_initialize(map, &ok, 1, NULL, 0, &key, &err), MAPCORE_OK, &err);
    CHECK(key == base && strcmp(prot_at(base), "r--") == 0);
    CHECK_STATUS(mapcore_map_shutdown(map, &err), MAPCORE_OK, &err);
    CHECK(mapcore_map_slab_count(map) == 0);
    mapcore_map_free(map);
    return finish("requests");
}
