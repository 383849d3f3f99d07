// C++ exceptions with clew as the unwinder (LD_PRELOAD=libclew_unwind.so): many frames
// with destructors, rethrow, catch by base class, std::exception_ptr across threads,
// C frames compiled with -fexceptions, and code known only through __register_frame.
// Prints one "ok <name>" line per check and "ALL OK" at the end; exits 1 on a failure.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>
#include <unwind.h>
#include <vector>
#include <sys/mman.h>
#include <csignal>
#include <pthread.h>
#include <unistd.h>

extern "C" int c_call_through(int depth, int (*callback)(int));
extern "C" { int c_cleanups = 0; }

static int failures = 0;
#define CHECK(name, cond) do { if (cond) std::printf("ok %s\n", name); else { std::printf("FAIL %s\n", name); failures++; } } while (0)

static int destroyed = 0;
struct Guard { ~Guard() { destroyed++; } };

struct Base : std::runtime_error { using std::runtime_error::runtime_error; };
struct Derived : Base { int code; Derived(int c) : Base("derived"), code(c) {} };

__attribute__((noinline)) int deep_throw(int n) {
    Guard g;
    if (n == 0) throw Derived(n + 42);
    return deep_throw(n - 1) + 1;
}

static void many_frames() {
    destroyed = 0;
    try {
        deep_throw(100);
        CHECK("many-frames", false);
    } catch (const Derived &d) {
        CHECK("many-frames", d.code == 42 && destroyed == 101);
    }
}

static void rethrow() {
    int stage = 0;
    try {
        try {
            deep_throw(5);
        } catch (Derived &) {
            stage = 1;
            throw;  // rethrow the same object
        }
    } catch (const Base &b) {
        CHECK("rethrow", stage == 1 && std::string(b.what()) == "derived");
        return;
    }
    CHECK("rethrow", false);
}

static void base_class() {
    try {
        deep_throw(3);
    } catch (const std::exception &e) {
        CHECK("catch-by-base", dynamic_cast<const Derived *>(&e) != nullptr);
        return;
    }
    CHECK("catch-by-base", false);
}

static void exception_ptr_threads() {
    std::exception_ptr p;
    std::thread t([&] {
        try { deep_throw(10); } catch (...) { p = std::current_exception(); }
    });
    t.join();
    try {
        std::rethrow_exception(p);
    } catch (const Derived &d) {
        CHECK("exception_ptr-across-threads", d.code == 42);
        return;
    }
    CHECK("exception_ptr-across-threads", false);
}

static int throwing_callback(int) { throw std::runtime_error("from callback"); }

static void through_c() {
    c_cleanups = 0;
    try {
        c_call_through(8, throwing_callback);
    } catch (const std::runtime_error &e) {
        CHECK("through-C-frames", c_cleanups == 9);
        return;
    }
    CHECK("through-C-frames", false);
}

// Hand-assembled code known only through __register_frame:
//   push rbp; mov rbp, rsp; call rdi; pop rbp; ret      (calls its first argument)
extern "C" void __register_frame(void *);
extern "C" void __deregister_frame(void *);

static int jit_callback_throws() { throw Derived(7); }

static void *build_jit(unsigned char **eh_frame_out) {
    unsigned char code[] = {0x55, 0x48, 0x89, 0xe5, 0xff, 0xd7, 0x5d, 0xc3};
    unsigned char *mem = (unsigned char *)mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    std::memcpy(mem, code, sizeof code);
    mprotect(mem, 4096, PROT_READ | PROT_EXEC);
    // .eh_frame: one CIE (absptr FDE encoding), one FDE, a zero terminator.
    static unsigned char eh[64];
    unsigned char cie[] = {
        0x14, 0, 0, 0,   // length 20
        0, 0, 0, 0,      // CIE id
        1, 'z', 'R', 0,  // version, augmentation
        1, 0x78, 16,     // code align 1, data align -8, RA column 16
        1, 0x00,         // augmentation data: FDE pointers absptr
        0x0c, 7, 8,      // DW_CFA_def_cfa rsp+8
        0x90, 1,         // DW_CFA_offset rip at cfa-8
        0, 0             // padding (DW_CFA_nop)
    };
    std::memcpy(eh, cie, sizeof cie);
    unsigned char *fde = eh + sizeof cie;
    unsigned int len = 4 + 8 + 8 + 7;  // CIE pointer, pc_begin, pc_range, aug length + insns
    std::memcpy(fde, &len, 4);
    unsigned int cie_ptr = (unsigned int)(fde + 4 - eh);
    std::memcpy(fde + 4, &cie_ptr, 4);
    unsigned long begin = (unsigned long)mem, range = sizeof code;
    std::memcpy(fde + 8, &begin, 8);
    std::memcpy(fde + 16, &range, 8);
    // Augmentation length 0; after `push rbp`: CFA = rsp+16, rbp saved at CFA-16;
    // then nops (the CFA stays rsp-based: rsp does not move until `pop rbp`).
    unsigned char insns[] = {0, 0x41, 0x0e, 16, 0x86, 2, 0};
    std::memcpy(fde + 24, insns, 7);
    std::memset(fde + 4 + len, 0, 4);
    *eh_frame_out = eh;
    return mem;
}

static void through_registered_jit() {
    unsigned char *eh;
    void *code = build_jit(&eh);
    __register_frame(eh);
    auto jit = (int (*)(int (*)()))code;
    try {
        jit(jit_callback_throws);
        CHECK("through-registered-jit-code", false);
    } catch (const Derived &d) {
        CHECK("through-registered-jit-code", d.code == 7);
    }
    __deregister_frame(eh);
}

// _Unwind_Backtrace, printed as module+offset so runs with different unwinders compare.
static uintptr_t jit_base;

static uintptr_t first_cfa;

static _Unwind_Reason_Code trace(struct _Unwind_Context *ctx, void *) {
    uintptr_t ip = _Unwind_GetIP(ctx);
    uintptr_t cfa = _Unwind_GetCFA(ctx);
    int exact = 0;
    _Unwind_GetIPInfo(ctx, &exact);
    // CFAs relative to the first frame's; a frame interrupted by a signal starts a new
    // segment (where the kernel puts a signal frame depends on the stack's alignment).
    if (!first_cfa || exact) first_cfa = cfa;
    std::printf("%scfa +%#lx ", exact ? "exact " : "", (unsigned long)(cfa - first_cfa));
    Dl_info info;
    if (jit_base && ip >= jit_base && ip < jit_base + 4096) {
        std::printf("frame jit+%#lx\n", (unsigned long)(ip - jit_base));
    } else if (ip && dladdr((void *)ip, &info) && info.dli_fname) {
        const char *base = std::strrchr(info.dli_fname, '/');
        std::printf("frame %s+%#lx\n", base ? base + 1 : info.dli_fname, (unsigned long)(ip - (uintptr_t)info.dli_fbase));
    } else {
        std::printf("frame %#lx\n", (unsigned long)ip);
    }
    return _URC_NO_REASON;
}

__attribute__((noinline)) static void print_backtrace(int depth) {
    if (depth == 0) { first_cfa = 0; _Unwind_Backtrace(trace, nullptr); return; }
    print_backtrace(depth - 1);
    asm volatile("" ::: "memory");
}

static void on_signal(int) { print_backtrace(2); }
static int jit_callback_traces() { print_backtrace(1); return 0; }

static void through_dlopened_library() {
    const char *path = std::getenv("CLEW_THROWER");
    if (!path) return;
    void *lib = dlopen(path, RTLD_NOW);
    auto f = lib ? (void (*)(int, int *))dlsym(lib, "thrower_throw") : nullptr;
    if (!f) { CHECK("through-dlopened-library", false); return; }
    int destroyed = 0;
    try {
        f(4, &destroyed);
    } catch (const std::out_of_range &) {
        CHECK("through-dlopened-library", destroyed == 5);
        return;
    }
    CHECK("through-dlopened-library", false);
}

// glibc cancels threads through its own handle on libgcc_s, whatever is preloaded: the
// destructors must still run (libgcc's contexts reach clew's accessors and are handed back).
static int cancel_destroyed = 0;
struct CancelGuard { ~CancelGuard() { cancel_destroyed++; } };
static void *cancelled_thread(void *) {
    CancelGuard g;
    for (;;) { pthread_testcancel(); usleep(1000); }
    return nullptr;
}
static void *exiting_thread(void *) {
    CancelGuard g;
    pthread_exit(nullptr);
}

static void thread_cancellation() {
    cancel_destroyed = 0;
    pthread_t t;
    pthread_create(&t, nullptr, cancelled_thread, nullptr);
    usleep(5000);
    pthread_cancel(t);
    void *r;
    pthread_join(t, &r);
    pthread_create(&t, nullptr, exiting_thread, nullptr);
    pthread_join(t, nullptr);
    CHECK("pthread-cancel-and-exit-run-destructors", r == PTHREAD_CANCELED && cancel_destroyed == 2);
}

int main(int argc, char **argv) {
    if (argc > 1 && std::strcmp(argv[1], "backtrace") == 0) {
        // Each walk three times: cold, then with the thread's rules cached, then with
        // them found by depth (clew's warm path).
        std::printf("-- plain\n");
        for (int i = 0; i < 3; i++) print_backtrace(5);
        std::printf("-- in a signal handler\n");
        signal(SIGUSR1, on_signal);
        for (int i = 0; i < 3; i++) raise(SIGUSR1);
        std::printf("-- through registered JIT code\n");
        unsigned char *eh;
        void *code = build_jit(&eh);
        jit_base = (uintptr_t)code;
        __register_frame(eh);
        ((int (*)(int (*)()))code)(jit_callback_traces);
        __deregister_frame(eh);
        return 0;
    }
    many_frames();
    rethrow();
    base_class();
    exception_ptr_threads();
    through_c();
    through_registered_jit();
    through_dlopened_library();
    thread_cancellation();
    if (failures) return 1;
    std::printf("ALL OK\n");
    return 0;
}
