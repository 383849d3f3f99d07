//! Prints a captured backtrace, symbolized by clew's symbolizer: kernel frames from the
//! kernel's ELF image (DWARF, then the symbol table), JIT frames from the registry.

use clew_unwinder::FrameKind;

use crate::println;
use crate::runtime::PanicTrace;

/// One line a frame (and one more per inlined call), innermost first:
/// `#N 0xPC function at file:line [how it was unwound]`.
pub fn print_trace(trace: &PanicTrace) {
    for (i, &(pc, kind)) in trace.pcs[..trace.len].iter().enumerate() {
        let how = match kind {
            FrameKind::Module(k) => match k {
                clew_unwinder::ModuleKind::Jit => "jit cfi",
                _ => "cfi",
            },
            FrameKind::FramePointer => "frame pointer",
            FrameKind::Provided => "provided cfi",
            FrameKind::Unknown => "no unwind info",
        };
        // Every PC is a return address (the first: into the capturing function); the
        // call instruction is the byte before.
        print_frame(i, pc, pc - 1, how);
    }
}

fn print_frame(i: usize, pc: u64, lookup: u64, how: &str) {
    match clew_symbolizer::global().symbolize(lookup) {
        Ok(s) if !s.frames.is_empty() => {
            for (j, f) in s.frames.iter().enumerate() {
                let name = f.function.as_ref().map_or("??", |n| n.demangled());
                let at = match (&f.file, f.line) {
                    (Some(file), Some(line)) => alloc::format!(" at {file}:{line}"),
                    (Some(file), None) => alloc::format!(" at {file}"),
                    _ => alloc::string::String::new(),
                };
                // Innermost first: every frame but the last is inlined into the next.
                let inlined = if f.inlined { " (inlined)" } else { "" };
                if j == 0 {
                    println!("  #{i:<2} {pc:#018x} {name}{at}{inlined} [{how}]");
                } else {
                    println!("      {:18} {name}{at}{inlined}", "");
                }
            }
        }
        _ => println!("  #{i:<2} {pc:#018x} ?? [{how}]"),
    }
}
