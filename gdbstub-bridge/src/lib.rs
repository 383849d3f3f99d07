//! clew-gdbstub-bridge: will hold a GDB Remote Serial Protocol stub (over the `gdbstub`
//! crate) whose target serves registers, memory, breakpoints and JIT modules as libraries.
//! Not yet implemented: see the gdb bridge issue.
#![no_std]
