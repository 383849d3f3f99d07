//! clew-symbolizer: will map addresses to functions, inlined frames and file:line for
//! ELF images and runtime-registered JIT symbol maps (no_std + alloc core). Not yet
//! implemented: see the symbolizer issue.
#![no_std]
