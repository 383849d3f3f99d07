//! The unwinder computes exactly the caller registers the CFI describes, for every kind
//! of rule, on `.eh_frame` sections built with `gimli::write` for fake functions and
//! walked over synthetic stacks (`SliceMemory`).
//!
//! Covered: CFA = register + offset (rsp and rbp based) and CFA expressions; register
//! rules undefined (end of stack), same value, offset, val_offset, register, expression
//! and val_expression; `DW_CFA_remember_state`/`restore_state`; rows at several PCs of
//! one FDE (`advance_loc`, `advance_loc1/2/4`); signal-frame CIEs (`S`: the next frame's
//! PC is exact), also across a signal stack above or below the interrupted stack; walks
//! through several frames of several modules (`Frame::module`, `FrameKind`,
//! `Frame::lookup_pc`). Every section is built with the FDE pointer encodings absptr,
//! pcrel|sdata4, udata8 and sdata8, and every walk is run without a rule cache, with a
//! cold one and with a warm one, which must agree.

mod support;

use clew_unwinder::arch::x86_64::Regs;
use clew_unwinder::{
    Error, Frame, FrameKind, ModuleHandle, ModuleKind, Native, Registry, UnwindCache, Unwinder,
};
use gimli::Register;
use support::*;

const STACK_BASE: u64 = 0x7000_0000_0000;

fn unwinder(reg: &Registry) -> Unwinder<'_, Native> {
    Unwinder::new(reg)
}

/// The registers of the caller: `r` with rsp = `cfa`, pc = `ra` and `set` applied.
fn caller(r: &Regs, cfa: u64, ra: u64, set: &[(Register, u64)]) -> Regs {
    let mut c = *r;
    c.gpr[7] = cfa;
    c.gpr[16] = ra;
    for &(reg, v) in set {
        c.gpr[reg.0 as usize] = v;
    }
    c
}

fn frame(
    pc: u64,
    sp: u64,
    cfa: Option<u64>,
    module: Option<ModuleHandle>,
    kind: FrameKind,
    exact: bool,
) -> Frame {
    Frame {
        pc,
        sp,
        cfa,
        module: module.map(|h| h.0),
        kind,
        exact_pc: exact,
    }
}

/// The frame a walk ends with when a return address leads nowhere registered.
fn unknown(pc: u64, sp: u64) -> Frame {
    frame(pc, sp, None, None, FrameKind::Unknown, false)
}

const JIT: FrameKind = FrameKind::Module(ModuleKind::Jit);

/// Registers `m` as a JIT module in a fresh registry.
fn registry_with(m: &Synth) -> (Registry, ModuleHandle) {
    let reg = Registry::new();
    let h = m.register(&reg, ModuleKind::Jit).expect("register");
    (reg, h)
}

/// Walks one frame of `m` at `pc` (exact or a return address) with rsp = `sp` and the
/// extra registers `set`, and checks the result is that frame, with CFA `sp + cfa_off`,
/// then the unknown caller whose registers are the callee's with `restored` applied.
#[allow(clippy::too_many_arguments)]
fn check_one_frame(
    reg: &Registry,
    h: ModuleHandle,
    stack: &Stack,
    pc: u64,
    exact: bool,
    r0: Regs,
    cfa: u64,
    restored: &[(Register, u64)],
) {
    let w = walk(&unwinder(reg), r0, exact, &stack.mem());
    let ra = stack.get(cfa - 8);
    let sp = r0.gpr[7];
    assert_eq!(
        w.frames,
        vec![
            Ok(frame(pc, sp, Some(cfa), Some(h), JIT, exact)),
            Ok(unknown(ra, cfa)),
        ],
        "pc {pc:#x} exact {exact}"
    );
    assert_eq!(
        w.regs[1],
        caller(&r0, cfa, ra, restored),
        "pc {pc:#x} exact {exact}"
    );
}

#[test]
fn cfa_rsp_offset_rows_at_every_advance() {
    // One long function whose rows change at offsets that need advance_loc,
    // advance_loc1, advance_loc2 and advance_loc4.
    let instrs = vec![
        (1, I::CfaOffset(16)),
        (1, I::Offset(RBP, -16)),
        (0x50, I::CfaOffset(24)),
        (0x50, I::Offset(RBX, -24)),
        (0x200, I::CfaOffset(48)),
        (0x10300, I::CfaOffset(8)),
        (0x10300, I::SameValue(RBP)),
        (0x10300, I::SameValue(RBX)),
    ];
    // (offset into the function, CFA offset, rbp saved, rbx saved)
    let rows: &[(u64, u64, bool, bool)] = &[
        (0, 8, false, false),
        (1, 16, true, false),
        (0x4f, 16, true, false),
        (0x50, 24, true, true),
        (0x1ff, 24, true, true),
        (0x200, 48, true, true),
        (0x102ff, 48, true, true),
        (0x10300, 8, false, false),
        (0x1ffff, 8, false, false),
    ];
    for (name, enc) in ENCODINGS {
        let m = leak_module(
            0x20200,
            &[CieSpec::standard(enc)],
            &[fde(0x100, 0x20000, instrs.clone())],
        );
        let (reg, h) = registry_with(&m);
        let stack = Stack::new(STACK_BASE, 64);
        let sp = stack.addr(8);
        for &(off, cfa_off, rbp, rbx) in rows {
            let cfa = sp + cfa_off;
            let mut restored = vec![];
            if rbp {
                restored.push((RBP, pattern(cfa - 16)));
            }
            if rbx {
                restored.push((RBX, pattern(cfa - 24)));
            }
            // Exact PC at the row's offset.
            let pc = m.at(0x100 + off);
            let r0 = regs(pc, sp, &[]);
            check_one_frame(&reg, h, &stack, pc, true, r0, cfa, &restored);
            // A return address one past it: looked up at `pc - 1`, same row.
            let pc = pc + 1;
            let r0 = regs(pc, sp, &[]);
            check_one_frame(&reg, h, &stack, pc, false, r0, cfa, &restored);
        }
        // Just outside the FDE: no unwind info, the walk ends with that frame.
        for pc in [m.at(0xff), m.at(0x100 + 0x20000)] {
            let w = walk(&unwinder(&reg), regs(pc, sp, &[]), true, &stack.mem());
            assert_eq!(
                w.frames,
                vec![Ok(unknown(pc, sp).with_exact(true))],
                "{name}"
            );
        }
        // A return address right after the function: looked up inside it.
        let pc = m.at(0x100 + 0x20000);
        let r0 = regs(pc, sp, &[]);
        check_one_frame(&reg, h, &stack, pc, false, r0, sp + 8, &[]);
    }
}

trait WithExact {
    fn with_exact(self, exact: bool) -> Self;
}
impl WithExact for Frame {
    fn with_exact(mut self, exact: bool) -> Self {
        self.exact_pc = exact;
        self
    }
}

#[test]
fn cfa_rbp_based() {
    for (_, enc) in ENCODINGS {
        let m = leak_module(
            0x200,
            &[CieSpec::standard(enc)],
            &[fde(
                0x100,
                0x40,
                vec![
                    (1, I::CfaOffset(16)),
                    (1, I::Offset(RBP, -16)),
                    (4, I::CfaRegister(RBP)),
                ],
            )],
        );
        let (reg, h) = registry_with(&m);
        let stack = Stack::new(STACK_BASE, 256);
        let (sp, rbp) = (stack.addr(10), stack.addr(100));
        // Before `mov rbp, rsp`: rsp based.
        let pc = m.at(0x102);
        let r0 = regs(pc, sp, &[(RBP, rbp)]);
        check_one_frame(
            &reg,
            h,
            &stack,
            pc,
            true,
            r0,
            sp + 16,
            &[(RBP, pattern(sp))],
        );
        // After: rbp based, rsp anywhere below.
        for off in [4, 0x20, 0x3f] {
            let pc = m.at(0x100 + off);
            let r0 = regs(pc, sp, &[(RBP, rbp)]);
            check_one_frame(
                &reg,
                h,
                &stack,
                pc,
                true,
                r0,
                rbp + 16,
                &[(RBP, pattern(rbp))],
            );
        }
    }
}

#[test]
fn cfa_expression() {
    for (_, enc) in ENCODINGS {
        let m = leak_module(
            0x400,
            &[CieSpec::standard(enc)],
            &[
                // CFA = *(rsp + 8)
                fde(
                    0x100,
                    0x40,
                    vec![(1, I::CfaExpression(expr(&[0x77, 0x08, 0x06])))],
                ),
                // CFA = rbp + 16 as an expression, rbp saved: same as the compact rbp frame.
                fde(
                    0x200,
                    0x40,
                    vec![
                        (0, I::CfaExpression(expr(&[0x76, 0x00, 0x23, 0x10]))),
                        (0, I::Offset(RBP, -16)),
                    ],
                ),
                fde(
                    0x300,
                    0x40,
                    vec![
                        (0, I::CfaOffset(16)),
                        (0, I::Offset(RBP, -16)),
                        (0, I::CfaRegister(RBP)),
                    ],
                ),
            ],
        );
        let (reg, h) = registry_with(&m);
        let mut stack = Stack::new(STACK_BASE, 256);
        let sp = stack.addr(10);
        let target = stack.addr(200);
        stack.set(sp + 8, target);
        // Before the instruction: the CIE's rule.
        let pc = m.at(0x100);
        check_one_frame(&reg, h, &stack, pc, true, regs(pc, sp, &[]), sp + 8, &[]);
        let pc = m.at(0x101);
        check_one_frame(&reg, h, &stack, pc, true, regs(pc, sp, &[]), target, &[]);

        // The expression and the compact form of the rbp frame agree.
        let rbp = stack.addr(100);
        for f in [0x200, 0x300] {
            let pc = m.at(f + 0x10);
            let r0 = regs(pc, sp, &[(RBP, rbp)]);
            check_one_frame(
                &reg,
                h,
                &stack,
                pc,
                false,
                r0,
                rbp + 16,
                &[(RBP, pattern(rbp))],
            );
        }
    }
}

#[test]
fn undefined_return_address_ends_the_walk() {
    for (_, enc) in ENCODINGS {
        let m = leak_module(
            0x200,
            &[CieSpec::standard(enc)],
            &[
                fde(0x100, 0x40, vec![(0, I::Undefined(RA))]),
                // Undefined in a row that needs the full evaluation.
                fde(
                    0x140,
                    0x40,
                    vec![(0, I::Undefined(RA)), (0, I::ValOffset(RBX, -8))],
                ),
            ],
        );
        let (reg, h) = registry_with(&m);
        let stack = Stack::new(STACK_BASE, 64);
        let sp = stack.addr(4);
        for (pc, restored) in [(m.at(0x110), vec![]), (m.at(0x150), vec![(RBX, sp)])] {
            let r0 = regs(pc, sp, &[]);
            let w = walk(&unwinder(&reg), r0, false, &stack.mem());
            assert_eq!(
                w.frames,
                vec![Ok(frame(pc, sp, Some(sp + 8), Some(h), JIT, false))]
            );
            assert_eq!(w.regs[1], caller(&r0, sp + 8, 0, &restored));
            let mut pcs = [0usize; 8];
            assert_eq!(
                unwinder(&reg).trace_into(r0, false, &stack.mem(), None, &mut pcs),
                1
            );
            assert_eq!(pcs[0], pc as usize);
        }
    }
}

#[test]
fn same_value_offset_and_val_offset() {
    for (_, enc) in ENCODINGS {
        let cie = CieSpec::standard(enc).with(I::Offset(RBX, -16));
        let m = leak_module(
            0x400,
            &[cie],
            &[
                // rbx saved by the CIE, then declared unchanged.
                fde(0x100, 0x40, vec![(4, I::SameValue(RBX))]),
                // Offsets below and above the CFA.
                fde(
                    0x200,
                    0x40,
                    vec![
                        (0, I::CfaOffset(32)),
                        (0, I::Offset(R12, 16)),
                        (0, I::Offset(R13, -32)),
                    ],
                ),
                // Values computed from the CFA.
                fde(
                    0x300,
                    0x40,
                    vec![
                        (0, I::CfaOffset(32)),
                        (0, I::ValOffset(RBX, -32)),
                        (0, I::ValOffset(R12, 24)),
                    ],
                ),
            ],
        );
        let (reg, h) = registry_with(&m);
        let stack = Stack::new(STACK_BASE, 64);
        let sp = stack.addr(8);
        let one = |pc: u64, cfa: u64, restored: &[(Register, u64)]| {
            check_one_frame(&reg, h, &stack, pc, true, regs(pc, sp, &[]), cfa, restored)
        };
        one(m.at(0x102), sp + 8, &[(RBX, pattern(sp - 8))]);
        one(m.at(0x104), sp + 8, &[]);
        one(
            m.at(0x210),
            sp + 32,
            &[
                (RBX, pattern(sp + 16)),
                (R12, pattern(sp + 48)),
                (R13, pattern(sp)),
            ],
        );
        one(m.at(0x310), sp + 32, &[(RBX, sp), (R12, sp + 56)]);
    }
}

#[test]
fn register_rules_use_the_callee_values() {
    for (_, enc) in ENCODINGS {
        let m = leak_module(
            0x400,
            &[CieSpec::standard(enc)],
            &[
                // A rotation: each rule must read the callee's value, not one just restored.
                fde(
                    0x100,
                    0x40,
                    vec![
                        (0, I::Register(RBX, RAX)),
                        (0, I::Register(RCX, RBX)),
                        (0, I::Register(RAX, RCX)),
                    ],
                ),
                // The return address kept in a register.
                fde(0x200, 0x40, vec![(0, I::Register(RA, R11))]),
            ],
        );
        let (reg, h) = registry_with(&m);
        let stack = Stack::new(STACK_BASE, 64);
        let sp = stack.addr(8);
        let pc = m.at(0x110);
        let r0 = regs(pc, sp, &[(RAX, 0xa), (RBX, 0xb), (RCX, 0xc)]);
        check_one_frame(
            &reg,
            h,
            &stack,
            pc,
            true,
            r0,
            sp + 8,
            &[(RBX, 0xa), (RCX, 0xb), (RAX, 0xc)],
        );

        let pc = m.at(0x210);
        let ra = 0x4444_0000_1234;
        let r0 = regs(pc, sp, &[(R11, ra)]);
        let w = walk(&unwinder(&reg), r0, true, &stack.mem());
        assert_eq!(
            w.frames,
            vec![
                Ok(frame(pc, sp, Some(sp + 8), Some(h), JIT, true)),
                Ok(unknown(ra, sp + 8)),
            ]
        );
        assert_eq!(w.regs[1], caller(&r0, sp + 8, ra, &[]));
    }
}

#[test]
fn expression_and_val_expression_rules() {
    for (_, enc) in ENCODINGS {
        let m = leak_module(
            0x400,
            &[CieSpec::standard(enc)],
            &[
                fde(
                    0x100,
                    0x40,
                    vec![
                        (0, I::CfaOffset(32)),
                        // rbx at CFA - 24 (the CFA is pushed first).
                        (0, I::Expression(RBX, expr(&[0x10, 24, 0x1c]))),
                        // r12 at rsp + 16 (callee rsp).
                        (0, I::Expression(R12, expr(&[0x77, 16]))),
                        // The return address through an expression too.
                        (0, I::Expression(RA, expr(&[0x38, 0x1c]))),
                    ],
                ),
                fde(
                    0x200,
                    0x40,
                    vec![
                        // rbx = rax + 5
                        (0, I::ValExpression(RBX, expr(&[0x70, 5]))),
                        // r12 = CFA + 0x1234
                        (0, I::ValExpression(R12, expr(&[0x10, 0xb4, 0x24, 0x22]))),
                        // r13 = 7, as a stack value
                        (0, I::ValExpression(R13, expr(&[0x37, 0x9f]))),
                    ],
                ),
            ],
        );
        let (reg, h) = registry_with(&m);
        let stack = Stack::new(STACK_BASE, 64);
        let sp = stack.addr(8);
        let pc = m.at(0x110);
        check_one_frame(
            &reg,
            h,
            &stack,
            pc,
            true,
            regs(pc, sp, &[]),
            sp + 32,
            &[(RBX, pattern(sp + 8)), (R12, pattern(sp + 16))],
        );
        let pc = m.at(0x210);
        let r0 = regs(pc, sp, &[(RAX, 0x100)]);
        check_one_frame(
            &reg,
            h,
            &stack,
            pc,
            true,
            r0,
            sp + 8,
            &[(RBX, 0x105), (R12, sp + 8 + 0x1234), (R13, 7)],
        );
    }
}

#[test]
fn remember_and_restore_state() {
    for (_, enc) in ENCODINGS {
        let m = leak_module(
            0x200,
            &[CieSpec::standard(enc)],
            &[fde(
                0x100,
                0x60,
                vec![
                    (1, I::CfaOffset(16)),
                    (1, I::Offset(RBP, -16)),
                    (4, I::CfaRegister(RBP)),
                    (5, I::Offset(RBX, -24)),
                    // An epilogue in the middle: pop rbx; pop rbp; ret
                    (0x20, I::RememberState),
                    (0x20, I::Restore(RBX)),
                    (0x21, I::RememberState),
                    (0x21, I::Cfa(RSP, 8)),
                    (0x21, I::Restore(RBP)),
                    (0x22, I::RestoreState),
                    (0x23, I::RestoreState),
                ],
            )],
        );
        let (reg, h) = registry_with(&m);
        let stack = Stack::new(STACK_BASE, 256);
        let (sp, rbp) = (stack.addr(10), stack.addr(100));
        let body = [(RBP, pattern(rbp)), (RBX, pattern(rbp - 8))];
        // (PC offset, expected CFA, expected restored registers)
        type Case<'a> = (u64, u64, &'a [(Register, u64)]);
        let cases: &[Case] = &[
            (0x10, rbp + 16, &body),
            (0x20, rbp + 16, &[(RBP, pattern(rbp))]),
            (0x21, sp + 8, &[]),
            (0x22, rbp + 16, &[(RBP, pattern(rbp))]),
            (0x23, rbp + 16, &body),
            (0x5f, rbp + 16, &body),
        ];
        for &(off, cfa, restored) in cases {
            let pc = m.at(0x100 + off);
            let r0 = regs(pc, sp, &[(RBP, rbp)]);
            check_one_frame(&reg, h, &stack, pc, true, r0, cfa, restored);
        }
    }
}

/// A handler `H` interrupted a function `F` at its first byte; the kernel's signal frame
/// sits above `H`'s frame and the trampoline `T` (a signal-frame CIE) restores `F`'s
/// registers from it. `E`, right before `F`, ends the walk if `F`'s PC were looked up at
/// `pc - 1`.
struct SignalCase {
    m: Synth,
    reg: Registry,
    h: ModuleHandle,
}

const H: u64 = 0x100;
const T: u64 = 0x200;
const E: u64 = 0x300;
const F: u64 = 0x310;
const SIGFRAME: i32 = 0x80;

impl SignalCase {
    fn new(enc: gimli::DwEhPe, signal: bool, expressions: bool) -> Self {
        let trampoline_cie = if signal {
            CieSpec::standard(enc).signal()
        } else {
            CieSpec::standard(enc)
        };
        let restore = if expressions {
            // Like glibc's __restore_rt: DW_CFA_expression with breg7 (rsp).
            vec![
                (0, I::Cfa(RSP, SIGFRAME)),
                (0, I::Expression(RA, expr(&[0x77, 0]))),
                (0, I::Expression(RSP, expr(&[0x77, 8]))),
                (0, I::Expression(RBP, expr(&[0x77, 0x10]))),
                (0, I::Expression(RBX, expr(&[0x77, 0x18]))),
            ]
        } else {
            vec![
                (0, I::Cfa(RSP, SIGFRAME)),
                (0, I::Offset(RA, -SIGFRAME)),
                (0, I::Offset(RSP, 8 - SIGFRAME)),
                (0, I::Offset(RBP, 0x10 - SIGFRAME)),
                (0, I::Offset(RBX, 0x18 - SIGFRAME)),
            ]
        };
        let m = leak_module(
            0x400,
            &[CieSpec::standard(enc), trampoline_cie],
            &[
                fde_cie(0, H, 0x40, vec![]),
                // Like glibc, the FDE starts one byte early so that `T - 1` is covered.
                fde_cie(1, T - 1, 0x11, restore),
                fde_cie(0, E, 0x10, vec![(0, I::Undefined(RA))]),
                fde_cie(
                    0,
                    F,
                    0x30,
                    vec![(0, I::CfaOffset(16)), (0, I::Offset(RBP, -16))],
                ),
            ],
        );
        let (reg, h) = registry_with(&m);
        SignalCase { m, reg, h }
    }

    /// Builds the stack with the handler's frames at word `alt` and the interrupted
    /// frame at word `main`; returns it with the initial registers.
    fn stack(&self, alt: usize, main: usize) -> (Stack, Regs) {
        let mut s = Stack::new(STACK_BASE, 1024);
        let sp0 = s.addr(alt);
        s.set(sp0, self.m.at(T));
        let sp1 = sp0 + 8;
        s.set(sp1, self.m.at(F));
        s.set(sp1 + 8, s.addr(main));
        s.set(sp1 + 0x10, 0xb00b);
        s.set(sp1 + 0x18, 0xbeef);
        (s, regs(self.m.at(H + 5), sp0, &[]))
    }
}

#[test]
fn signal_frame_makes_the_next_pc_exact() {
    for (_, enc) in ENCODINGS {
        for expressions in [false, true] {
            // The signal stack below and above the interrupted one (sigaltstack).
            for (alt, main) in [(100, 600), (600, 100)] {
                let c = SignalCase::new(enc, true, expressions);
                let (stack, r0) = c.stack(alt, main);
                let w = walk(&unwinder(&c.reg), r0, true, &stack.mem());
                let (sp0, sp2) = (stack.addr(alt), stack.addr(main));
                let sp1 = sp0 + 8;
                let cfa2 = sp2 + 16;
                let (t, f) = (c.m.at(T), c.m.at(F));
                let expected = vec![
                    Ok(frame(r0.gpr[16], sp0, Some(sp1), Some(c.h), JIT, true)),
                    Ok(frame(
                        t,
                        sp1,
                        Some(sp1 + SIGFRAME as u64),
                        Some(c.h),
                        JIT,
                        false,
                    )),
                    Ok(frame(f, sp2, Some(cfa2), Some(c.h), JIT, true)),
                    Ok(unknown(pattern(cfa2 - 8), cfa2)),
                ];
                assert_eq!(
                    w.frames, expected,
                    "expressions {expressions}, alt {alt}, main {main}"
                );
                let frames = w.ok();
                assert_eq!(frames[1].lookup_pc(), t - 1);
                assert_eq!(frames[2].lookup_pc(), f);
                // The interrupted frame's registers come from the signal frame.
                let mut r2 = r0;
                r2.gpr[16] = f;
                r2.gpr[7] = sp2;
                r2.gpr[6] = 0xb00b;
                r2.gpr[3] = 0xbeef;
                assert_eq!(w.regs[2], r2);
            }
        }
    }
}

#[test]
fn without_signal_augmentation_the_pc_is_a_return_address() {
    for (_, enc) in ENCODINGS {
        let c = SignalCase::new(enc, false, false);
        let (stack, r0) = c.stack(100, 600);
        let w = walk(&unwinder(&c.reg), r0, true, &stack.mem());
        let frames = w.ok();
        // The interrupted PC is now looked up at F - 1, inside E, which ends the walk.
        assert_eq!(frames.len(), 3, "{frames:#?}");
        assert_eq!(frames[2].pc, c.m.at(F));
        assert!(!frames[2].exact_pc);
        assert_eq!(frames[2].lookup_pc(), c.m.at(E + 0xf));
        assert_eq!(frames[2].cfa, Some(stack.addr(600) + 8));
    }
}

#[test]
fn explicit_stack_pointer_rule_wins_over_the_cfa() {
    for (_, enc) in ENCODINGS {
        let m = leak_module(
            0x400,
            &[CieSpec::standard(enc)],
            &[
                fde(
                    0x100,
                    0x40,
                    vec![(0, I::CfaOffset(16)), (0, I::Offset(RSP, -16))],
                ),
                fde(
                    0x200,
                    0x40,
                    vec![
                        (0, I::CfaOffset(16)),
                        (0, I::Expression(RSP, expr(&[0x10, 16, 0x1c]))),
                    ],
                ),
            ],
        );
        let (reg, h) = registry_with(&m);
        let mut stack = Stack::new(STACK_BASE, 256);
        let sp = stack.addr(8);
        let saved_sp = stack.addr(200);
        stack.set(sp, saved_sp);
        for f in [0x100, 0x200] {
            let pc = m.at(f + 8);
            let w = walk(&unwinder(&reg), regs(pc, sp, &[]), true, &stack.mem());
            assert_eq!(
                w.frames,
                vec![
                    Ok(frame(pc, sp, Some(sp + 16), Some(h), JIT, true)),
                    Ok(unknown(pattern(sp + 8), saved_sp)),
                ],
                "function at {f:#x}"
            );
        }
    }
}

#[test]
fn rows_too_big_for_a_compact_rule() {
    for (_, enc) in ENCODINGS {
        let many: Vec<_> = [RBX, RBP, R12, R13, R14, R15, RSI, RDI]
            .iter()
            .enumerate()
            .map(|(i, &r)| (0, I::Offset(r, -16 - 8 * i as i32)))
            .chain([(0, I::CfaOffset(0x80))])
            .collect();
        let m = leak_module(
            0x400,
            &[CieSpec::standard(enc)],
            &[
                // More saved registers than a compact rule holds.
                fde(0x100, 0x40, many),
                // An offset beyond i16.
                fde(
                    0x200,
                    0x40,
                    vec![(0, I::CfaOffset(0x10010)), (0, I::Offset(RBX, -0x10000))],
                ),
                // A register the register set does not hold (xmm0) is ignored.
                fde(0x300, 0x40, vec![(0, I::Offset(Register(17), -16))]),
            ],
        );
        let (reg, h) = registry_with(&m);
        let stack = Stack::new(STACK_BASE, 0x2100);
        let sp = stack.addr(8);
        let cfa = sp + 0x80;
        let restored: Vec<_> = [RBX, RBP, R12, R13, R14, R15, RSI, RDI]
            .iter()
            .enumerate()
            .map(|(i, &r)| (r, pattern(cfa - 16 - 8 * i as u64)))
            .collect();
        let pc = m.at(0x110);
        check_one_frame(&reg, h, &stack, pc, true, regs(pc, sp, &[]), cfa, &restored);
        let pc = m.at(0x210);
        check_one_frame(
            &reg,
            h,
            &stack,
            pc,
            true,
            regs(pc, sp, &[]),
            sp + 0x10010,
            &[(RBX, pattern(sp + 0x10))],
        );
        let pc = m.at(0x310);
        check_one_frame(&reg, h, &stack, pc, true, regs(pc, sp, &[]), sp + 8, &[]);
    }
}

#[test]
fn cfa_in_a_register_the_set_does_not_hold_is_an_error() {
    let m = leak_module(
        0x400,
        &[CieSpec::standard(ABSPTR)],
        &[
            fde(0x100, 0x40, vec![(0, I::Cfa(Register(17), 16))]),
            fde(
                0x200,
                0x40,
                vec![(0, I::CfaExpression(expr(&[0x92, 17, 0])))],
            ),
        ],
    );
    let (reg, _) = registry_with(&m);
    let stack = Stack::new(STACK_BASE, 64);
    for f in [0x100, 0x200] {
        let pc = m.at(f + 8);
        let w = walk(
            &unwinder(&reg),
            regs(pc, stack.addr(8), &[]),
            true,
            &stack.mem(),
        );
        assert_eq!(w.frames.len(), 2, "{w:#?}");
        assert!(w.frames[0].is_ok());
        assert!(
            matches!(w.error(), Some(Error::UnsupportedRule { .. })),
            "{w:#?}"
        );
    }
}

#[test]
fn return_address_at_a_function_boundary() {
    for (_, enc) in ENCODINGS {
        let m = leak_module(
            0x400,
            &[CieSpec::standard(enc)],
            &[
                fde(0x100, 0x10, vec![(0, I::Undefined(RA))]),
                fde(0x110, 0x10, vec![(0, I::CfaOffset(16))]),
            ],
        );
        let (reg, h) = registry_with(&m);
        let stack = Stack::new(STACK_BASE, 64);
        let sp = stack.addr(8);
        let pc = m.at(0x110);
        // A return address: the call was the last instruction of the function before.
        let w = walk(&unwinder(&reg), regs(pc, sp, &[]), false, &stack.mem());
        assert_eq!(
            w.frames,
            vec![Ok(frame(pc, sp, Some(sp + 8), Some(h), JIT, false))]
        );
        assert_eq!(w.ok()[0].lookup_pc(), pc - 1);
        // An exact PC: the first instruction of the function after.
        let w = walk(&unwinder(&reg), regs(pc, sp, &[]), true, &stack.mem());
        assert_eq!(w.ok()[0].cfa, Some(sp + 16));
        assert_eq!(w.ok()[0].lookup_pc(), pc);
        assert_eq!(w.frames.len(), 2);
    }
}

/// Five frames through three modules of different kinds, each frame with another
/// kind of rule: leaf, rbp frame, saved callee-saved registers, CFA expression with
/// val_offset, and the outermost frame.
#[test]
fn walk_through_several_frames_and_modules() {
    for (name, enc) in ENCODINGS {
        let cie = [CieSpec::standard(enc)];
        let s = leak_module(
            0x400,
            &cie,
            &[
                fde(0x100, 0x40, vec![]),
                fde(
                    0x200,
                    0x40,
                    vec![
                        (0, I::CfaOffset(16)),
                        (0, I::Offset(RBP, -16)),
                        (0, I::CfaRegister(RBP)),
                    ],
                ),
            ],
        );
        let l = leak_module(
            0x400,
            &cie,
            &[fde(
                0x100,
                0x40,
                vec![
                    (0, I::CfaOffset(0x30)),
                    (0, I::Offset(RBX, -16)),
                    (0, I::Offset(R12, -24)),
                ],
            )],
        );
        let j = leak_module(
            0x400,
            &cie,
            &[
                fde(
                    0x100,
                    0x40,
                    vec![
                        (0, I::CfaExpression(expr(&[0x77, 0x20]))),
                        (0, I::Offset(R13, -16)),
                        (0, I::ValOffset(R14, -0x20)),
                    ],
                ),
                fde(
                    0x200,
                    0x40,
                    vec![(0, I::CfaOffset(16)), (0, I::Undefined(RA))],
                ),
            ],
        );
        let reg = Registry::new();
        let hs = s.register(&reg, ModuleKind::Static).unwrap();
        let hl = l.register(&reg, ModuleKind::LoadedObject).unwrap();
        let hj = j.register(&reg, ModuleKind::Jit).unwrap();
        assert_eq!(reg.len(), 3);

        let mut st = Stack::new(STACK_BASE, 512);
        let (a, b, c, d, e) = (
            s.at(0x110),
            s.at(0x211),
            l.at(0x121),
            j.at(0x111),
            j.at(0x231),
        );
        let sp0 = st.addr(16);
        st.set(sp0, b);
        let sp1 = sp0 + 8;
        let rbp = st.addr(40);
        st.set(rbp, 0x4242);
        st.set(rbp + 8, c);
        let sp2 = rbp + 16;
        let cfa2 = sp2 + 0x30;
        st.set(cfa2 - 8, d);
        st.set(cfa2 - 16, 0x3333);
        st.set(cfa2 - 24, 0x1212);
        let sp3 = cfa2;
        let cfa3 = sp3 + 0x20;
        st.set(cfa3 - 8, e);
        st.set(cfa3 - 16, 0x1313);
        let sp4 = cfa3;
        let cfa4 = sp4 + 16;

        let r0 = regs(a, sp0, &[(RBP, rbp)]);
        let w = walk(&unwinder(&reg), r0, false, &st.mem());
        let st_k = FrameKind::Module(ModuleKind::Static);
        let lo_k = FrameKind::Module(ModuleKind::LoadedObject);
        assert_eq!(
            w.frames,
            vec![
                Ok(frame(a, sp0, Some(sp1), Some(hs), st_k, false)),
                Ok(frame(b, sp1, Some(sp2), Some(hs), st_k, false)),
                Ok(frame(c, sp2, Some(cfa2), Some(hl), lo_k, false)),
                Ok(frame(d, sp3, Some(cfa3), Some(hj), JIT, false)),
                Ok(frame(e, sp4, Some(cfa4), Some(hj), JIT, false)),
            ],
            "{name}"
        );
        for f in w.ok() {
            assert_eq!(f.lookup_pc(), f.pc - 1);
        }
        let end = caller(
            &r0,
            cfa4,
            0,
            &[
                (RBP, 0x4242),
                (RBX, 0x3333),
                (R12, 0x1212),
                (R13, 0x1313),
                (R14, sp3),
            ],
        );
        assert_eq!(w.regs[5], end, "{name}");
        // The same walk bounded by depth.
        let u = Unwinder::<Native>::new(&reg).with_max_depth(3);
        let short = walk(&u, r0, false, &st.mem());
        assert_eq!(short.frames[..3], w.frames[..3]);
        assert_eq!(short.frames[3], Err(Error::TooDeep));
        assert_eq!(short.frames.len(), 4);
    }
}

#[test]
fn cache_keeps_compact_rules_only() {
    let m = leak_module(
        0x400,
        &[CieSpec::standard(PCREL_SDATA4)],
        &[
            fde(
                0x100,
                0x40,
                vec![(0, I::CfaOffset(16)), (0, I::Offset(RBX, -16))],
            ),
            fde(0x200, 0x40, vec![(0, I::ValOffset(RBX, -16))]),
        ],
    );
    let (reg, h) = registry_with(&m);
    let stack = Stack::new(STACK_BASE, 64);
    let sp = stack.addr(8);
    let mut cache = Box::new(UnwindCache::new());
    let pc = m.at(0x110);
    let _ = walk_once(
        &unwinder(&reg),
        regs(pc, sp, &[]),
        true,
        &stack.mem(),
        Some(&mut cache),
        8,
    );
    let (module, rule) = cache.get(pc as usize).expect("compact rule cached");
    assert_eq!(module, h.0.0);
    assert_eq!(
        (rule.cfa_reg, rule.cfa_off, rule.ra_off, rule.n_saved),
        (7, 16, -8, 1)
    );
    assert_eq!(rule.saved[0], (3, -16));
    assert!(!rule.is_signal());

    let pc = m.at(0x210);
    let _ = walk_once(
        &unwinder(&reg),
        regs(pc, sp, &[]),
        true,
        &stack.mem(),
        Some(&mut cache),
        8,
    );
    assert!(
        cache.get(pc as usize).is_none(),
        "full-evaluation rows are not cached"
    );
}

#[test]
fn cache_forgets_code_that_was_replaced() {
    let first = leak_module(
        0x400,
        &[CieSpec::standard(ABSPTR)],
        &[fde(0x100, 0x40, vec![(0, I::CfaOffset(16))])],
    );
    let reg = Registry::new();
    let h1 = first.register(&reg, ModuleKind::Jit).unwrap();
    let stack = Stack::new(STACK_BASE, 64);
    let sp = stack.addr(8);
    let pc = first.at(0x110);
    let mut cache = Box::new(UnwindCache::new());
    let w = walk_once(
        &unwinder(&reg),
        regs(pc, sp, &[]),
        true,
        &stack.mem(),
        Some(&mut cache),
        8,
    );
    assert_eq!(w.ok()[0].cfa, Some(sp + 16));
    assert_eq!(w.ok()[0].module, Some(h1.0));

    // New code at the same addresses, with other CFI.
    reg.deregister(h1).unwrap();
    let second = leak_module_at(
        first.text.clone(),
        &[CieSpec::standard(ABSPTR)],
        &[fde(0x100, 0x40, vec![(0, I::CfaOffset(32))])],
    );
    let h2 = second.register(&reg, ModuleKind::Jit).unwrap();
    assert_ne!(h1, h2);
    let w = walk_once(
        &unwinder(&reg),
        regs(pc, sp, &[]),
        true,
        &stack.mem(),
        Some(&mut cache),
        8,
    );
    assert_eq!(w.ok()[0].cfa, Some(sp + 32));
    assert_eq!(w.ok()[0].module, Some(h2.0));

    // And no code at all.
    reg.deregister(h2).unwrap();
    let w = walk_once(
        &unwinder(&reg),
        regs(pc, sp, &[]),
        true,
        &stack.mem(),
        Some(&mut cache),
        8,
    );
    assert_eq!(w.frames, vec![Ok(unknown(pc, sp).with_exact(true))]);
}

/// `DW_OP_deref_size` reads only its bytes: a value in the last bytes of the readable
/// memory (a snapshot's end, a bounded live range's end) can be read.
#[test]
fn deref_size_reads_only_its_bytes() {
    let m = leak_module(
        0x400,
        &[CieSpec::standard(PCREL_SDATA4)],
        &[
            // rbx = zero-extended 4 bytes at rsp + 0x7c; r12 = 2 bytes at rsp + 0x7e;
            // r13 = 1 byte at rsp + 0x7f; r14 = 8 bytes at rsp + 0x78.
            fde(
                0x100,
                0x40,
                vec![
                    (0, I::ValExpression(RBX, expr(&[0x77, 0xfc, 0x00, 0x94, 4]))),
                    (0, I::ValExpression(R12, expr(&[0x77, 0xfe, 0x00, 0x94, 2]))),
                    (0, I::ValExpression(R13, expr(&[0x77, 0xff, 0x00, 0x94, 1]))),
                    (0, I::ValExpression(R14, expr(&[0x77, 0xf8, 0x00, 0x06]))),
                ],
            ),
        ],
    );
    let (reg, h) = registry_with(&m);
    // 16 words: rsp at word 0, the last word holds the values.
    let mut stack = Stack::new(STACK_BASE, 16);
    let sp = stack.addr(0);
    stack.set(sp + 0x78, 0x1122_3344_5566_7788);
    let pc = m.at(0x110);
    let restored = [
        (RBX, 0x1122_3344),
        (R12, 0x1122),
        (R13, 0x11),
        (R14, 0x1122_3344_5566_7788),
    ];
    check_one_frame(
        &reg,
        h,
        &stack,
        pc,
        true,
        regs(pc, sp, &[]),
        sp + 8,
        &restored,
    );

    // The same over live memory bounded to a heap buffer.
    let buf: Vec<u64> = (0..16)
        .map(|i| if i == 15 { 0x1122_3344_5566_7788 } else { 0 })
        .collect();
    let base = buf.as_ptr() as u64;
    let bounds = base..base + 128;
    let mem = clew_unwinder::LiveMemory::with_bounds(std::slice::from_ref(&bounds));
    let r0 = regs(pc, base, &[]);
    let w = walk(&unwinder(&reg), r0, true, &mem);
    assert_eq!(w.frames.len(), 1, "{w:#?}");
    assert_eq!(w.regs[1], caller(&r0, base + 8, 0, &restored));
}
