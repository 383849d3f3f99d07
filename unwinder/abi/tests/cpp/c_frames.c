/* C frames compiled with -fexceptions: a C++ exception thrown by the callback must
   cross them, running this frame's cleanup attribute on the way. */
#include <stdio.h>

extern int c_cleanups;

static void count_cleanup(int *p) { (void)p; c_cleanups++; }

int c_call_through(int depth, int (*callback)(int)) {
    int guard __attribute__((cleanup(count_cleanup))) = depth;
    if (depth == 0) return callback(guard);
    return c_call_through(depth - 1, callback) + 1;
}
