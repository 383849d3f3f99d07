//! A line-number program interpreter (DWARF 2–5, section 6.2) specialized for lookups:
//! one pass finds the sequences (start, end, where their opcodes begin) without
//! building rows; a sequence's rows are produced on demand by running just its opcodes.
//! The header (file and directory tables, opcode parameters) comes from gimli.

use alloc::vec::Vec;

use gimli::Reader;

use super::R;
use super::lines::Row;

/// The opcode parameters of a line program and its opcode bytes.
pub(crate) struct Program {
    ops: R,
    min_inst_len: u64,
    max_ops: u64,
    line_base: i64,
    line_range: u64,
    opcode_base: u8,
    std_lengths: R,
    address_size: u8,
}

/// A sequence: `start..end`, its opcodes at `offset` into the program.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SeqBounds {
    pub start: u64,
    pub end: u64,
    pub offset: usize,
}

/// The state machine's registers that rows need.
struct Regs {
    address: u64,
    op_index: u64,
    file: u64,
    line: u64,
    column: u64,
    discriminator: u64,
}

impl Regs {
    fn new() -> Self {
        Regs {
            address: 0,
            op_index: 0,
            file: 1,
            line: 1,
            column: 0,
            discriminator: 0,
        }
    }

    fn row(&self) -> Row {
        Row {
            addr: self.address,
            file: self.file,
            line: self.line.min(u32::MAX as u64) as u32,
            column: self.column.min(u32::MAX as u64) as u32,
            discriminator: self.discriminator.min(u32::MAX as u64) as u32,
        }
    }
}

impl Program {
    pub fn new(header: &gimli::LineProgramHeader<R>) -> Self {
        Program {
            ops: header.raw_program_buf(),
            min_inst_len: header.minimum_instruction_length().into(),
            max_ops: header.maximum_operations_per_instruction().max(1).into(),
            line_base: header.line_base().into(),
            line_range: header.line_range().max(1).into(),
            opcode_base: header.opcode_base(),
            std_lengths: *header.standard_opcode_lengths(),
            address_size: header.address_size(),
        }
    }

    /// The program's length in bytes.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// Every sequence of the program.
    pub fn sequences(&self) -> Result<Vec<SeqBounds>, gimli::Error> {
        let mut out = Vec::new();
        let mut input = self.ops;
        while !input.is_empty() {
            let offset = self.ops.len() - input.len();
            let mut start = None;
            let mut end = None;
            self.run(&mut input, |row, end_sequence| {
                if end_sequence {
                    end = Some(row.address);
                } else if start.is_none() {
                    start = Some(row.address);
                }
            })?;
            if let (Some(start), Some(end)) = (start, end)
                && start < end
            {
                out.push(SeqBounds { start, end, offset });
            }
        }
        Ok(out)
    }

    /// The rows of the sequence at `offset` (its end-of-sequence row excluded).
    pub fn rows(&self, offset: usize) -> Result<Vec<Row>, gimli::Error> {
        let mut input = self.ops;
        input.skip(offset)?;
        let mut rows: Vec<Row> = Vec::new();
        self.run(&mut input, |r, end_sequence| {
            if end_sequence {
                return;
            }
            let row = r.row();
            // Rows at one address: the last one describes it (as llvm's lookup does).
            match rows.last_mut() {
                Some(last) if last.addr == row.addr => *last = row,
                _ => rows.push(row),
            }
        })?;
        Ok(rows)
    }

    /// Runs one sequence from `input`, calling `emit(registers, end_sequence)` for each
    /// row; returns after the end of the sequence (or of the program).
    fn run(&self, input: &mut R, mut emit: impl FnMut(&Regs, bool)) -> Result<(), gimli::Error> {
        let mut r = Regs::new();
        while !input.is_empty() {
            let opcode = input.read_u8()?;
            if opcode >= self.opcode_base {
                let adjusted = u64::from(opcode - self.opcode_base);
                self.advance(&mut r, adjusted / self.line_range);
                r.line = r
                    .line
                    .wrapping_add((self.line_base + (adjusted % self.line_range) as i64) as u64);
                emit(&r, false);
                r.discriminator = 0;
                continue;
            }
            match opcode {
                0 => {
                    let len = input.read_uleb128()?;
                    if len == 0 {
                        continue;
                    }
                    let mut ext = input.split(len as usize)?;
                    match ext.read_u8()? {
                        1 => {
                            // DW_LNE_end_sequence
                            emit(&r, true);
                            return Ok(());
                        }
                        2 => {
                            // DW_LNE_set_address
                            r.address = ext.read_address(self.address_size)?;
                            r.op_index = 0;
                        }
                        4 => {
                            // DW_LNE_set_discriminator
                            r.discriminator = ext.read_uleb128()?;
                        }
                        // DW_LNE_define_file (3) and vendor opcodes: nothing a row needs.
                        _ => {}
                    }
                }
                // DW_LNS_copy
                1 => {
                    emit(&r, false);
                    r.discriminator = 0;
                }
                // DW_LNS_advance_pc
                2 => {
                    let adv = input.read_uleb128()?;
                    self.advance(&mut r, adv);
                }
                // DW_LNS_advance_line, set_file, set_column
                3 => r.line = r.line.wrapping_add(input.read_sleb128()? as u64),
                4 => r.file = input.read_uleb128()?,
                5 => r.column = input.read_uleb128()?,
                // negate_stmt, set_basic_block, set_prologue_end, set_epilogue_begin
                6 | 7 | 10 | 11 => {}
                // DW_LNS_const_add_pc
                8 => {
                    let adjusted = u64::from(255 - self.opcode_base);
                    self.advance(&mut r, adjusted / self.line_range);
                }
                // DW_LNS_fixed_advance_pc
                9 => {
                    r.address = r.address.wrapping_add(u64::from(input.read_u16()?));
                    r.op_index = 0;
                }
                // DW_LNS_set_isa
                12 => {
                    input.read_uleb128()?;
                }
                _ => {
                    // An opcode this reader does not know: skip its ULEB operands.
                    let mut lengths = self.std_lengths;
                    lengths.skip(usize::from(opcode - 1))?;
                    for _ in 0..lengths.read_u8()? {
                        input.read_uleb128()?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Advances the address by `operation_advance` operations.
    fn advance(&self, r: &mut Regs, operation_advance: u64) {
        if self.max_ops == 1 {
            r.address = r
                .address
                .wrapping_add(self.min_inst_len.wrapping_mul(operation_advance));
        } else {
            let ops = r.op_index.wrapping_add(operation_advance);
            r.address = r
                .address
                .wrapping_add(self.min_inst_len.wrapping_mul(ops / self.max_ops));
            r.op_index = ops % self.max_ops;
        }
    }
}
