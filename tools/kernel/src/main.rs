//! The demo kernel's binary: the PVH boot code (32-bit entry, long mode) and a call into
//! the library, where everything else lives.
//!
//! This crate alone is compiled with `-C panic=abort` (a no_std binary cannot be
//! `panic=unwind` on stable: that needs the `eh_personality` lang item), so it holds no
//! code that must run during unwinding; the library and clew are `panic=unwind`.
#![no_std]
#![no_main]

// Keep the library (panic handler, `rust_eh_personality`, `_Unwind_Resume`) linked.
use clew_kernel as _;

// The PVH boot protocol: QEMU (`-kernel`) finds the `XEN_ELFNOTE_PHYS32_ENTRY` note (type
// 18) and enters `pvh_start32` in 32-bit protected mode, paging off, with the physical
// address of `struct hvm_start_info` in ebx. The trampoline enables PAE, loads page
// tables identity-mapping the first 4 GiB with 2 MiB pages, sets EFER.LME, turns paging
// on (long mode), loads a GDT with a 64-bit code segment and jumps to 64-bit code.
// SSE is enabled (CR4.OSFXSR/OSXMMEXCPT, CR0.MP, !CR0.EM): Wasm JIT code uses it.
// rbp is 0 in the first Rust frame: the frame-pointer fallback stops there.
core::arch::global_asm!(
    r#"
    .section .note.Xen, "a", @note
    .p2align 2
    .long 4
    .long 4
    .long 18
    .asciz "Xen"
    .long pvh_start32

    .section .text.boot, "ax", @progbits
    .code32
    .globl pvh_start32
pvh_start32:
    cli
    movl $boot_stack_top, %esp
    movl %ebx, %esi
    movl %cr4, %eax
    orl $0x620, %eax
    movl %eax, %cr4
    movl $boot_pml4, %eax
    movl %eax, %cr3
    movl $0xC0000080, %ecx
    rdmsr
    orl $0x100, %eax
    wrmsr
    movl %cr0, %eax
    andl $0xFFFFFFFB, %eax
    orl $0x80000003, %eax
    movl %eax, %cr0
    lgdt boot_gdt_ptr
    ljmp $0x08, $pvh_start64

    .code64
pvh_start64:
    movw $0x10, %ax
    movw %ax, %ds
    movw %ax, %es
    movw %ax, %ss
    xorl %eax, %eax
    movw %ax, %fs
    movw %ax, %gs
    movq $boot_stack_top, %rsp
    fninit
    xorl %ebp, %ebp
    movl %esi, %edi
    call clew_kernel_entry
1:
    hlt
    jmp 1b

    .section .data.boot, "aw", @progbits
    .p2align 12
boot_pml4:
    .quad boot_pdpt + 0x3
    .fill 511, 8, 0
boot_pdpt:
    .quad boot_pd + 0x3
    .quad boot_pd + 0x1003
    .quad boot_pd + 0x2003
    .quad boot_pd + 0x3003
    .fill 508, 8, 0
boot_pd:
    .set boot_page, 0
    .rept 2048
    .quad (boot_page << 21) | 0x83
    .set boot_page, boot_page + 1
    .endr

    .p2align 3
boot_gdt:
    .quad 0
    .quad 0x00AF9A000000FFFF
    .quad 0x00CF92000000FFFF
boot_gdt_end:
boot_gdt_ptr:
    .word boot_gdt_end - boot_gdt - 1
    .quad boot_gdt

    .section .bss.boot, "aw", @nobits
    .p2align 12
boot_stack:
    .skip 8 * 1024 * 1024
    .globl boot_stack_top
boot_stack_top:
    .text
"#,
    options(att_syntax)
);

/// The first Rust code: `start_info` is the physical (= virtual) address of PVH's
/// `struct hvm_start_info`.
#[unsafe(no_mangle)]
extern "C" fn clew_kernel_entry(start_info: u32) -> ! {
    clew_kernel::main(start_info as usize)
}
