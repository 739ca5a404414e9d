/*
 * Finalize and dealloc actions through the C ABI: finalize actions run in order after the
 * pages are protected; every kept dealloc action runs exactly once, newest first, at
 * deinitialize, release, shutdown or free; a failing finalize action undoes the pairs before
 * it; failing dealloc actions are reported but do not stop the others; ctx and argument bytes
 * arrive intact; actions may call back into the map; Finalize-lifetime segments live only
 * while the finalize actions run.
 */
#include "check.h"

/* What the actions did, in order: "f0" = finalize of pair 0, "d0" = its dealloc. */
static char events[512];

static void note(char what, const uint8_t *args, size_t len) {
    size_t n = strlen(events);
    if (n + 3 < sizeof events) {
        events[n] = what;
        events[n + 1] = len > 0 ? (char)('0' + args[0]) : '?';
        events[n + 2] = '\0';
    }
}

/* args[0]: the pair's number; args[1], if present and non-zero: fail with that code. */
static int32_t on_finalize(void *ctx, const uint8_t *args, size_t len) {
    (void)ctx;
    note('f', args, len);
    return len > 1 ? args[1] : 0;
}

static int32_t on_dealloc(void *ctx, const uint8_t *args, size_t len) {
    (void)ctx;
    note('d', args, len);
    return len > 1 ? args[1] : 0;
}

/* Argument bytes for up to 8 pairs: {number, failure code}. */
static uint8_t args[8][2];

/* `count` pairs numbered from `first`; `fail_finalize` / `fail_dealloc` name a pair (or -1)
 * whose action fails with code 77 / 5. */
static void make_pairs(mapcore_action_pair *pairs, int count, int first, int fail_finalize,
                       int fail_dealloc) {
    memset(pairs, 0, sizeof *pairs * (size_t)count);
    for (int i = 0; i < count; i++) {
        int n = first + i;
        args[n][0] = (uint8_t)n;
        args[n][1] = 0;
        pairs[i].finalize.func = on_finalize;
        pairs[i].finalize.args = args[n];
        pairs[i].finalize.args_len = n == fail_finalize ? 2 : 1;
        pairs[i].dealloc.func = on_dealloc;
        pairs[i].dealloc.args = args[n];
        pairs[i].dealloc.args_len = n == fail_dealloc ? 2 : 1;
    }
    if (fail_finalize >= 0) {
        args[fail_finalize][1] = 77;
    }
    if (fail_dealloc >= 0) {
        args[fail_dealloc][1] = 5;
    }
}

static mapcore_map *map;
static size_t page;
static uintptr_t base;

static mapcore_status init(size_t at_page, const mapcore_action_pair *pairs, size_t count,
                           uintptr_t *key, mapcore_error *err) {
    mapcore_segment s = {MAPCORE_GROUP_READ, base + at_page * page, page, NULL, 0};
    return mapcore_map_initialize(map, &s, 1, pairs, count, key, err);
}

static void order_and_exactly_once(void) {
    mapcore_action_pair pairs[3];
    mapcore_error err;
    uintptr_t key;
    events[0] = '\0';
    make_pairs(pairs, 3, 0, -1, -1);
    CHECK_STATUS(init(0, pairs, 3, &key, &err), MAPCORE_OK, &err);
    CHECK_STR(events, "f0f1f2");
    CHECK_STATUS(mapcore_map_deinitialize(map, key, &err), MAPCORE_OK, &err);
    CHECK_STR(events, "f0f1f2d2d1d0");
    CHECK_STATUS(mapcore_map_deinitialize(map, key, &err), MAPCORE_ERR_UNKNOWN_KEY, &err);
    CHECK_STR(events, "f0f1f2d2d1d0");
}

static void release_shutdown_and_free_run_the_rest(void) {
    mapcore_action_pair pairs[3];
    mapcore_error err;
    uintptr_t key, slab;

    /* Release: two regions, the newer one's deallocs first. */
    CHECK_STATUS(mapcore_map_reserve(map, 4 * page, &slab, &err), MAPCORE_OK, &err);
    uintptr_t saved = base;
    base = slab;
    make_pairs(pairs, 2, 0, -1, -1);
    CHECK_STATUS(init(0, pairs, 2, &key, &err), MAPCORE_OK, &err);
    make_pairs(pairs, 1, 2, -1, -1);
    CHECK_STATUS(init(1, pairs, 1, &key, &err), MAPCORE_OK, &err);
    events[0] = '\0';
    CHECK_STATUS(mapcore_map_release(map, slab, &err), MAPCORE_OK, &err);
    CHECK_STR(events, "d2d1d0");
    base = saved;

    /* Shutdown: runs what is left and leaves the map usable. */
    mapcore_map *m = new_libc_map(NULL);
    CHECK_STATUS(mapcore_map_reserve(m, 2 * page, &slab, &err), MAPCORE_OK, &err);
    mapcore_segment s = {MAPCORE_GROUP_READ, slab, page, NULL, 0};
    make_pairs(pairs, 1, 4, -1, -1);
    CHECK_STATUS(mapcore_map_initialize(m, &s, 1, pairs, 1, &key, &err), MAPCORE_OK, &err);
    events[0] = '\0';
    CHECK_STATUS(mapcore_map_shutdown(m, &err), MAPCORE_OK, &err);
    CHECK_STR(events, "d4");
    CHECK(mapcore_map_slab_count(m) == 0);
    CHECK_STATUS(mapcore_map_shutdown(m, &err), MAPCORE_OK, &err);
    CHECK_STR(events, "d4");

    /* Free: the same, without a report. */
    CHECK_STATUS(mapcore_map_reserve(m, 2 * page, &slab, &err), MAPCORE_OK, &err);
    s.addr = slab;
    make_pairs(pairs, 1, 5, -1, -1);
    events[0] = '\0';
    CHECK_STATUS(mapcore_map_initialize(m, &s, 1, pairs, 1, &key, &err), MAPCORE_OK, &err);
    mapcore_map_free(m);
    CHECK_STR(events, "f5d5");
}

static void finalize_failure_undoes_earlier_pairs(void) {
    mapcore_action_pair pairs[3];
    mapcore_error err;
    uintptr_t key = 0;
    events[0] = '\0';
    make_pairs(pairs, 3, 0, 1, -1);
    CHECK_STATUS(init(0, pairs, 3, &key, &err), MAPCORE_ERR_FINALIZE_FAILED, &err);
    CHECK(err.index == 1 && err.code == 77 && err.count == 0 && !err.quarantined);
    CHECK_STR(err.message, "finalize action 1 failed with code 77");
    /* Pair 0's dealloc ran once; the failing pair's own dealloc and pair 2 never ran. */
    CHECK_STR(events, "f0f1d0");
    CHECK(key == 0);
    CHECK(mapcore_map_region_count(map) == 0);
    CHECK_STR(prot_at(base), "rw-");

    /* A failing cleanup dealloc is counted. */
    events[0] = '\0';
    make_pairs(pairs, 3, 0, 2, 0);
    CHECK_STATUS(init(0, pairs, 3, &key, &err), MAPCORE_ERR_FINALIZE_FAILED, &err);
    CHECK(err.index == 2 && err.count == 1);
    CHECK_STR(err.message, "finalize action 2 failed with code 77 (1 cleanup dealloc actions failed)");
    CHECK_STR(events, "f0f1f2d1d0");
    CHECK(mapcore_map_region_count(map) == 0);
}

static void dealloc_failure_is_reported_and_the_rest_run(void) {
    mapcore_action_pair pairs[3];
    mapcore_error err;
    uintptr_t key;
    make_pairs(pairs, 3, 0, -1, 1);
    CHECK_STATUS(init(0, pairs, 3, &key, &err), MAPCORE_OK, &err);
    events[0] = '\0';
    CHECK_STATUS(mapcore_map_deinitialize(map, key, &err), MAPCORE_ERR_DEALLOC_FAILED, &err);
    CHECK(err.count == 1);
    CHECK_STR(err.message, "1 dealloc actions failed");
    CHECK_STR(events, "d2d1d0");
    CHECK(mapcore_map_region_count(map) == 0); /* the region is gone all the same */
    CHECK_STATUS(init(0, pairs, 0, &key, &err), MAPCORE_OK, &err);
    CHECK_STATUS(mapcore_map_deinitialize(map, key, &err), MAPCORE_OK, &err);
}

/* Copies its ctx's expectations: records what it received. */
struct received {
    void *ctx;
    uint8_t bytes[64];
    size_t len;
    int args_null;
};

static int32_t receive(void *ctx, const uint8_t *args, size_t len) {
    struct received *r = ctx;
    r->ctx = ctx;
    r->args_null = args == NULL;
    r->len = len;
    memcpy(r->bytes, args, len < sizeof r->bytes ? len : sizeof r->bytes);
    return 0;
}

static void ctx_and_args_arrive_intact(void) {
    struct received fin, dea;
    memset(&fin, 0, sizeof fin);
    memset(&dea, 0, sizeof dea);
    uint8_t longest[MAPCORE_MAX_ACTION_ARGS];
    for (size_t i = 0; i < sizeof longest; i++) {
        longest[i] = (uint8_t)(0xa0 + i);
    }
    mapcore_action_pair pair = {
        .finalize = {.func = receive, .ctx = &fin, .args = NULL, .args_len = 0},
        .dealloc = {.func = receive, .ctx = &dea, .args = longest, .args_len = sizeof longest},
    };
    mapcore_error err;
    uintptr_t key;
    CHECK_STATUS(init(0, &pair, 1, &key, &err), MAPCORE_OK, &err);
    CHECK(fin.ctx == &fin && fin.len == 0 && !fin.args_null);
    /* The arguments were copied at initialize: changing them now changes nothing. */
    uint8_t expected[MAPCORE_MAX_ACTION_ARGS];
    memcpy(expected, longest, sizeof longest);
    memset(longest, 0, sizeof longest);
    CHECK_STATUS(mapcore_map_deinitialize(map, key, &err), MAPCORE_OK, &err);
    CHECK(dea.ctx == &dea && dea.len == MAPCORE_MAX_ACTION_ARGS);
    CHECK(memcmp(dea.bytes, expected, sizeof expected) == 0);
}

/* A dealloc action that deinitializes another region of the same map. */
struct reenter {
    mapcore_map *map;
    uintptr_t other;
    mapcore_status status;
    size_t regions_seen;
};

static int32_t deinit_other(void *ctx, const uint8_t *args, size_t len) {
    (void)args, (void)len;
    struct reenter *r = ctx;
    r->regions_seen = mapcore_map_region_count(r->map);
    r->status = mapcore_map_deinitialize(r->map, r->other, NULL);
    return 0;
}

static void actions_may_call_back_into_the_map(void) {
    mapcore_action_pair pairs[1];
    mapcore_error err;
    uintptr_t first, second;
    make_pairs(pairs, 1, 3, -1, -1);
    CHECK_STATUS(init(1, pairs, 1, &second, &err), MAPCORE_OK, &err);
    struct reenter r = {map, second, MAPCORE_ERR_UNKNOWN, 0};
    mapcore_action_pair pair = {.dealloc = {.func = deinit_other, .ctx = &r}};
    CHECK_STATUS(init(0, &pair, 1, &first, &err), MAPCORE_OK, &err);
    events[0] = '\0';
    CHECK_STATUS(mapcore_map_deinitialize(map, first, &err), MAPCORE_OK, &err);
    CHECK(r.status == MAPCORE_OK);
    CHECK(r.regions_seen == 2);
    CHECK_STR(events, "d3"); /* the other region's dealloc ran, once */
    CHECK(mapcore_map_region_count(map) == 0);
}

/* A finalize action that checks what it sees: the code page already r-x, the Finalize-lifetime
 * page readable with its content. */
struct seen {
    uintptr_t code, scratch;
    char code_prot[4];
    char scratch_text[16];
};

static int32_t look(void *ctx, const uint8_t *args, size_t len) {
    (void)args, (void)len;
    struct seen *s = ctx;
    memcpy(s->code_prot, prot_at(s->code), 4);
    memcpy(s->scratch_text, (const void *)s->scratch, sizeof s->scratch_text);
    return 0;
}

static void finalize_sees_protected_pages_and_finalize_segments(void) {
    static const uint8_t RET[] = {0xc3};
    static const uint8_t TEXT[16] = "scratch, for now";
    struct seen seen;
    memset(&seen, 0, sizeof seen);
    seen.code = base;
    seen.scratch = base + page;
    mapcore_segment s[2] = {
        {MAPCORE_GROUP_READ | MAPCORE_GROUP_EXEC, base, 1, RET, 1},
        {MAPCORE_GROUP_READ | MAPCORE_GROUP_FINALIZE, base + page, page, TEXT, sizeof TEXT},
    };
    mapcore_action_pair pair = {.finalize = {.func = look, .ctx = &seen}};
    mapcore_error err;
    uintptr_t key;
    CHECK_STATUS(mapcore_map_initialize(map, s, 2, &pair, 1, &key, &err), MAPCORE_OK, &err);
    CHECK(key == base);
    CHECK_STR(seen.code_prot, "r-x");
    CHECK(memcmp(seen.scratch_text, TEXT, sizeof TEXT) == 0);
    /* The Finalize-lifetime page was freed before initialize returned. */
    CHECK_STR(prot_at(base + page), "rw-");
    CHECK(all_zero(base + page, page));
    CHECK_STATUS(mapcore_map_deinitialize(map, key, &err), MAPCORE_OK, &err);
}

int main(void) {
    mapcore_error err;
    map = new_libc_map(NULL);
    page = mapcore_map_page_size(map);
    CHECK_STATUS(mapcore_map_reserve(map, 8 * page, &base, &err), MAPCORE_OK, &err);

    order_and_exactly_once();
    release_shutdown_and_free_run_the_rest();
    finalize_failure_undoes_earlier_pairs();
    dealloc_failure_is_reported_and_the_rest_run();
    ctx_and_args_arrive_intact();
    actions_may_call_back_into_the_map();
    finalize_sees_protected_pages_and_finalize_segments();

    CHECK(mapcore_map_region_count(map) == 0);
    mapcore_map_free(map);
    return finish("actions");
}
