//! Full evaluation of a CFI row: every CFA and register rule, DWARF expressions
//! included, with fixed-size storage so that nothing allocates (a panic handler may be
//! walking). Used for rows a [`crate::rules::CompactRule`] cannot express.

use gimli::{
    CfaRule, EhFrame, Encoding, Evaluation, EvaluationResult, EvaluationStorage, Location, Piece,
    RegisterRule, UnwindContextStorage, UnwindTableRow, Value,
};

use crate::Error;
use crate::arch::Registers;
use crate::eh_frame::Reader;
use crate::memory::Memory;

/// How many register rules a row may hold, and how deep `DW_CFA_remember_state` may nest.
const MAX_RULES: usize = 40;
const MAX_STATES: usize = 4;
/// Expression limits: stack depth and evaluation steps (bounds loops through `DW_OP_skip`).
const MAX_STACK: usize = 64;
const MAX_STEPS: u32 = 10_000;
/// The most registers a row may restore at once.
const MAX_RESTORED: usize = 40;

/// Fixed-size storage for gimli's unwind context and expression evaluation.
#[derive(Debug)]
pub struct FixedStorage;

impl UnwindContextStorage<usize> for FixedStorage {
    type Rules = [(gimli::Register, RegisterRule<usize>); MAX_RULES];
    type Stack = [UnwindTableRow<usize, FixedStorage>; MAX_STATES];
}

impl EvaluationStorage<Reader> for FixedStorage {
    type Stack = [Value; MAX_STACK];
    type ExpressionStack = [(Reader, Reader); 4];
    type Result = [Piece<Reader>; 1];
}

/// The unwind context type every walk uses.
pub type UnwindContext = gimli::UnwindContext<usize, FixedStorage>;

/// The caller's registers as one row's rules compute them.
pub(crate) struct Applied {
    pub cfa: u64,
    pub ra_undefined: bool,
}

/// Applies `row` to `regs` in place: computes the CFA, then every register rule from
/// the *old* register values, then stores them, sets SP to the CFA (unless a rule
/// restores it) and the PC to the return address.
pub(crate) fn apply_row<R: Registers, M: Memory>(
    row: &UnwindTableRow<usize, FixedStorage>,
    section: &EhFrame<Reader>,
    encoding: Encoding,
    ra: u16,
    regs: &mut R,
    mem: &M,
    pc: u64,
) -> Result<Applied, Error> {
    let bad = |error| Error::BadCfi { pc, error };
    let cfa = match row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => {
            let base = regs.get(register.0).ok_or(Error::UnsupportedRule { pc })?;
            base.wrapping_add(*offset as u64)
        }
        CfaRule::Expression(e) => {
            let expr = e.get(section).map_err(bad)?;
            match evaluate(expr, encoding, None, regs, mem, pc)? {
                Evaluated::Address(a) | Evaluated::Value(a) => a,
            }
        }
    };
    let mut restored = [(0u16, 0u64); MAX_RESTORED];
    let mut n = 0;
    let mut ra_value = None;
    for (reg, rule) in row.registers() {
        let value = match rule {
            RegisterRule::Undefined | RegisterRule::SameValue => continue,
            RegisterRule::Offset(o) => mem.read_u64(cfa.wrapping_add(*o as u64))?,
            RegisterRule::ValOffset(o) => cfa.wrapping_add(*o as u64),
            RegisterRule::Register(r) => regs.get(r.0).ok_or(Error::UnsupportedRule { pc })?,
            RegisterRule::Expression(e) => {
                let expr = e.get(section).map_err(bad)?;
                match evaluate(expr, encoding, Some(cfa), regs, mem, pc)? {
                    Evaluated::Address(a) => mem.read_u64(a)?,
                    Evaluated::Value(v) => v,
                }
            }
            RegisterRule::ValExpression(e) => {
                let expr = e.get(section).map_err(bad)?;
                match evaluate(expr, encoding, Some(cfa), regs, mem, pc)? {
                    Evaluated::Address(a) | Evaluated::Value(a) => a,
                }
            }
            RegisterRule::Constant(c) => *c,
            RegisterRule::Architectural => return Err(Error::UnsupportedRule { pc }),
        };
        if reg.0 == ra {
            ra_value = Some(value);
        } else if n < MAX_RESTORED {
            restored[n] = (reg.0, value);
            n += 1;
        } else {
            return Err(Error::UnsupportedRule { pc });
        }
    }
    regs.set_sp(cfa);
    for &(r, v) in &restored[..n] {
        // Registers this set does not hold (vector registers) are not needed for a walk.
        regs.set(r, v);
    }
    let ra_undefined = ra_value.is_none();
    regs.set_pc(ra_value.unwrap_or(0));
    Ok(Applied { cfa, ra_undefined })
}

enum Evaluated {
    /// A memory location (the top of the stack as an address).
    Address(u64),
    /// A value (`DW_OP_stack_value`, or a value location).
    Value(u64),
}

fn evaluate<R: Registers, M: Memory>(
    expr: gimli::Expression<Reader>,
    encoding: Encoding,
    initial: Option<u64>,
    regs: &R,
    mem: &M,
    pc: u64,
) -> Result<Evaluated, Error> {
    let bad = |error| Error::BadCfi { pc, error };
    let mut eval: Evaluation<Reader, FixedStorage> = Evaluation::new_in(expr.0, encoding);
    eval.set_max_iterations(MAX_STEPS);
    if let Some(v) = initial {
        eval.set_initial_value(v);
    }
    let mut state = eval.evaluate().map_err(bad)?;
    loop {
        state = match state {
            EvaluationResult::Complete => break,
            EvaluationResult::RequiresMemory { address, size, .. } => {
                let v = mem.read_sized(address, size)?;
                eval.resume_with_memory(Value::Generic(v)).map_err(bad)?
            }
            EvaluationResult::RequiresRegister { register, .. } => {
                let v = regs.get(register.0).ok_or(Error::UnsupportedRule { pc })?;
                eval.resume_with_register(Value::Generic(v)).map_err(bad)?
            }
            EvaluationResult::RequiresRelocatedAddress(a) => {
                eval.resume_with_relocated_address(a).map_err(bad)?
            }
            _ => return Err(Error::UnsupportedRule { pc }),
        };
    }
    match eval.as_result() {
        [
            Piece {
                location: Location::Address { address },
                ..
            },
        ] => Ok(Evaluated::Address(*address)),
        [
            Piece {
                location: Location::Value { value },
                ..
            },
        ] => Ok(Evaluated::Value(value.to_u64(u64::MAX).map_err(bad)?)),
        [
            Piece {
                location: Location::Register { register },
                ..
            },
        ] => Ok(Evaluated::Value(
            regs.get(register.0).ok_or(Error::UnsupportedRule { pc })?,
        )),
        _ => Err(Error::UnsupportedRule { pc }),
    }
}
