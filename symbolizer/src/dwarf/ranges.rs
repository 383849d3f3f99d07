//! The code ranges of a DIE: `DW_AT_low_pc` with `DW_AT_high_pc` (an address or a
//! size), or `DW_AT_ranges` (DWARF 4 `.debug_ranges`, DWARF 5 `.debug_rnglists`).

use gimli::{AttributeValue, RangeListsOffset};

use super::R;

/// The range attributes of one DIE, collected while reading its attributes.
#[derive(Default, Clone, Copy)]
pub(crate) struct RangeAttrs {
    low_pc: Option<u64>,
    high_pc: Option<u64>,
    size: Option<u64>,
    ranges: Option<RangeListsOffset<usize>>,
}

impl RangeAttrs {
    /// Whether `name` is one of the attributes [`RangeAttrs::add`] records.
    #[inline]
    pub fn is_range_attr(name: gimli::DwAt) -> bool {
        matches!(
            name,
            gimli::DW_AT_low_pc | gimli::DW_AT_high_pc | gimli::DW_AT_ranges
        )
    }

    /// Records `attr` if it is a range attribute; returns whether it was.
    #[inline]
    pub fn add(&mut self, unit: gimli::UnitRef<'_, R>, attr: &gimli::Attribute<R>) -> bool {
        match attr.name() {
            gimli::DW_AT_low_pc => {
                self.low_pc = match attr.value() {
                    AttributeValue::Addr(a) => Some(a),
                    AttributeValue::DebugAddrIndex(i) => unit.address(i).ok(),
                    _ => None,
                }
            }
            gimli::DW_AT_high_pc => match attr.value() {
                AttributeValue::Addr(a) => self.high_pc = Some(a),
                AttributeValue::DebugAddrIndex(i) => self.high_pc = unit.address(i).ok(),
                AttributeValue::Udata(n) => self.size = Some(n),
                v => self.size = attr_udata(v),
            },
            gimli::DW_AT_ranges => {
                self.ranges = unit.attr_ranges_offset(attr.value()).ok().flatten();
            }
            _ => return false,
        }
        true
    }

    /// Whether the DIE has any code range attribute at all.
    pub fn is_empty(&self) -> bool {
        self.low_pc.is_none() && self.ranges.is_none()
    }

    /// Calls `f(begin, end)` for each non-empty range. Tombstones (addresses of code
    /// the linker discarded: 0, -1, -2 based) are skipped by the emptiness and overflow
    /// checks.
    pub fn for_each(
        &self,
        unit: gimli::UnitRef<'_, R>,
        mut f: impl FnMut(u64, u64),
    ) -> Result<(), gimli::Error> {
        if let Some(offset) = self.ranges {
            let mut list = unit.ranges(offset)?;
            while let Some(r) = list.next()? {
                if r.begin < r.end {
                    f(r.begin, r.end);
                }
            }
        } else if let Some(low) = self.low_pc {
            let end = match (self.high_pc, self.size) {
                (Some(high), _) => high,
                (None, Some(size)) => match low.checked_add(size) {
                    Some(end) => end,
                    None => return Ok(()),
                },
                (None, None) => return Ok(()),
            };
            if low < end {
                f(low, end);
            }
        }
        Ok(())
    }
}

fn attr_udata(v: AttributeValue<R>) -> Option<u64> {
    match v {
        AttributeValue::Data1(n) => Some(n.into()),
        AttributeValue::Data2(n) => Some(n.into()),
        AttributeValue::Data4(n) => Some(n.into()),
        AttributeValue::Data8(n) => Some(n),
        AttributeValue::Sdata(n) if n >= 0 => Some(n as u64),
        _ => None,
    }
}
