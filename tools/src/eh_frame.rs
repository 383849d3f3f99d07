//! `clew eh-frame FILE`: list and check the call-frame information of an ELF file.
//!
//! Lists every FDE (address range, CIE, function name from the symbol table), the CFA
//! and register rules of each row with `-v`, and the counts; `--check` validates the
//! section (FDEs that overlap, that lie outside the executable sections, whose
//! instructions do not parse) and exits non-zero on a problem.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, Result, anyhow};
use clap::Args;
use gimli::{
    BaseAddresses, CfaRule, CieOrFde, EhFrame, RegisterRule, UnwindContext, UnwindSection,
};
use object::{Object, ObjectSection, ObjectSymbol, SectionKind};

/// `clew eh-frame [-v] [--check] [--json] FILE`
#[derive(Args, Debug)]
pub struct EhFrameArgs {
    /// The ELF file.
    pub file: PathBuf,
    /// Also print each FDE's rows (CFA and register rules per address).
    #[arg(short, long)]
    pub verbose: bool,
    /// Validate: overlapping FDEs, FDEs outside executable sections, unparsable
    /// instructions. Exit status 1 when there is a problem.
    #[arg(long)]
    pub check: bool,
    /// One JSON document instead of text.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug)]
struct FdeRow {
    start: u64,
    end: u64,
    cie: u64,
    function: Option<String>,
    rows: Vec<String>,
}

/// Runs the subcommand; returns the exit status.
pub fn run(args: &EhFrameArgs, out: &mut dyn Write) -> Result<i32> {
    let data =
        std::fs::read(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let file = object::File::parse(&*data)
        .with_context(|| format!("{}: not an object file", args.file.display()))?;
    let section = file
        .section_by_name(".eh_frame")
        .ok_or_else(|| anyhow!("{}: no .eh_frame section", args.file.display()))?;
    let bytes = section.data()?;
    let endian = if file.is_little_endian() {
        gimli::RunTimeEndian::Little
    } else {
        gimli::RunTimeEndian::Big
    };
    let mut eh_frame = EhFrame::new(bytes, endian);
    eh_frame.set_address_size(if file.is_64() { 8 } else { 4 });
    let mut bases = BaseAddresses::default().set_eh_frame(section.address());
    if let Some(text) = file.section_by_name(".text") {
        bases = bases.set_text(text.address());
    }
    if let Some(got) = file.section_by_name(".got") {
        bases = bases.set_got(got.address());
    }
    let exec: Vec<(u64, u64)> = file
        .sections()
        .filter(|s| s.kind() == SectionKind::Text)
        .map(|s| (s.address(), s.address() + s.size()))
        .collect();
    let mut symbols: Vec<(u64, u64, String)> = file
        .symbols()
        .chain(file.dynamic_symbols())
        .filter(|s| s.kind() == object::SymbolKind::Text && s.address() != 0)
        .filter_map(|s| Some((s.address(), s.size(), s.name().ok()?.to_owned())))
        .collect();
    symbols.sort();
    let name_at = |addr: u64| {
        let i = symbols.partition_point(|s| s.0 <= addr);
        let s = symbols.get(i.checked_sub(1)?)?;
        (addr < s.0 + s.1.max(1)).then(|| rustc_demangle::demangle(&s.2).to_string())
    };

    let mut fdes = Vec::new();
    let mut cies = 0usize;
    let mut problems = Vec::new();
    let mut ctx = UnwindContext::new();
    let mut entries = eh_frame.entries(&bases);
    loop {
        let entry = match entries.next() {
            Ok(Some(e)) => e,
            Ok(None) => break,
            Err(e) => {
                problems.push(format!("unparsable entry: {e}"));
                break;
            }
        };
        match entry {
            CieOrFde::Cie(_) => cies += 1,
            CieOrFde::Fde(partial) => {
                let fde = match partial.parse(EhFrame::cie_from_offset) {
                    Ok(f) => f,
                    Err(e) => {
                        problems.push(format!("unparsable FDE: {e}"));
                        continue;
                    }
                };
                let (start, end) = (fde.initial_address(), fde.end_address());
                if fde.len() > 0 && !exec.iter().any(|&(lo, hi)| lo <= start && end <= hi) {
                    problems.push(format!(
                        "FDE {start:#x}..{end:#x} lies outside the executable sections"
                    ));
                }
                let mut rows = Vec::new();
                match fde.rows(&eh_frame, &bases, &mut ctx) {
                    Ok(mut table) => loop {
                        match table.next_row() {
                            Ok(Some(row)) => {
                                if args.verbose {
                                    rows.push(describe_row(row));
                                }
                            }
                            Ok(None) => break,
                            Err(e) => {
                                problems
                                    .push(format!("FDE {start:#x}: unparsable instructions: {e}"));
                                break;
                            }
                        }
                    },
                    Err(e) => {
                        problems.push(format!("FDE {start:#x}: unparsable instructions: {e}"))
                    }
                }
                fdes.push(FdeRow {
                    start,
                    end,
                    cie: fde.cie().offset() as u64,
                    function: name_at(start),
                    rows,
                });
            }
        }
    }
    fdes.sort_by_key(|f| (f.start, f.end));
    for w in fdes.windows(2) {
        if w[0].end > w[1].start && w[0].end > w[0].start && w[1].end > w[1].start {
            problems.push(format!(
                "FDEs overlap: {:#x}..{:#x} and {:#x}..{:#x}",
                w[0].start, w[0].end, w[1].start, w[1].end
            ));
        }
    }

    if args.json {
        let doc = serde_json::json!({
            "file": args.file.display().to_string(),
            "cies": cies,
            "fdes": fdes.iter().map(|f| serde_json::json!({
                "start": format!("{:#x}", f.start), "end": format!("{:#x}", f.end),
                "cie": f.cie, "function": f.function, "rows": f.rows,
            })).collect::<Vec<_>>(),
            "problems": if args.check { problems.clone() } else { Vec::new() },
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&doc)?)?;
    } else {
        for f in &fdes {
            writeln!(
                out,
                "{:#018x}..{:#018x}  cie@{:#x}  {}",
                f.start,
                f.end,
                f.cie,
                f.function.as_deref().unwrap_or("?")
            )?;
            for r in &f.rows {
                writeln!(out, "    {r}")?;
            }
        }
        writeln!(out, "{} CIEs, {} FDEs", cies, fdes.len())?;
        if args.check {
            for p in &problems {
                writeln!(out, "problem: {p}")?;
            }
            writeln!(
                out,
                "check: {}",
                if problems.is_empty() {
                    "ok".to_owned()
                } else {
                    format!("{} problem(s)", problems.len())
                }
            )?;
        }
    }
    Ok(if args.check && !problems.is_empty() {
        1
    } else {
        0
    })
}

fn describe_row<S: gimli::UnwindContextStorage<usize>>(
    row: &gimli::UnwindTableRow<usize, S>,
) -> String {
    let cfa = match row.cfa() {
        CfaRule::RegisterAndOffset { register, offset } => format!("cfa=r{}{offset:+}", register.0),
        CfaRule::Expression(_) => "cfa=expr".to_owned(),
    };
    let mut s = format!("{:#x}: {cfa}", row.start_address());
    for (reg, rule) in row.registers() {
        let r = match rule {
            RegisterRule::Undefined => "undef".to_owned(),
            RegisterRule::SameValue => "same".to_owned(),
            RegisterRule::Offset(o) => format!("c{o:+}"),
            RegisterRule::ValOffset(o) => format!("v(c{o:+})"),
            RegisterRule::Register(r) => format!("r{}", r.0),
            RegisterRule::Expression(_) => "expr".to_owned(),
            RegisterRule::ValExpression(_) => "vexpr".to_owned(),
            RegisterRule::Architectural => "arch".to_owned(),
            RegisterRule::Constant(c) => format!("{c:#x}"),
        };
        s.push_str(&format!(" r{}={r}", reg.0));
    }
    s
}
