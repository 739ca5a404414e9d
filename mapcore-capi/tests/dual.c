/*
 * The dual-mapped host from C (mapcore_map_new_dual): code runs at the addresses handed out,
 * a region of the same layout is reused with new code, and freed code stays mapped
 * executable (lazy protection), with trap instructions over the bytes its code occupied.
 */
#include <sys/mman.h>

#include "check.h"

#if defined(__x86_64__)
/* mov eax, imm32; ret */
static void ret_const(uint8_t out[6], uint8_t value) {
    const uint8_t code[6] = {0xb8, value, 0x00, 0x00, 0x00, 0xc3};
    memcpy(out, code, 6);
}
#define CODE_LEN 6
#define TRAP_BYTE 0xcc
#elif defined(__aarch64__)
/* movz w0, #value; ret */
static void ret_const(uint8_t out[8], uint8_t value) {
    uint32_t movz = 0x52800000u | ((uint32_t)value << 5), ret = 0xd65f03c0u;
    memcpy(out, &movz, 4);
    memcpy(out + 4, &ret, 4);
}
#define CODE_LEN 8
#define TRAP_BYTE 0x00
#else
#error "machine code for x86-64 and aarch64 only"
#endif

typedef int (*fn0)(void);

int main(void) {
    mapcore_error err;
    mapcore_map *map = NULL;
    mapcore_config config = mapcore_config_default();
    config.retain_contents = true;
    CHECK_STATUS(mapcore_map_new_dual(&config, &map, &err), MAPCORE_OK, &err);
    if (map == NULL) {
        return finish("dual");
    }
    size_t page = mapcore_map_page_size(map);
    uintptr_t base = 0;
    CHECK_STATUS(mapcore_map_reserve(map, 4 * page, &base, &err), MAPCORE_OK, &err);
    for (uint8_t round = 1; round <= 5; round++) {
        uint8_t code[CODE_LEN];
        ret_const(code, round);
        mapcore_segment seg = {
            .group = MAPCORE_GROUP_READ | MAPCORE_GROUP_EXEC,
            .addr = base,
            .size = sizeof code,
            .content = code,
            .content_len = sizeof code,
        };
        uintptr_t key = 0;
        CHECK_STATUS(mapcore_map_initialize(map, &seg, 1, NULL, 0, &key, &err), MAPCORE_OK, &err);
        CHECK(key == base);
        fn0 f;
        memcpy(&f, &key, sizeof f);
        CHECK(f() == round);
        CHECK_STATUS(mapcore_map_deinitialize(map, key, &err), MAPCORE_OK, &err);
        /* Freed code is still readable (r-x): trap instructions where the code was, and
           zeros after it (never written). */
        const uint8_t *bytes = (const uint8_t *)base;
        int traps = 1;
        for (size_t i = 0; i < page; i++) {
            traps &= bytes[i] == (i < sizeof code ? TRAP_BYTE : 0);
        }
        CHECK(traps);
    }
    /* A read-write request over the freed code page: protected back, and zero. */
    mapcore_segment data = {.group = MAPCORE_GROUP_READ | MAPCORE_GROUP_WRITE, .addr = base, .size = page};
    uintptr_t key = 0;
    CHECK_STATUS(mapcore_map_initialize(map, &data, 1, NULL, 0, &key, &err), MAPCORE_OK, &err);
    uint8_t *rw = (uint8_t *)base;
    CHECK(rw[0] == 0 && rw[page - 1] == 0);
    rw[0] = 7; /* writable now: a fault here would kill the test */
    CHECK(rw[0] == 7);
    CHECK_STATUS(mapcore_map_release(map, base, &err), MAPCORE_OK, &err);
    CHECK(mapcore_map_slab_count(map) == 0);
    mapcore_map_free(map);
    return finish("dual");
}
