//! The Language-Specific Data Area (`.gcc_except_table`) that GCC, Clang and rustc emit
//! for a function with landing pads, as a personality routine reads it.
//!
//! ```text
//! header       lpstart encoding (u8) [lpstart]      landing pads are relative to it
//!              ttype encoding (u8) [uleb128 offset]  end of the type table
//!              call-site encoding (u8), uleb128 table length
//! call sites   start, length, landing pad (call-site encoding), action (uleb128)
//! actions      (sleb128 type filter, sleb128 offset to the next action) records
//! types        ttype-encoded pointers, indexed backwards from the table's end
//! ```
//!
//! Every pointer encoding of `DW_EH_PE_*` is understood (formats absptr, uleb128,
//! udata2/4/8, sleb128, sdata2/4/8; applications pcrel, textrel, datarel, funcrel,
//! aligned; the indirect bit for type entries). Malformed tables give an error, never a
//! panic. Nothing allocates: personality routines run during unwinding.

use gimli::{DwEhPe, EndianSlice, NativeEndian, Reader};

/// Why an LSDA could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LsdaError {
    /// The table ends before a field it declares.
    Truncated,
    /// A pointer encoding that is not defined (or not allowed here).
    BadEncoding(u8),
    /// A pointer relative to a base that was not given (text or data).
    MissingBase(u8),
    /// An action record chain that loops or leaves the action table.
    BadAction,
    /// An indirect pointer that the caller's memory reader could not read.
    BadIndirect(u64),
}

impl From<gimli::Error> for LsdaError {
    fn from(_: gimli::Error) -> Self {
        LsdaError::Truncated
    }
}

impl core::fmt::Display for LsdaError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            LsdaError::Truncated => write!(f, "LSDA truncated"),
            LsdaError::BadEncoding(e) => write!(f, "bad LSDA pointer encoding {e:#x}"),
            LsdaError::MissingBase(e) => write!(
                f,
                "LSDA pointer encoding {e:#x} needs a base that is unknown"
            ),
            LsdaError::BadAction => write!(f, "bad LSDA action chain"),
            LsdaError::BadIndirect(a) => write!(f, "cannot read indirect LSDA pointer at {a:#x}"),
        }
    }
}

/// Bases that LSDA pointers may be relative to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LsdaBases {
    /// The function's start (`_Unwind_GetRegionStart`): default landing-pad base, funcrel.
    pub func_start: u64,
    /// `DW_EH_PE_textrel` base (`_Unwind_GetTextRelBase`), when known.
    pub text: Option<u64>,
    /// `DW_EH_PE_datarel` base (`_Unwind_GetDataRelBase`), when known.
    pub data: Option<u64>,
}

type R<'a> = EndianSlice<'a, NativeEndian>;

/// A parsed LSDA header, borrowing the table bytes.
#[derive(Clone, Debug)]
pub struct Lsda<'a> {
    bytes: &'a [u8],
    /// The runtime address of `bytes[0]` (pcrel pointers are relative to it).
    address: u64,
    bases: LsdaBases,
    lpstart: u64,
    ttype_encoding: u8,
    /// Offset in `bytes` of the end of the type table (`None`: no type table).
    ttype_base: Option<usize>,
    call_site_encoding: u8,
    call_sites: core::ops::Range<usize>,
}

/// One call-site record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallSite {
    /// The covered range, as absolute addresses.
    pub start: u64,
    pub len: u64,
    /// The landing pad's address, or `None` when there is none (continue unwinding).
    pub landing_pad: Option<u64>,
    /// 0: cleanup only; else 1 + the offset of the first action record.
    pub action: u64,
}

/// One action record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Filter 0: run the landing pad as a cleanup.
    Cleanup,
    /// A positive filter: a catch clause for the type at this (1-based) type-table index.
    Catch(u64),
    /// A negative filter: an exception specification (its offset into the type table's tail).
    Filter(u64),
}

/// What a personality should do for an IP, as Rust's and C++'s personalities decide.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EhAction {
    /// No landing pad for this IP: keep unwinding.
    None,
    /// A cleanup landing pad.
    Cleanup(u64),
    /// A catching landing pad.
    Catch(u64),
    /// An exception-specification landing pad.
    Filter(u64),
    /// The IP is not in the call-site table: the language says terminate.
    Terminate,
}

const OMIT: u8 = 0xff;
/// For fields that never use `DW_EH_PE_indirect`.
const NO_INDIRECT: Option<fn(u64) -> Option<u64>> = None;

impl<'a> Lsda<'a> {
    /// Parses the header of the LSDA whose bytes start at runtime address `address`.
    /// `bytes` may extend past the LSDA's end (its length is not recorded anywhere).
    pub fn parse(bytes: &'a [u8], address: u64, bases: LsdaBases) -> Result<Self, LsdaError> {
        let mut r = R::new(bytes, NativeEndian);
        let pos = |r: &R<'a>| bytes.len() - r.len();
        let lpstart_encoding = r.read_u8()?;
        let lpstart = if lpstart_encoding == OMIT {
            bases.func_start
        } else {
            let at = pos(&r);
            read_encoded(
                &mut r,
                lpstart_encoding,
                address + at as u64,
                &bases,
                NO_INDIRECT,
            )?
        };
        let ttype_encoding = r.read_u8()?;
        let ttype_base = if ttype_encoding == OMIT {
            None
        } else {
            let off = r.read_uleb128()?;
            let base = (pos(&r) as u64)
                .checked_add(off)
                .ok_or(LsdaError::Truncated)?;
            Some(usize::try_from(base).map_err(|_| LsdaError::Truncated)?)
        };
        let call_site_encoding = r.read_u8()?;
        let len = r.read_uleb128()?;
        let start = pos(&r);
        let end = u64::try_from(start)
            .ok()
            .and_then(|s| s.checked_add(len))
            .ok_or(LsdaError::Truncated)?;
        if end > bytes.len() as u64 {
            return Err(LsdaError::Truncated);
        }
        Ok(Lsda {
            bytes,
            address,
            bases,
            lpstart,
            ttype_encoding,
            ttype_base,
            call_site_encoding,
            call_sites: start..end as usize,
        })
    }

    /// The call-site records, in table order.
    pub fn call_sites(&self) -> CallSites<'_, 'a> {
        CallSites {
            lsda: self,
            pos: self.call_sites.start,
        }
    }

    /// The call site covering `ip` (an IP inside the call: `pc - 1` for return addresses).
    pub fn call_site_for(&self, ip: u64) -> Result<Option<CallSite>, LsdaError> {
        for cs in self.call_sites() {
            let cs = cs?;
            if ip < cs.start {
                // The table is sorted by start.
                break;
            }
            if ip < cs.start.wrapping_add(cs.len) {
                return Ok(Some(cs));
            }
        }
        Ok(None)
    }

    /// The action records of a call site, following the chain.
    pub fn actions(&self, cs: &CallSite) -> Actions<'_, 'a> {
        let pos = (cs.action != 0).then(|| self.call_sites.end as u64 + cs.action - 1);
        Actions {
            lsda: self,
            pos,
            steps: 0,
        }
    }

    /// Decodes type-table entry `index` (1-based, counted back from the table's end).
    /// `read_indirect` reads a pointer for `DW_EH_PE_indirect` entries.
    pub fn type_entry(
        &self,
        index: u64,
        read_indirect: impl FnOnce(u64) -> Option<u64>,
    ) -> Result<u64, LsdaError> {
        let base = self.ttype_base.ok_or(LsdaError::Truncated)?;
        let size = encoded_size(self.ttype_encoding)?;
        let back = index.checked_mul(size).ok_or(LsdaError::Truncated)?;
        let at = (base as u64)
            .checked_sub(back)
            .ok_or(LsdaError::Truncated)? as usize;
        let slice = self.bytes.get(at..).ok_or(LsdaError::Truncated)?;
        let mut r = R::new(slice, NativeEndian);
        read_encoded(
            &mut r,
            self.ttype_encoding,
            self.address + at as u64,
            &self.bases,
            Some(read_indirect),
        )
    }

    /// Decides what a personality does for `ip`, the way Rust's does: a landing pad with
    /// no action is a cleanup; otherwise the first action record's filter picks catch
    /// (positive), filter (negative) or cleanup (zero).
    pub fn eh_action(&self, ip: u64) -> Result<EhAction, LsdaError> {
        let Some(cs) = self.call_site_for(ip)? else {
            return Ok(EhAction::Terminate);
        };
        let Some(lpad) = cs.landing_pad else {
            return Ok(EhAction::None);
        };
        if cs.action == 0 {
            return Ok(EhAction::Cleanup(lpad));
        }
        match self.actions(&cs).next() {
            Some(Ok(Action::Cleanup)) => Ok(EhAction::Cleanup(lpad)),
            Some(Ok(Action::Catch(_))) => Ok(EhAction::Catch(lpad)),
            Some(Ok(Action::Filter(_))) => Ok(EhAction::Filter(lpad)),
            Some(Err(e)) => Err(e),
            None => Err(LsdaError::BadAction),
        }
    }
}

/// Iterator over call-site records.
pub struct CallSites<'l, 'a> {
    lsda: &'l Lsda<'a>,
    pos: usize,
}

impl Iterator for CallSites<'_, '_> {
    type Item = Result<CallSite, LsdaError>;

    fn next(&mut self) -> Option<Self::Item> {
        let l = self.lsda;
        if self.pos >= l.call_sites.end {
            return None;
        }
        let mut r = R::new(&l.bytes[self.pos..l.call_sites.end], NativeEndian);
        let rec = (|| {
            let enc = l.call_site_encoding;
            // Call-site fields are offsets: the application bits do not apply.
            let start = read_encoded(&mut r, enc & 0x0f, 0, &l.bases, NO_INDIRECT)?;
            let len = read_encoded(&mut r, enc & 0x0f, 0, &l.bases, NO_INDIRECT)?;
            let lp = read_encoded(&mut r, enc & 0x0f, 0, &l.bases, NO_INDIRECT)?;
            let action = r.read_uleb128()?;
            Ok(CallSite {
                start: l.lpstart.wrapping_add(start),
                len,
                landing_pad: (lp != 0).then(|| l.lpstart.wrapping_add(lp)),
                action,
            })
        })();
        match rec {
            Ok(cs) => {
                self.pos = l.call_sites.end - r.len();
                Some(Ok(cs))
            }
            Err(e) => {
                self.pos = l.call_sites.end;
                Some(Err(e))
            }
        }
    }
}

/// Iterator over a call site's chain of action records.
pub struct Actions<'l, 'a> {
    lsda: &'l Lsda<'a>,
    pos: Option<u64>,
    steps: u32,
}

impl Iterator for Actions<'_, '_> {
    type Item = Result<Action, LsdaError>;

    fn next(&mut self) -> Option<Self::Item> {
        let pos = self.pos.take()?;
        self.steps += 1;
        let bytes = self.lsda.bytes;
        let rec = (|| {
            if self.steps > 4096 {
                return Err(LsdaError::BadAction);
            }
            let start = usize::try_from(pos).map_err(|_| LsdaError::BadAction)?;
            let mut r = R::new(
                bytes.get(start..).ok_or(LsdaError::BadAction)?,
                NativeEndian,
            );
            let filter = r.read_sleb128()?;
            let next_at = bytes.len() - r.len();
            let next = r.read_sleb128()?;
            if next != 0 {
                self.pos = Some(
                    (next_at as i64)
                        .checked_add(next)
                        .filter(|&p| p >= 0)
                        .ok_or(LsdaError::BadAction)? as u64,
                );
            }
            Ok(match filter {
                0 => Action::Cleanup,
                f if f > 0 => Action::Catch(f as u64),
                f => Action::Filter(f.unsigned_abs()),
            })
        })();
        if rec.is_err() {
            self.pos = None;
        }
        Some(rec)
    }
}

/// The size of a fixed-size encoding (type-table entries must have one).
fn encoded_size(enc: u8) -> Result<u64, LsdaError> {
    match enc & 0x0f {
        0x00 => Ok(core::mem::size_of::<usize>() as u64),
        0x02 | 0x0a => Ok(2),
        0x03 | 0x0b => Ok(4),
        0x04 | 0x0c => Ok(8),
        _ => Err(LsdaError::BadEncoding(enc)),
    }
}

/// Reads one `DW_EH_PE_*`-encoded pointer whose first byte is at runtime address `at`.
fn read_encoded(
    r: &mut R<'_>,
    enc: u8,
    at: u64,
    bases: &LsdaBases,
    read_indirect: Option<impl FnOnce(u64) -> Option<u64>>,
) -> Result<u64, LsdaError> {
    if enc == OMIT {
        return Err(LsdaError::BadEncoding(enc));
    }
    let size = core::mem::size_of::<usize>() as u64;
    if DwEhPe(enc & 0x70) == gimli::DW_EH_PE_aligned {
        // The value is an absolute pointer at the next pointer-aligned address.
        r.skip(((size - at % size) % size) as usize)?;
        return Ok(if size == 8 {
            r.read_u64()?
        } else {
            u64::from(r.read_u32()?)
        });
    }
    let value = match DwEhPe(enc & 0x0f) {
        gimli::DW_EH_PE_absptr => {
            if size == 8 {
                r.read_u64()?
            } else {
                u64::from(r.read_u32()?)
            }
        }
        gimli::DW_EH_PE_uleb128 => r.read_uleb128()?,
        gimli::DW_EH_PE_udata2 => u64::from(r.read_u16()?),
        gimli::DW_EH_PE_udata4 => u64::from(r.read_u32()?),
        gimli::DW_EH_PE_udata8 => r.read_u64()?,
        gimli::DW_EH_PE_sleb128 => r.read_sleb128()? as u64,
        gimli::DW_EH_PE_sdata2 => r.read_i16()? as i64 as u64,
        gimli::DW_EH_PE_sdata4 => r.read_i32()? as i64 as u64,
        gimli::DW_EH_PE_sdata8 => r.read_i64()? as u64,
        _ => return Err(LsdaError::BadEncoding(enc)),
    };
    let base = match DwEhPe(enc & 0x70) {
        gimli::DW_EH_PE_absptr => 0,
        gimli::DW_EH_PE_pcrel => at,
        gimli::DW_EH_PE_textrel => bases.text.ok_or(LsdaError::MissingBase(enc))?,
        gimli::DW_EH_PE_datarel => bases.data.ok_or(LsdaError::MissingBase(enc))?,
        gimli::DW_EH_PE_funcrel => bases.func_start,
        _ => return Err(LsdaError::BadEncoding(enc)),
    };
    let value = value.wrapping_add(base);
    if enc & 0x80 != 0 {
        let read = read_indirect.ok_or(LsdaError::BadEncoding(enc))?;
        return read(value).ok_or(LsdaError::BadIndirect(value));
    }
    Ok(value)
}
