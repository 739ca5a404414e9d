/*
 * The batch forms through the C ABI: deinitialize_multiple and release_multiple report each
 * failing entry in the errors array at its own index (the others MAPCORE_OK), return
 * MAPCORE_ERR_BATCH with the number of failures, and still do every entry that can be done.
 */
#include "check.h"

static int32_t fail_dealloc(void *ctx, const uint8_t *args, size_t len) {
    (void)args, (void)len;
    ++*(int *)ctx;
    return 9;
}

static void deinitialize_multiple(void) {
    mapcore_map *map = new_libc_map(NULL);
    size_t page = mapcore_map_page_size(map);
    mapcore_error err, errors[6];
    uintptr_t base, keys[4];
    CHECK_STATUS(mapcore_map_reserve(map, 8 * page, &base, &err), MAPCORE_OK, &err);

    /* Four adjacent regions of one page each; region 3 has a dealloc action that fails. */
    int dealloc_runs = 0;
    for (size_t i = 0; i < 4; i++) {
        mapcore_segment s = {MAPCORE_GROUP_READ, base + i * page, page, NULL, 0};
        mapcore_action_pair pair = {.dealloc = {.func = fail_dealloc, .ctx = &dealloc_runs}};
        CHECK_STATUS(mapcore_map_initialize(map, &s, 1, &pair, i == 3 ? 1 : 0, &keys[i], &err),
                     MAPCORE_OK, &err);
    }
    CHECK(mapcore_map_region_count(map) == 4);

    /* Entries: ok, outside every slab, ok (repeated at 4), the failing dealloc, ok. The
     * batch runs back to front, so entry 4 deinitializes keys[0] and entry 0 finds it gone. */
    uintptr_t batch[6] = {keys[0], 0x10000, keys[1], keys[3], keys[0], keys[2]};
    memset(errors, 0xab, sizeof errors);
    CHECK_STATUS(mapcore_map_deinitialize_multiple(map, batch, 6, errors, &err), MAPCORE_ERR_BATCH,
                 &err);
    CHECK(err.count == 3);
    CHECK_STR(err.message, "3 batch entries failed");
    CHECK(errors[0].status == MAPCORE_ERR_UNKNOWN_KEY && errors[0].addr == keys[0]);
    CHECK(errors[1].status == MAPCORE_ERR_NOT_IN_ANY_SLAB && errors[1].addr == 0x10000);
    CHECK_STR(errors[1].message, "0x10000 is not inside any slab");
    CHECK(errors[2].status == MAPCORE_OK && errors[2].message[0] == '\0');
    CHECK(errors[3].status == MAPCORE_ERR_DEALLOC_FAILED && errors[3].count == 1);
    CHECK_STR(errors[3].message, "1 dealloc actions failed");
    CHECK(errors[4].status == MAPCORE_OK);
    CHECK(errors[5].status == MAPCORE_OK && errors[5].index == MAPCORE_NO_INDEX);
    /* Every region is gone, the failing dealloc ran once, and the pages are free again. */
    CHECK(mapcore_map_region_count(map) == 0);
    CHECK(dealloc_runs == 1);
    for (size_t i = 0; i < 4; i++) {
        CHECK_STR(prot_at(base + i * page), "rw-");
    }
    CHECK(all_zero(base, 4 * page));

    /* A batch with no failure returns MAPCORE_OK; errors may be NULL; empty is fine. */
    for (size_t i = 0; i < 2; i++) {
        mapcore_segment s = {MAPCORE_GROUP_READ, base + i * page, page, NULL, 0};
        CHECK_STATUS(mapcore_map_initialize(map, &s, 1, NULL, 0, &keys[i], &err), MAPCORE_OK, &err);
    }
    CHECK_STATUS(mapcore_map_deinitialize_multiple(map, keys, 2, NULL, &err), MAPCORE_OK, &err);
    CHECK(mapcore_map_region_count(map) == 0);
    CHECK_STATUS(mapcore_map_deinitialize_multiple(map, NULL, 0, NULL, &err), MAPCORE_OK, &err);
    CHECK_STATUS(mapcore_map_deinitialize_multiple(map, NULL, 2, errors, &err),
                 MAPCORE_ERR_INVALID_ARGUMENT, &err);
    CHECK_STR(err.message, "`addrs` is null");

    /* Without an errors array the count is still reported. */
    CHECK_STATUS(mapcore_map_deinitialize_multiple(map, keys, 2, NULL, &err), MAPCORE_ERR_BATCH,
                 &err);
    CHECK(err.count == 2);
    mapcore_map_free(map);
}

static void release_multiple(void) {
    mapcore_map *map = new_libc_map(NULL);
    size_t page = mapcore_map_page_size(map);
    mapcore_error err, errors[4];
    uintptr_t slabs[3];
    for (size_t i = 0; i < 3; i++) {
        CHECK_STATUS(mapcore_map_reserve(map, 2 * page, &slabs[i], &err), MAPCORE_OK, &err);
    }
    /* A region with a dealloc action in slab 1: release runs it. */
    int dealloc_runs = 0;
    mapcore_segment s = {MAPCORE_GROUP_READ, slabs[1], page, NULL, 0};
    mapcore_action_pair pair = {.dealloc = {.func = fail_dealloc, .ctx = &dealloc_runs}};
    CHECK_STATUS(mapcore_map_initialize(map, &s, 1, &pair, 1, NULL, &err), MAPCORE_OK, &err);

    /* Back to front: entry 2 (inside slab 1, not its base) is refused before entry 1
     * releases slab 1. */
    uintptr_t batch[4] = {slabs[0], slabs[1], slabs[1] + page, slabs[2]};
    CHECK_STATUS(mapcore_map_release_multiple(map, batch, 4, errors, &err), MAPCORE_ERR_BATCH, &err);
    CHECK(err.count == 2);
    CHECK(errors[0].status == MAPCORE_OK);
    CHECK(errors[1].status == MAPCORE_ERR_DEALLOC_FAILED && errors[1].count == 1);
    CHECK(errors[2].status == MAPCORE_ERR_NOT_SLAB_BASE && errors[2].addr == slabs[1] + page);
    CHECK(errors[3].status == MAPCORE_OK);
    CHECK(dealloc_runs == 1);
    CHECK(mapcore_map_slab_count(map) == 0);
    for (size_t i = 0; i < 3; i++) {
        CHECK_STR(prot_at(slabs[i]), "---");
    }
    /* Releasing them again: every entry fails, each with its own error. */
    CHECK_STATUS(mapcore_map_release_multiple(map, slabs, 3, errors, &err), MAPCORE_ERR_BATCH, &err);
    CHECK(err.count == 3);
    for (size_t i = 0; i < 3; i++) {
        CHECK(errors[i].status == MAPCORE_ERR_NOT_IN_ANY_SLAB && errors[i].addr == slabs[i]);
    }
    mapcore_map_free(map);
}

int main(void) {
    deinitialize_multiple();
    release_multiple();
    return finish("batch");
}
