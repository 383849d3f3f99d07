//! A unit's functions: one pass over its DIEs finds every `DW_TAG_subprogram` with
//! code; a function's inlined calls (`DW_TAG_inlined_subroutine`, at any depth, through
//! lexical blocks) are parsed the first time an address falls in it.

use alloc::boxed::Box;
use alloc::vec::Vec;

use gimli::{AttributeValue, UnitOffset};

use super::R;
use super::interval::{self, Builder, Span};
use super::ranges::RangeAttrs;
use crate::{Error, Name};

/// The root of a function's inline tree (the function itself).
pub(crate) const ROOT: u32 = u32::MAX;

/// A subprogram with code.
pub(crate) struct Function {
    pub offset: UnitOffset<usize>,
    pub name: spin::Once<Option<Name>>,
    pub inlined: spin::Once<Result<Inlined, Error>>,
}

/// The functions of a unit and llvm's address map over them.
pub(crate) struct Functions {
    pub funcs: Box<[Function]>,
    spans: Box<[Span]>,
}

impl Functions {
    pub fn parse(unit: gimli::UnitRef<'_, R>) -> Result<Self, Error> {
        let mut funcs = Vec::new();
        let mut map = Builder::default();
        let mut entries = unit.entries_raw(None)?;
        while !entries.is_empty() {
            let offset = entries.next_offset();
            let Some(abbrev) = entries.read_abbreviation()? else {
                continue;
            };
            if abbrev.tag() != gimli::DW_TAG_subprogram {
                entries.skip_attributes(abbrev.attributes())?;
                continue;
            }
            let mut ranges = RangeAttrs::default();
            for spec in abbrev.attributes() {
                if RangeAttrs::is_range_attr(spec.name()) {
                    let attr = entries.read_attribute(*spec)?;
                    ranges.add(unit, &attr);
                } else {
                    entries.skip_attributes(core::slice::from_ref(spec))?;
                }
            }
            if ranges.is_empty() {
                continue;
            }
            let index = funcs.len() as u32;
            let mut any = false;
            ranges.for_each(unit, |lo, hi| {
                map.insert(lo, hi, index);
                any = true;
            })?;
            if any {
                funcs.push(Function {
                    offset,
                    name: spin::Once::new(),
                    inlined: spin::Once::new(),
                });
            }
        }
        Ok(Functions {
            funcs: funcs.into_boxed_slice(),
            spans: map.freeze(),
        })
    }

    /// The function whose code holds `addr`.
    pub fn find(&self, addr: u64) -> Option<&Function> {
        interval::find(&self.spans, addr).map(|i| &self.funcs[i as usize])
    }

    pub fn heap_size(&self) -> usize {
        self.funcs.len() * core::mem::size_of::<Function>()
            + self.spans.len() * core::mem::size_of::<Span>()
    }
}

/// One inlined call inside a function.
pub(crate) struct InlinedCall {
    pub offset: UnitOffset<usize>,
    /// The inlined call this one was inlined into, or [`ROOT`].
    pub parent: u32,
    /// Where the call was: a file index of the unit's line table, line, column.
    pub call_file: Option<u64>,
    pub call_line: u32,
    pub call_column: u32,
    pub call_discriminator: u32,
    pub name: spin::Once<Option<Name>>,
}

/// A function's inlined calls and llvm's address map over them.
pub(crate) struct Inlined {
    pub calls: Box<[InlinedCall]>,
    spans: Box<[Span]>,
}

impl Inlined {
    pub fn parse(unit: gimli::UnitRef<'_, R>, function: UnitOffset<usize>) -> Result<Self, Error> {
        let mut entries = unit.entries_raw(Some(function))?;
        let fn_depth = entries.next_depth();
        let abbrev = entries
            .read_abbreviation()?
            .ok_or(gimli::Error::NoEntryAtGivenOffset(function.0 as u64))?;
        let mut map = Builder::default();
        let mut own = RangeAttrs::default();
        for spec in abbrev.attributes() {
            let attr = entries.read_attribute(*spec)?;
            own.add(unit, &attr);
        }
        own.for_each(unit, |lo, hi| map.insert(lo, hi, ROOT))?;
        let mut calls: Vec<InlinedCall> = Vec::new();
        // The open inlined calls: (depth, index).
        let mut stack: Vec<(isize, u32)> = Vec::new();
        if abbrev.has_children() {
            while entries.next_depth() > fn_depth {
                let depth = entries.next_depth();
                let offset = entries.next_offset();
                let Some(abbrev) = entries.read_abbreviation()? else {
                    continue;
                };
                while stack.last().is_some_and(|&(d, _)| d >= depth) {
                    stack.pop();
                }
                match abbrev.tag() {
                    gimli::DW_TAG_inlined_subroutine => {
                        let index = calls.len() as u32;
                        let mut call = InlinedCall {
                            offset,
                            parent: stack.last().map_or(ROOT, |&(_, i)| i),
                            call_file: None,
                            call_line: 0,
                            call_column: 0,
                            call_discriminator: 0,
                            name: spin::Once::new(),
                        };
                        let mut ranges = RangeAttrs::default();
                        for spec in abbrev.attributes() {
                            if !RangeAttrs::is_range_attr(spec.name())
                                && !matches!(
                                    spec.name(),
                                    gimli::DW_AT_call_file
                                        | gimli::DW_AT_call_line
                                        | gimli::DW_AT_call_column
                                        | gimli::DW_AT_GNU_discriminator
                                )
                            {
                                entries.skip_attributes(core::slice::from_ref(spec))?;
                                continue;
                            }
                            let attr = entries.read_attribute(*spec)?;
                            if ranges.add(unit, &attr) {
                                continue;
                            }
                            match attr.name() {
                                gimli::DW_AT_call_file => {
                                    call.call_file = match attr.value() {
                                        AttributeValue::FileIndex(f) => Some(f),
                                        v => udata(v),
                                    }
                                }
                                gimli::DW_AT_call_line => {
                                    call.call_line = udata(attr.value()).unwrap_or(0) as u32
                                }
                                gimli::DW_AT_call_column => {
                                    call.call_column = udata(attr.value()).unwrap_or(0) as u32
                                }
                                gimli::DW_AT_GNU_discriminator => {
                                    call.call_discriminator =
                                        udata(attr.value()).unwrap_or(0) as u32
                                }
                                _ => {}
                            }
                        }
                        ranges.for_each(unit, |lo, hi| map.insert(lo, hi, index))?;
                        calls.push(call);
                        if abbrev.has_children() {
                            stack.push((depth, index));
                        }
                    }
                    gimli::DW_TAG_subprogram => {
                        // A nested function (GCC nested functions, local classes):
                        // its own inlined calls are not this function's.
                        entries.skip_attributes(abbrev.attributes())?;
                        if abbrev.has_children() {
                            while entries.next_depth() > depth {
                                if let Some(a) = entries.read_abbreviation()? {
                                    entries.skip_attributes(a.attributes())?;
                                }
                            }
                        }
                    }
                    _ => entries.skip_attributes(abbrev.attributes())?,
                }
            }
        }
        Ok(Inlined {
            calls: calls.into_boxed_slice(),
            spans: map.freeze(),
        })
    }

    /// The inlined calls holding `addr`, innermost first.
    pub fn chain(&self, addr: u64) -> Vec<u32> {
        let mut out = Vec::new();
        let mut at = interval::find(&self.spans, addr).unwrap_or(ROOT);
        while at != ROOT && out.len() <= self.calls.len() {
            out.push(at);
            at = self.calls[at as usize].parent;
        }
        out
    }

    pub fn heap_size(&self) -> usize {
        self.calls.len() * core::mem::size_of::<InlinedCall>()
            + self.spans.len() * core::mem::size_of::<Span>()
    }
}

fn udata(v: AttributeValue<R>) -> Option<u64> {
    match v {
        AttributeValue::Udata(n) => Some(n),
        AttributeValue::Data1(n) => Some(n.into()),
        AttributeValue::Data2(n) => Some(n.into()),
        AttributeValue::Data4(n) => Some(n.into()),
        AttributeValue::Data8(n) => Some(n),
        AttributeValue::Sdata(n) if n >= 0 => Some(n as u64),
        _ => None,
    }
}
