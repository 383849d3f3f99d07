//! `clew demo`: the showcase.

use anyhow::Result;
use clew_unwinder::{LiveMemory, Native, Unwinder, global, os::linux};

/// Walks the current stack through a few nested calls and prints each frame.
pub fn run() -> Result<()> {
    linux::ensure_loaded_objects();
    println!("clew demo: walking this process's stack with clew's DWARF CFI unwinder");
    nested(3);
    Ok(())
}

#[inline(never)]
fn nested(depth: u32) {
    if depth == 0 {
        print_stack();
    } else {
        nested(depth - 1);
    }
    std::hint::black_box(depth);
}

#[inline(never)]
fn print_stack() {
    let regs = clew_unwinder::arch::x86_64::Regs::capture();
    let bounds = linux::current_stack_bounds();
    let mem = LiveMemory::with_bounds(&bounds);
    let unwinder = Unwinder::<Native>::new(global());
    let guard = global().pin();
    for (i, frame) in unwinder.frames(regs, false, &mem, None).enumerate() {
        match frame {
            Ok(f) => {
                let module = guard
                    .find_module(f.lookup_pc() as usize)
                    .map(|m| m.name().to_owned())
                    .unwrap_or_else(|| "?".into());
                let cfa = f
                    .cfa
                    .map(|c| format!("{c:#x}"))
                    .unwrap_or_else(|| "-".into());
                println!(
                    "  #{i:<2} pc {:#014x}  cfa {cfa:>14}  {:?}  {module}",
                    f.pc, f.kind
                );
            }
            Err(e) => println!("  walk ended: {e}"),
        }
    }
}
