// The measured side of `benches/abi.rs`: an ordinary C++ program (libstdc++ and
// libgcc_s are DT_NEEDED, loaded at startup) whose unwinder is whatever the dynamic
// linker binds `_Unwind_*` to: the system libgcc_s, another libgcc_s through
// LD_LIBRARY_PATH, or libclew_unwind.so through LD_PRELOAD. The same binary is run once
// per unwinder.
//
// Protocol (one command per stdin line, one answer per stdout line):
//   startup                -> "info <key> <value>" lines, then "ready"
//   throw <depth> <dtors> <iters>  -> "ok <ns>"   throw+catch round trips
//   backtrace <iters>      -> "ok <ns>"           64-frame _Unwind_Backtrace walks
//   register <n> <iters>   -> "ok <ns_register> <ns_deregister>"  n __register_frame calls
//                                                 (then n __deregister_frame, timed apart)
//   fde_setup <n>          -> "ok <ns_register> <ns_first_lookup>"  registers n sections
//   fde_lookup <iters>     -> "ok <ns>"           _Unwind_Find_FDE hits on random PCs
// A failed check answers "err <message>".
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <dlfcn.h>
#include <random>
#include <sys/mman.h>
#include <unwind.h>
#include <vector>

extern "C" void __register_frame(void *);
extern "C" void __deregister_frame(void *);
struct dwarf_eh_bases {
    void *tbase;
    void *dbase;
    void *func;
};
extern "C" const void *_Unwind_Find_FDE(void *pc, struct dwarf_eh_bases *bases);

// The thread's CPU time: on a shared machine, time spent descheduled is not counted.
static uint64_t now_ns() {
    timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static char error[256];
#define FAIL(...) (std::snprintf(error, sizeof error, __VA_ARGS__), false)

// ---- which unwinder is active -------------------------------------------------------

static const char *object_of(const char *sym) {
    void *p = dlsym(RTLD_DEFAULT, sym);
    Dl_info info;
    if (!p || !dladdr(p, &info) || !info.dli_fname) return "(unresolved)";
    return info.dli_fname;
}

static const char *libgcc_version() {
    // Symbols that first appeared in each GCC's libgcc_s.
    if (dlvsym(RTLD_DEFAULT, "__strub_enter", "GCC_14.0.0")) return "14";
    if (dlvsym(RTLD_DEFAULT, "__truncdfbf2", "GCC_13.0.0")) return "13";
    if (dlvsym(RTLD_DEFAULT, "__divhc3", "GCC_12.0.0")) return "12";
    return "le11";
}

static void startup() {
    const char *syms[] = {"_Unwind_RaiseException", "_Unwind_Resume", "_Unwind_Backtrace",
                          "_Unwind_Find_FDE", "__register_frame", "__deregister_frame"};
    for (const char *s : syms) std::printf("info %s %s\n", s, object_of(s));
    // libgcc_s stays loaded under clew (libstdc++ needs it): where it comes from.
    std::printf("info libgcc_s %s\n", object_of("__divhc3"));
    std::printf("info libgcc_version %s\n", libgcc_version());
    std::printf("ready\n");
}

// ---- 1. throw + catch through `depth` frames ----------------------------------------

static volatile uint64_t destroyed;
struct Guard {
    ~Guard() { destroyed = destroyed + 1; }
};

typedef int (*int_fn)(int);
extern int_fn volatile plain_next, dtor_next;

// Called through volatile pointers, with work after the call: no inlining, no tail
// calls, no recursion turned into a loop; every frame is a real frame.
__attribute__((noinline)) int throw_plain(int n) {
    if (n == 0) throw 7;
    return plain_next(n - 1) + 1;
}

__attribute__((noinline)) int throw_dtor(int n) {
    Guard g;
    if (n == 0) throw 7;
    return dtor_next(n - 1) + 1;
}

int_fn volatile plain_next = throw_plain;
int_fn volatile dtor_next = throw_dtor;

// `depth` frames of `f` between this frame (the catcher) and the throw.
__attribute__((noinline)) static int catch_one(int_fn f, int depth) {
    try {
        return f(depth - 1);
    } catch (int e) {
        return e;
    }
}

static bool bench_throw(int depth, bool dtors, uint64_t iters, uint64_t *ns) {
    int_fn f = dtors ? throw_dtor : throw_plain;
    destroyed = 0;
    uint64_t sum = 0;
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < iters; i++) sum += catch_one(f, depth);
    *ns = now_ns() - t0;
    if (sum != 7 * iters) return FAIL("caught %llu, expected %llu", (unsigned long long)sum, (unsigned long long)(7 * iters));
    if (dtors && destroyed != (uint64_t)depth * iters)
        return FAIL("%llu destructors ran, expected %llu", (unsigned long long)destroyed,
                    (unsigned long long)(depth * iters));
    return true;
}

// ---- 3. repeated _Unwind_Backtrace of a 64-frame stack --------------------------------

const int BT_FRAMES = 64;

struct Collect {
    uintptr_t pcs[BT_FRAMES];
    int len;
};

static _Unwind_Reason_Code collect(struct _Unwind_Context *ctx, void *arg) {
    Collect *c = (Collect *)arg;
    c->pcs[c->len++] = _Unwind_GetIP(ctx);
    return c->len == BT_FRAMES ? _URC_NORMAL_STOP : _URC_NO_REASON;
}

static uint64_t bt_iters, bt_ns;
static Collect bt_last;

// The first frame the walk reports (the caller of _Unwind_Backtrace).
__attribute__((noinline)) int bt_bottom() {
    Collect c;
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < bt_iters; i++) {
        c.len = 0;
        _Unwind_Backtrace(collect, &c);
        asm volatile("" : : "r"(&c) : "memory");
    }
    bt_ns = now_ns() - t0;
    bt_last = c;
    return c.len;
}

// 63 distinct functions above `bt_bottom` (and one more, unreported, above them): every
// reported frame has its own FDE and return address, as in a real stack.
template <int N> __attribute__((noinline)) int bt_frame() {
    int r = bt_frame<N - 1>();
    asm volatile("" ::: "memory");
    return r + 1;
}
template <> __attribute__((noinline)) int bt_frame<0>() {
    int r = bt_bottom();
    asm volatile("" ::: "memory");
    return r + 1;
}

static bool bench_backtrace(uint64_t iters, uint64_t *ns) {
    bt_iters = iters;
    bt_frame<BT_FRAMES - 1>();
    *ns = bt_ns;
    if (iters == 0) return true;
    if (bt_last.len != BT_FRAMES) return FAIL("walked %d frames, expected %d", bt_last.len, BT_FRAMES);
    for (int i = 1; i < BT_FRAMES; i++)
        for (int j = 0; j < i; j++)
            if (bt_last.pcs[i] == bt_last.pcs[j]) return FAIL("frames %d and %d share a PC", i, j);
    return true;
}

// ---- 2. __register_frame and _Unwind_Find_FDE with many small sections ---------------

// Each fake module: TEXT_LEN bytes of text, one per page of a PROT_NONE reservation (no
// real code can be mistaken for it), and a SECTION_LEN-byte .eh_frame: one CIE
// (absolute FDE pointers), one FDE covering the text, a zero terminator.
const uintptr_t TEXT_STRIDE = 4096, TEXT_LEN = 64;
const size_t SECTION_LEN = 64;

struct Modules {
    size_t n = 0;
    uintptr_t text = 0;
    unsigned char *sections = nullptr;

    uintptr_t start(size_t i) const { return text + i * TEXT_STRIDE; }
    unsigned char *section(size_t i) const { return sections + i * SECTION_LEN; }

    bool create(size_t count) {
        n = count;
        void *t = mmap(nullptr, n * TEXT_STRIDE + (1 << 20), PROT_NONE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        void *s = mmap(nullptr, n * SECTION_LEN, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (t == MAP_FAILED || s == MAP_FAILED) return FAIL("mmap failed");
        text = ((uintptr_t)t + 4095) & ~(uintptr_t)4095;
        sections = (unsigned char *)s;
        for (size_t i = 0; i < n; i++) write_section(section(i), start(i));
        return true;
    }

    static void write_section(unsigned char *eh, uintptr_t begin) {
        const unsigned char cie[] = {
            0x14, 0, 0, 0,   // length 20
            0, 0, 0, 0,      // CIE id
            1, 'z', 'R', 0,  // version, augmentation
            1, 0x78, 16,     // code align 1, data align -8, RA column 16
            1, 0x00,         // augmentation data: FDE pointers absptr
            0x0c, 7, 8,      // DW_CFA_def_cfa rsp+8
            0x90, 1,         // DW_CFA_offset rip at cfa-8
            0, 0,            // DW_CFA_nop
        };
        std::memcpy(eh, cie, sizeof cie);
        unsigned char *fde = eh + sizeof cie;
        uint32_t len = 32;  // CIE pointer, pc_begin, pc_range, augmentation length, insns
        std::memcpy(fde, &len, 4);
        uint32_t cie_ptr = (uint32_t)(fde + 4 - eh);
        std::memcpy(fde + 4, &cie_ptr, 4);
        uint64_t range = TEXT_LEN;
        std::memcpy(fde + 8, &begin, 8);
        std::memcpy(fde + 16, &range, 8);
        // Augmentation length 0; push rbp; mov rbp, rsp: CFA rsp+16, rbp at CFA-16, CFA rbp.
        const unsigned char insns[] = {0, 0x41, 0x0e, 16, 0x86, 2, 0x43, 0x0d, 6, 0, 0, 0};
        std::memcpy(fde + 24, insns, sizeof insns);
        std::memset(fde + 4 + len, 0, 4);  // terminator
        static_assert(24 + 4 + 32 + 4 <= SECTION_LEN, "section size");
    }

    // Registered from the highest address down, as successive mmaps hand out JIT code
    // (also the order libgcc 12's sorted list of objects handles in linear time).
    void register_all() const {
        for (size_t i = n; i-- > 0;) __register_frame(section(i));
    }
    void deregister_all() const {
        for (size_t i = 0; i < n; i++) __deregister_frame(section(i));
    }
};

static Modules reg_modules, fde_modules;

static bool bench_register(size_t n, uint64_t iters, uint64_t *reg_ns, uint64_t *dereg_ns) {
    if (reg_modules.n != n && !reg_modules.create(n)) return false;
    *reg_ns = *dereg_ns = 0;
    for (uint64_t it = 0; it < iters; it++) {
        uint64_t t0 = now_ns();
        reg_modules.register_all();
        uint64_t t1 = now_ns();
        reg_modules.deregister_all();
        *reg_ns += t1 - t0;
        *dereg_ns += now_ns() - t1;
    }
    return true;
}

const size_t LOOKUP_PCS = 1 << 16;
static std::vector<uintptr_t> lookup_pcs, lookup_funcs;

static bool check_lookup(size_t k) {
    dwarf_eh_bases bases = {};
    const void *fde = _Unwind_Find_FDE((void *)lookup_pcs[k], &bases);
    size_t i = (lookup_funcs[k] - fde_modules.text) / TEXT_STRIDE;
    if (fde != fde_modules.section(i) + 24 || (uintptr_t)bases.func != lookup_funcs[k])
        return FAIL("_Unwind_Find_FDE(%#lx): fde %p func %p, expected func %#lx", (unsigned long)lookup_pcs[k], fde,
                    bases.func, (unsigned long)lookup_funcs[k]);
    return true;
}

static bool fde_setup(size_t n, uint64_t *reg_ns, uint64_t *first_ns) {
    if (!fde_modules.create(n)) return false;
    std::mt19937_64 rng(42);
    lookup_pcs.resize(LOOKUP_PCS);
    lookup_funcs.resize(LOOKUP_PCS);
    for (size_t k = 0; k < LOOKUP_PCS; k++) {
        size_t i = rng() % n;
        lookup_funcs[k] = fde_modules.start(i);
        lookup_pcs[k] = lookup_funcs[k] + rng() % TEXT_LEN;
    }
    uint64_t t0 = now_ns();
    fde_modules.register_all();
    uint64_t t1 = now_ns();
    bool ok = check_lookup(0);
    *first_ns = now_ns() - t1;
    *reg_ns = t1 - t0;
    for (size_t k = 1; ok && k < LOOKUP_PCS; k += 61) ok = check_lookup(k);
    return ok;
}

static bool fde_lookup(uint64_t iters, uint64_t *ns) {
    if (lookup_pcs.empty()) return FAIL("fde_setup first");
    uint64_t wrong = 0;
    uint64_t t0 = now_ns();
    for (uint64_t i = 0; i < iters; i++) {
        size_t k = i & (LOOKUP_PCS - 1);
        dwarf_eh_bases bases;
        _Unwind_Find_FDE((void *)lookup_pcs[k], &bases);
        wrong += (uintptr_t)bases.func != lookup_funcs[k];
    }
    *ns = now_ns() - t0;
    if (wrong) return FAIL("%llu lookups found the wrong function", (unsigned long long)wrong);
    return true;
}

// ---- the command loop ---------------------------------------------------------------

int main() {
    startup();
    std::fflush(stdout);
    char line[256];
    while (std::fgets(line, sizeof line, stdin)) {
        char cmd[32] = {};
        unsigned long long a = 0, b = 0, c = 0;
        int args = std::sscanf(line, "%31s %llu %llu %llu", cmd, &a, &b, &c);
        uint64_t x = 0, y = 0;
        bool ok;
        int outputs = 1;
        error[0] = 0;
        if (args == 4 && !std::strcmp(cmd, "throw")) {
            ok = a >= 1 ? bench_throw((int)a, b != 0, c, &x) : FAIL("depth must be >= 1");
        } else if (args == 2 && !std::strcmp(cmd, "backtrace")) {
            ok = bench_backtrace(a, &x);
        } else if (args == 3 && !std::strcmp(cmd, "register")) {
            ok = bench_register(a, b, &x, &y);
            outputs = 2;
        } else if (args == 2 && !std::strcmp(cmd, "fde_setup")) {
            ok = fde_setup(a, &x, &y);
            outputs = 2;
        } else if (args == 2 && !std::strcmp(cmd, "fde_lookup")) {
            ok = fde_lookup(a, &x);
        } else if (args >= 1 && !std::strcmp(cmd, "quit")) {
            return 0;
        } else {
            ok = FAIL("unknown command: %.200s", line);
        }
        if (!ok)
            std::printf("err %s\n", error);
        else if (outputs == 1)
            std::printf("ok %llu\n", (unsigned long long)x);
        else
            std::printf("ok %llu %llu\n", (unsigned long long)x, (unsigned long long)y);
        std::fflush(stdout);
    }
    return 0;
}
