//! The name of a subprogram or inlined call, with llvm's `DWARFDie::getName(LinkageName)`
//! rule: the first `DW_AT_linkage_name` (or `DW_AT_MIPS_linkage_name`) found through
//! the DIE, its `DW_AT_specification` and `DW_AT_abstract_origin` (followed across units),
//! else the first `DW_AT_name` in the same order.

use alloc::sync::Arc;
use alloc::vec::Vec;

use gimli::{AttributeValue, UnitOffset};

use super::{DwarfInfo, R, UnitState};
use crate::Error;

/// How many DIEs a name lookup follows at most (cycles end there too).
const MAX_HOPS: usize = 16;

/// A DIE: its unit and its offset in it.
type DieRef = (Arc<UnitState>, UnitOffset<usize>);

/// A resolved raw name: bytes in the image, and the language of its unit.
pub(crate) struct RawName {
    pub bytes: R,
    pub lang: crate::Language,
}

impl DwarfInfo {
    /// The raw name of the DIE at `offset` in `unit`.
    pub(crate) fn die_name(
        &self,
        unit: &Arc<UnitState>,
        offset: UnitOffset<usize>,
    ) -> Result<Option<RawName>, Error> {
        let mut work: Vec<DieRef> = Vec::new();
        work.push((unit.clone(), offset));
        let mut short: Option<RawName> = None;
        let mut hops = 0;
        while let Some((u, off)) = work.pop() {
            hops += 1;
            if hops > MAX_HOPS {
                break;
            }
            let unit_ref = gimli::UnitRef::new(&self.dwarf, &u.unit);
            let mut entries = unit_ref.entries_raw(Some(off))?;
            let Some(abbrev) = entries.read_abbreviation()? else {
                continue;
            };
            let mut origin = None;
            let mut spec = None;
            for s in abbrev.attributes() {
                let attr = entries.read_attribute(*s)?;
                match attr.name() {
                    gimli::DW_AT_linkage_name | gimli::DW_AT_MIPS_linkage_name => {
                        if let Ok(bytes) = unit_ref.attr_string(attr.value()) {
                            return Ok(Some(RawName {
                                bytes,
                                lang: u.lang,
                            }));
                        }
                    }
                    gimli::DW_AT_name if short.is_none() => {
                        if let Ok(bytes) = unit_ref.attr_string(attr.value()) {
                            short = Some(RawName {
                                bytes,
                                lang: u.lang,
                            });
                        }
                    }
                    gimli::DW_AT_abstract_origin => origin = Some(attr.value()),
                    gimli::DW_AT_specification => spec = Some(attr.value()),
                    _ => {}
                }
            }
            // llvm pushes the origin, then the specification: the specification is
            // looked at first.
            for v in [origin, spec].into_iter().flatten() {
                if let Some(target) = self.resolve_ref(&u, v)? {
                    work.push(target);
                }
            }
        }
        Ok(short)
    }

    /// The unit and offset a reference attribute points to.
    fn resolve_ref(
        &self,
        unit: &Arc<UnitState>,
        value: AttributeValue<R>,
    ) -> Result<Option<DieRef>, Error> {
        match value {
            AttributeValue::UnitRef(off) => Ok(Some((unit.clone(), off))),
            AttributeValue::DebugInfoRef(dio) => {
                let index = self.index()?;
                let Some(slot) = index.slot_of(dio) else {
                    return Ok(None);
                };
                let target = self.unit_state(index, slot)?;
                Ok(dio
                    .to_unit_offset(&target.unit.header)
                    .map(|off| (target, off)))
            }
            _ => Ok(None),
        }
    }
}
