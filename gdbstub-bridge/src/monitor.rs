//! `monitor` commands, answered on the target side: `bt` (clew's unwinder and
//! symbolizer from the stopped context: JIT frames named from the registry),
//! `modules` (the registry), `trace` (the flight recorder's last events).

use alloc::vec::Vec;
use core::fmt::Write;

use clew_unwinder::arch::x86_64::Regs;
use clew_unwinder::{Error, Memory, ModuleKind, ModuleProvider, Registry, Unwinder};

use crate::machine::{Machine, Registers};

/// The help text (`monitor help`).
pub const HELP: &str = "clew monitor commands:\n  bt         backtrace of the stopped thread (clew unwinder + symbolizer)\n  modules    modules in clew's registry\n  trace      the last tracer events\n  dump FILE  a post-mortem dump (clew-tracer format) of the stopped thread, written on the target\n";

/// The machine's checked memory as the unwinder's [`Memory`].
pub struct MachineMemory<'a>(pub &'a dyn Machine);

impl Memory for MachineMemory<'_> {
    fn read_u64(&self, addr: u64) -> Result<u64, Error> {
        let mut b = [0u8; 8];
        match self.0.read_memory(addr, &mut b) {
            Ok(8) => Ok(u64::from_le_bytes(b)),
            _ => Err(Error::BadAddress { addr }),
        }
    }
}

/// gdb's register order (rax, rbx, rcx, rdx, rsi, rdi, rbp, rsp, r8–r15) to DWARF's
/// (rax, rdx, rcx, rbx, rsi, rdi, rbp, rsp, r8–r15, return address).
pub fn dwarf_regs(r: &Registers) -> Regs {
    let g = &r.regs;
    let mut d = Regs::default();
    d.gpr[0] = g[0];
    d.gpr[1] = g[3];
    d.gpr[2] = g[2];
    d.gpr[3] = g[1];
    d.gpr[4..16].copy_from_slice(&g[4..16]);
    d.gpr[16] = r.rip;
    d
}

/// The return addresses of the walk from the stopped registers (the first PC exact).
fn walk(
    machine: &dyn Machine,
    registry: &'static Registry,
    provider: Option<&'static dyn ModuleProvider>,
) -> (Vec<(u64, u64)>, Option<Error>) {
    let mut unwinder = Unwinder::<clew_unwinder::Native>::new(registry).with_max_depth(128);
    if let Some(p) = provider {
        unwinder = unwinder.with_provider(p);
    }
    let mem = MachineMemory(machine);
    let regs = dwarf_regs(&machine.registers());
    let mut frames = Vec::new();
    for f in unwinder.frames(regs, true, &mem, None) {
        match f {
            Ok(f) => frames.push((f.pc, f.lookup_pc())),
            Err(e) => return (frames, Some(e)),
        }
    }
    (frames, None)
}

/// Stack bytes copied into a dump, from the stack pointer up.
pub const DUMP_STACK: usize = 64 * 1024;

/// `monitor dump`: a clew-tracer post-mortem dump of the stopped thread (registers,
/// backtrace, up to [`DUMP_STACK`] bytes of stack, the registry's modules with JIT
/// `.eh_frame` and symbols, the flight recorder's events), for `clew-tracer`'s decoder.
pub fn dump(
    machine: &dyn Machine,
    registry: &'static Registry,
    provider: Option<&'static dyn ModuleProvider>,
    reason: &str,
) -> (Vec<u8>, clew_tracer::dump::Summary) {
    use clew_tracer::clock::{Clock, DefaultClock};
    let regs = dwarf_regs(&machine.registers());
    let clock = DefaultClock;
    let mut w = clew_tracer::DumpWriter::new(Vec::new());
    let _ = w.header("clew-gdbstub-bridge", clock.info(), clock.now());
    let _ = w.cause(&clew_tracer::wire::Cause::Requested { reason, task: 0 });
    let _ = w.registers(0, &regs);
    let (frames, _) = walk(machine, registry, provider);
    let pcs: Vec<usize> = frames.iter().map(|&(pc, _)| pc as usize).collect();
    let _ = w.backtrace(0, &pcs);
    let sp = regs.gpr[7];
    let mut stack = alloc::vec![0u8; DUMP_STACK];
    let mut got = 0;
    while got < stack.len() {
        match machine.read_memory(sp + got as u64, &mut stack[got..]) {
            Ok(n) => got += n,
            Err(_) => break,
        }
    }
    let _ = w.stack(0, sp, &stack[..got], got == DUMP_STACK);
    let _ = w.modules(registry, &clew_tracer::dump::ModuleOptions::default());
    let _ = w.events(clew_tracer::global());
    w.finish()
}

/// `monitor bt`: one line per frame, `#N  0xPC in NAME (MODULE)`, innermost first.
pub fn backtrace(
    machine: &dyn Machine,
    registry: &'static Registry,
    provider: Option<&'static dyn ModuleProvider>,
    out: &mut dyn Write,
) {
    let symbolizer = clew_symbolizer::global();
    let (frames, end) = walk(machine, registry, provider);
    for (i, (pc, lookup)) in frames.into_iter().enumerate() {
        let (name, module, jit) = match symbolizer.symbolize(lookup) {
            Ok(s) => {
                let name = s
                    .frames
                    .first()
                    .and_then(|f| f.function.as_ref())
                    .map(|n| alloc::string::String::from(n.demangled()));
                let (module, jit) = match &s.module {
                    Some(m) => (
                        alloc::string::String::from(m.name.rsplit('/').next().unwrap_or(&m.name)),
                        m.kind == clew_symbolizer::ModuleKind::Jit,
                    ),
                    None => (alloc::string::String::from("?"), false),
                };
                (name, module, jit)
            }
            Err(_) => (None, alloc::string::String::from("?"), false),
        };
        let _ = writeln!(
            out,
            "#{i:<2} {pc:#018x} in {} ({}{module})",
            name.as_deref().unwrap_or("??"),
            if jit { "JIT " } else { "" }
        );
    }
    if let Some(e) = end {
        let _ = writeln!(out, "(walk ended: {e})");
    }
}

/// `monitor modules`: id, kind, text range, FDE and symbol counts, name.
pub fn modules(registry: &Registry, out: &mut dyn Write) {
    let ok = registry.try_for_each_module(|m| {
        let t = m.text();
        let kind = match m.kind() {
            ModuleKind::Jit => "jit",
            _ => "native",
        };
        let _ = writeln!(
            out,
            "{kind:<6} {:#x}-{:#x} fdes={} symbols={} {}",
            t.start,
            t.end,
            m.fde_index().fdes().len(),
            m.symbols().symbols().len(),
            m.name()
        );
    });
    if !ok {
        let _ = writeln!(out, "(the registry is being written by the stopped code)");
    }
}

/// `monitor trace`: the last `n` events of every ring of the global recorder, oldest
/// first.
pub fn trace(n: usize, out: &mut dyn Write) {
    let mut events: Vec<clew_tracer::Event> = Vec::new();
    clew_tracer::global().for_each_ring(|_, _, ring| {
        ring.read(ring.window(), |_, e| events.push(e));
    });
    events.sort_by_key(|e| e.ts);
    let skip = events.len().saturating_sub(n);
    if events.is_empty() {
        let _ = writeln!(out, "(no trace events)");
    }
    for e in &events[skip..] {
        let id = match (e.id.builtin_name(), e.id.as_user()) {
            (Some(b), _) => alloc::string::String::from(b),
            (None, Some(u)) => alloc::format!("user({u})"),
            _ => alloc::format!("{:#x}", e.id.0),
        };
        let _ = writeln!(
            out,
            "ts={} task={} {id} args={:?}",
            e.ts,
            e.task,
            &e.args[..(e.nargs as usize).min(e.args.len())]
        );
    }
}
