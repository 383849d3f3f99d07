# Round trip per packet and 64 KiB memory read throughput of the kernel's gdb stub over
# QEMU's emulated UART (see BENCHMARKS.md, part 6): `source` it in a gdb attached through
# `clew qemu --gdb tcp:...`.
import time
n = 200
t = time.time()
for i in range(n):
    gdb.execute('maint packet qfThreadInfo', to_string=True)
rt = (time.time() - t) / n
gdb.execute('set dcache size 1')
inf = gdb.selected_inferior()
best = None
for i in range(3):
    t = time.time()
    inf.read_memory(0x100000, 65536)
    dt = time.time() - t
    best = dt if best is None else min(best, dt)
print("round trip per packet: %.3f ms; 64 KiB read: %.3f s = %.0f KiB/s" % (rt * 1000, best, 64 / best))
