//! Assembling records into a [`Dump`]: chunks reassembled, packed contents unpacked,
//! missing parts reported. Every allocation is bounded by bytes actually received.

use alloc::collections::BTreeMap;
use alloc::format;
use alloc::string::{String, ToString};
use alloc::vec::Vec;

use super::Reason;
use super::model::{
    DecodedEvent, Dump, DumpCause, DumpHeader, DumpModule, DumpSymbol, RingState, StackSegment,
    TaskState,
};
use crate::wire::events::Delta;
use crate::wire::{Cause, Record};

#[derive(Default)]
pub(super) struct Builder {
    dump: Dump,
    module_index: BTreeMap<u64, usize>,
    eh_chunks: BTreeMap<u64, Vec<(u64, Vec<u8>)>>,
    /// Per module: `(first index, [(start delta, len, name)])`.
    symbols: BTreeMap<u64, Vec<SymbolPiece>>,
    /// Per module: decoded `(address, offset)` entries.
    source_offsets: BTreeMap<u64, Vec<(u64, Option<u32>)>>,
    tasks: BTreeMap<u64, TaskBuild>,
    rings: BTreeMap<u32, RingState>,
}

/// A symbols record: its first index and `(start delta, length, name)` entries.
type SymbolPiece = (u32, Vec<(i64, u64, String)>);

#[derive(Default)]
struct TaskBuild {
    state: TaskState,
    chunks: Vec<(u64, Vec<u8>)>,
    backtrace: Vec<(u32, Vec<u64>)>,
}

fn words(bytes: &[u8]) -> Option<Vec<u64>> {
    if !bytes.len().is_multiple_of(8) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect(),
    )
}

impl Builder {
    fn task(&mut self, task: u64) -> &mut TaskBuild {
        self.tasks.entry(task).or_insert_with(|| TaskBuild {
            state: TaskState {
                task,
                ..TaskState::default()
            },
            ..TaskBuild::default()
        })
    }

    /// Takes one intact record; `Err` describes what in it could not be used.
    pub(super) fn add(&mut self, rec: Record<'_>) -> Result<(), Reason> {
        match rec {
            Record::Header(h) => {
                self.dump.header = Some(DumpHeader {
                    major: h.major,
                    minor: h.minor,
                    arch: h.arch,
                    pointer_width: h.pointer_width,
                    big_endian: h.big_endian,
                    clock: h.clock,
                    timestamp: h.timestamp,
                    wall_ns: h.wall_ns,
                    producer: h.producer.to_string(),
                    max_payload: h.max_payload,
                })
            }
            Record::Cause(c) => {
                if self.dump.cause.is_some() {
                    return Err(Reason::Inconsistent(
                        "a second cause record (ignored)".into(),
                    ));
                }
                self.dump.cause = Some(match c {
                    Cause::Panic {
                        message,
                        truncated,
                        file,
                        line,
                        column,
                        task,
                    } => DumpCause::Panic {
                        message: message.to_string(),
                        truncated,
                        file: file.to_string(),
                        line,
                        column,
                        task,
                    },
                    Cause::Trap {
                        kind,
                        pc,
                        address,
                        code,
                        task,
                    } => DumpCause::Trap {
                        kind,
                        pc,
                        address,
                        code,
                        task,
                    },
                    Cause::Breakpoint { pc, task } => DumpCause::Breakpoint { pc, task },
                    Cause::Requested { reason, task } => DumpCause::Requested {
                        reason: reason.to_string(),
                        task,
                    },
                })
            }
            Record::Module(m) => {
                if self.module_index.contains_key(&m.id) {
                    return Err(Reason::Inconsistent(format!(
                        "module {} described twice (second ignored)",
                        m.id
                    )));
                }
                self.module_index.insert(m.id, self.dump.modules.len());
                self.dump.modules.push(DumpModule {
                    id: m.id,
                    kind: m.kind,
                    text: m.text_start..m.text_end,
                    name: m.name.to_string(),
                    build_id: m.build_id.map(|b| b.0.to_vec()),
                    eh_frame_addr: m.eh_frame_addr,
                    eh_frame_len: m.eh_frame_len,
                    eh_frame: None,
                    symbols: Vec::new(),
                    symbols_written: m.symbols,
                    source_offsets: Vec::new(),
                });
            }
            Record::EhFrame(c) => self
                .eh_chunks
                .entry(c.module)
                .or_default()
                .push((c.offset, c.bytes.0.to_vec())),
            Record::Symbols(s) => {
                let data = s.data.0;
                let mut rest = data;
                let mut out = Vec::with_capacity((s.count as usize).min(data.len() / 3));
                let mut err = None;
                for _ in 0..s.count {
                    match postcard::take_from_bytes::<(i64, u64, &str)>(rest) {
                        Ok(((d, len, name), r)) => {
                            out.push((d, len, name.to_string()));
                            rest = r;
                        }
                        Err(_) => {
                            err = Some(Reason::BadContents {
                                what: "symbols",
                                at: data.len() - rest.len(),
                            });
                            break;
                        }
                    }
                }
                self.symbols
                    .entry(s.module)
                    .or_default()
                    .push((s.first, out));
                if let Some(e) = err {
                    return Err(e);
                }
            }
            Record::SourceOffsets(s) => {
                // Offsets are relative to the module's text: its record comes first.
                let Some(&i) = self.module_index.get(&s.module) else {
                    return Err(Reason::Inconsistent(format!(
                        "source offsets of module {}, whose record is missing (dropped)",
                        s.module
                    )));
                };
                let data = s.data.0;
                let mut prev = self.dump.modules[i].text.start;
                let out = self.source_offsets.entry(s.module).or_default();
                let mut at = 0;
                for _ in 0..s.count {
                    let start = at;
                    let (Some(d), Some(off)) = (
                        crate::wire::varint::get(data, &mut at),
                        crate::wire::varint::get(data, &mut at),
                    ) else {
                        return Err(Reason::BadContents {
                            what: "source offsets",
                            at: start,
                        });
                    };
                    let addr = prev.wrapping_add(crate::wire::varint::unzigzag(d) as u64);
                    let off = off.checked_sub(1).and_then(|o| u32::try_from(o).ok());
                    out.push((addr, off));
                    prev = addr;
                }
            }
            Record::Registers(r) => {
                let regs = words(r.regs.0).ok_or(Reason::BadContents {
                    what: "registers",
                    at: r.regs.0.len() / 8 * 8,
                })?;
                self.task(r.task).state.registers = Some((r.arch, regs));
            }
            Record::StackInfo(i) => self.task(i.task).state.stack_info = Some(i),
            Record::Stack(c) => self.task(c.task).chunks.push((c.addr, c.bytes.0.to_vec())),
            Record::Backtrace(b) => {
                let pcs = words(b.pcs.0).ok_or(Reason::BadContents {
                    what: "backtrace",
                    at: b.pcs.0.len() / 8 * 8,
                })?;
                self.task(b.task).backtrace.push((b.first, pcs));
            }
            Record::Ring(r) => {
                self.rings.insert(
                    r.ring,
                    RingState {
                        ring: r.ring,
                        shared: r.shared,
                        owner: r.owner,
                        capacity: r.capacity,
                        head: r.head,
                        dropped: r.dropped,
                        events: 0,
                    },
                );
            }
            Record::Events(e) => {
                let data = e.data.0;
                let mut d = Delta::new(e.first_pos, e.base_ts, e.base_cpu, e.base_task);
                let mut at = 0;
                let mut n = 0u64;
                self.dump
                    .events
                    .reserve((e.count as usize).min(data.len() / 2));
                let mut err = None;
                for _ in 0..e.count {
                    match d.decode(data, &mut at) {
                        Ok((pos, event)) => {
                            self.dump.events.push(DecodedEvent {
                                ring: e.ring,
                                pos,
                                event,
                            });
                            n += 1;
                        }
                        Err(bad) => {
                            err = Some(Reason::BadContents {
                                what: "events",
                                at: bad,
                            });
                            break;
                        }
                    }
                }
                if let Some(r) = self.rings.get_mut(&e.ring) {
                    r.events += n;
                }
                if let Some(e) = err {
                    return Err(e);
                }
            }
            Record::Note(n) => self.dump.notes.push(n.to_string()),
            Record::End(e) => self.dump.end = Some(e),
        }
        Ok(())
    }

    /// The dump, and what is missing or contradictory.
    pub(super) fn finish(mut self) -> (Dump, Vec<Reason>) {
        let mut problems = Vec::new();
        for (id, mut chunks) in core::mem::take(&mut self.eh_chunks) {
            let Some(&i) = self.module_index.get(&id) else {
                problems.push(Reason::Inconsistent(format!(
                    ".eh_frame chunks of module {id}, whose record is missing (dropped)"
                )));
                continue;
            };
            let m = &mut self.dump.modules[i];
            chunks.sort_by_key(|c| c.0);
            let mut whole = Vec::new();
            for (off, bytes) in chunks {
                if off == whole.len() as u64 {
                    whole.extend_from_slice(&bytes);
                }
            }
            if whole.len() as u64 == m.eh_frame_len {
                m.eh_frame = Some(whole);
            } else {
                problems.push(Reason::Inconsistent(format!(
                    "module {} ({}): .eh_frame incomplete, {} of {} bytes from its start intact",
                    m.id,
                    m.name,
                    whole.len(),
                    m.eh_frame_len
                )));
            }
        }
        for (id, mut pieces) in core::mem::take(&mut self.symbols) {
            let Some(&i) = self.module_index.get(&id) else {
                problems.push(Reason::Inconsistent(format!(
                    "symbols of module {id}, whose record is missing (dropped)"
                )));
                continue;
            };
            let m = &mut self.dump.modules[i];
            pieces.sort_by_key(|p| p.0);
            for (_, entries) in pieces {
                let mut prev = m.text.start;
                for (d, len, name) in entries {
                    let start = prev.wrapping_add(d as u64);
                    m.symbols.push(DumpSymbol {
                        range: start..start.wrapping_add(len),
                        name,
                    });
                    prev = start;
                }
            }
            m.symbols.sort_by_key(|s| s.range.start);
            if (m.symbols.len() as u64) < u64::from(m.symbols_written) {
                problems.push(Reason::Inconsistent(format!(
                    "module {} ({}): {} of {} symbols intact",
                    m.id,
                    m.name,
                    m.symbols.len(),
                    m.symbols_written
                )));
            }
        }
        for (id, mut entries) in core::mem::take(&mut self.source_offsets) {
            if let Some(&i) = self.module_index.get(&id) {
                entries.sort_unstable_by_key(|e| e.0);
                self.dump.modules[i].source_offsets = entries;
            }
        }
        let failing = self.dump.cause.as_ref().map(|c| c.task());
        let mut tasks: Vec<TaskState> = Vec::new();
        for (_, mut t) in core::mem::take(&mut self.tasks) {
            t.chunks.sort_by_key(|c| c.0);
            for (addr, bytes) in t.chunks {
                match t.state.stack.last_mut() {
                    Some(s) if s.addr.wrapping_add(s.bytes.len() as u64) == addr => {
                        s.bytes.extend_from_slice(&bytes)
                    }
                    Some(s) if addr < s.addr.wrapping_add(s.bytes.len() as u64) => {
                        problems.push(Reason::Inconsistent(format!(
                            "task {}: overlapping stack chunk at {addr:#x} (dropped)",
                            t.state.task
                        )));
                    }
                    _ => t.state.stack.push(StackSegment { addr, bytes }),
                }
            }
            if let Some(info) = t.state.stack_info {
                let got: u64 = t.state.stack.iter().map(|s| s.bytes.len() as u64).sum();
                let want = info.end.wrapping_sub(info.start);
                if got < want {
                    problems.push(Reason::Inconsistent(format!(
                        "task {}: {} of {} stack bytes intact ({} segments)",
                        t.state.task,
                        got,
                        want,
                        t.state.stack.len()
                    )));
                }
            }
            t.backtrace.sort_by_key(|b| b.0);
            for (first, pcs) in t.backtrace {
                if first as usize != t.state.backtrace.len() {
                    problems.push(Reason::Inconsistent(format!(
                        "task {}: backtrace PCs {}..{} missing",
                        t.state.task,
                        t.state.backtrace.len(),
                        first
                    )));
                }
                t.state.backtrace.extend_from_slice(&pcs);
            }
            if Some(t.state.task) == failing {
                tasks.insert(0, t.state);
            } else {
                tasks.push(t.state);
            }
        }
        self.dump.tasks = tasks;
        self.dump.rings = self.rings.into_values().collect();
        self.dump
            .events
            .sort_by_key(|e| (e.event.ts, e.ring, e.pos));
        (self.dump, problems)
    }
}
