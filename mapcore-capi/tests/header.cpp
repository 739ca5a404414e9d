// The header from C++: it compiles as C++17 with every warning, and a round trip through the
// map works (reserve, initialize with a C++ action, deinitialize, release).
#include "check.h"

#include <cstddef>

static_assert(sizeof(mapcore_status) == 4, "mapcore_status is an int32_t");
static_assert(offsetof(mapcore_error, message) + MAPCORE_ERROR_MESSAGE_LEN <= sizeof(mapcore_error),
              "the message is inline");

namespace {
int runs = 0;

extern "C" int32_t count_run(void *ctx, const uint8_t *args, size_t len) {
    (void)args;
    (void)len;
    ++*static_cast<int *>(ctx);
    return 0;
}
} // namespace

int main() {
    mapcore_error err;
    mapcore_map *map = new_libc_map(nullptr);
    size_t page = mapcore_map_page_size(map);
    uintptr_t base = 0, key = 0;
    CHECK_STATUS(mapcore_map_reserve(map, 2 * page, &base, &err), MAPCORE_OK, &err);
    static const uint8_t text[] = "from C++";
    mapcore_segment segment = {MAPCORE_GROUP_READ, base, page, text, sizeof text};
    mapcore_action_pair pair = {};
    pair.dealloc.func = count_run;
    pair.dealloc.ctx = &runs;
    CHECK_STATUS(mapcore_map_initialize(map, &segment, 1, &pair, 1, &key, &err), MAPCORE_OK, &err);
    CHECK(key == base);
    CHECK_STR(reinterpret_cast<const char *>(key), "from C++");
    CHECK_STATUS(mapcore_map_deinitialize(map, key, &err), MAPCORE_OK, &err);
    CHECK(runs == 1);
    CHECK_STATUS(mapcore_map_release(map, base, &err), MAPCORE_OK, &err);
    mapcore_map_free(map);
    return finish("header.cpp");
}
