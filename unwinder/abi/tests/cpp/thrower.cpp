// A library the test program dlopen()s after start-up: its frames are known only to the
// dynamic loader, not to the registry filled when clew was loaded.
#include <stdexcept>

struct Counter { int *n; ~Counter() { ++*n; } };

extern "C" __attribute__((noinline)) void thrower_throw(int depth, int *destroyed) {
    Counter c{destroyed};
    if (depth == 0) throw std::out_of_range("from a dlopened library");
    thrower_throw(depth - 1, destroyed);
}
