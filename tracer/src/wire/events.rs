//! The compact event encoding inside an [`EventsRecord`](super::EventsRecord): events
//! of one ring, oldest first, each as postcard-style varints relative to the one before.
//!
//! ```text
//! head   u8      bits 0-2: argument count (0..=4)
//!                bit 3: cpu follows     bit 4: task follows
//!                bit 5: same id as the previous event (no id follows)
//!                bit 6: position gap follows; bit 7: reserved, 0
//! id     varint  unless bit 5
//! dt     varint  zigzag(ts - previous ts)
//! cpu    varint  if bit 3 (else the previous event's)
//! task   varint  if bit 4 (else the previous event's)
//! gap    varint  if bit 6: positions skipped since the previous event (else 0)
//! args   varint  × argument count
//! ```
//!
//! The first event's "previous" values are the record's `base_ts`, `base_cpu`,
//! `base_task`, position `first_pos - 1`, and no id.

use super::varint::{self, unzigzag, zigzag};
use crate::event::{Event, EventId, MAX_ARGS};

const CPU: u8 = 1 << 3;
const TASK: u8 = 1 << 4;
const SAME_ID: u8 = 1 << 5;
const GAP: u8 = 1 << 6;
const RESERVED: u8 = 1 << 7;

/// The most bytes one encoded event takes.
pub const MAX_EVENT: usize = 1 + 3 + 10 + 5 + 10 + 10 + 10 * MAX_ARGS;

/// Running state of one record's events.
#[derive(Clone, Copy, Debug)]
pub struct Delta {
    ts: u64,
    cpu: u32,
    task: u64,
    /// The previous id, or `u32::MAX` before the first event.
    id: u32,
    /// The next position expected without a gap.
    next_pos: u64,
}

impl Delta {
    pub fn new(first_pos: u64, base_ts: u64, base_cpu: u32, base_task: u64) -> Delta {
        Delta {
            ts: base_ts,
            cpu: base_cpu,
            task: base_task,
            id: u32::MAX,
            next_pos: first_pos,
        }
    }

    /// Appends event `e` at position `pos` (`pos >= ` the previous position + 1) to
    /// `buf[at..]`, which has at least [`MAX_EVENT`] bytes left; returns the new end.
    #[inline]
    pub fn encode(&mut self, buf: &mut [u8], at: usize, pos: u64, e: &Event) -> usize {
        let nargs = (e.nargs as usize).min(MAX_ARGS);
        let mut head = nargs as u8;
        if e.cpu != self.cpu {
            head |= CPU;
        }
        if e.task != self.task {
            head |= TASK;
        }
        if u32::from(e.id.0) == self.id {
            head |= SAME_ID;
        }
        let gap = pos.wrapping_sub(self.next_pos);
        if gap != 0 {
            head |= GAP;
        }
        buf[at] = head;
        let mut at = at + 1;
        if head & SAME_ID == 0 {
            at = varint::put(buf, at, u64::from(e.id.0));
        }
        at = varint::put(buf, at, zigzag(e.ts.wrapping_sub(self.ts) as i64));
        if head & CPU != 0 {
            at = varint::put(buf, at, u64::from(e.cpu));
        }
        if head & TASK != 0 {
            at = varint::put(buf, at, e.task);
        }
        if gap != 0 {
            at = varint::put(buf, at, gap);
        }
        for &a in &e.args[..nargs] {
            at = varint::put(buf, at, a);
        }
        self.ts = e.ts;
        self.cpu = e.cpu;
        self.task = e.task;
        self.id = u32::from(e.id.0);
        self.next_pos = pos.wrapping_add(1);
        at
    }

    /// Decodes the event at `buf[*at..]`: its position and the event. `Err` names the
    /// offset in `buf` where the encoding stops making sense.
    pub fn decode(&mut self, buf: &[u8], at: &mut usize) -> Result<(u64, Event), usize> {
        let start = *at;
        let bad = |_| start;
        let head = *buf.get(*at).ok_or(start)?;
        *at += 1;
        let nargs = head & 7;
        if head & RESERVED != 0 || nargs as usize > MAX_ARGS {
            return Err(start);
        }
        let id = if head & SAME_ID != 0 {
            if self.id == u32::MAX {
                return Err(start);
            }
            self.id
        } else {
            let id = varint::get(buf, at).ok_or(start)?;
            u16::try_from(id).map_err(bad)? as u32
        };
        let dt = unzigzag(varint::get(buf, at).ok_or(start)?);
        let ts = self.ts.wrapping_add(dt as u64);
        let cpu = if head & CPU != 0 {
            u32::try_from(varint::get(buf, at).ok_or(start)?).map_err(bad)?
        } else {
            self.cpu
        };
        let task = if head & TASK != 0 {
            varint::get(buf, at).ok_or(start)?
        } else {
            self.task
        };
        let gap = if head & GAP != 0 {
            varint::get(buf, at).ok_or(start)?
        } else {
            0
        };
        let mut args = [0u64; MAX_ARGS];
        for a in &mut args[..nargs as usize] {
            *a = varint::get(buf, at).ok_or(start)?;
        }
        let pos = self.next_pos.wrapping_add(gap);
        self.ts = ts;
        self.cpu = cpu;
        self.task = task;
        self.id = id;
        self.next_pos = pos.wrapping_add(1);
        Ok((
            pos,
            Event {
                ts,
                id: EventId(id as u16),
                cpu,
                task,
                nargs,
                args,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_size() {
        let evs = [
            (10, Event::new(1000, EventId::user(1), 3, 77, &[1, 2])),
            (11, Event::new(1030, EventId::user(1), 3, 77, &[3, 4])),
            (
                14,
                Event::new(1020, EventId(2), 4, 78, &[u64::MAX, 0, 5, 6]),
            ),
            (
                15,
                Event::new(u64::MAX, EventId(u16::MAX), u32::MAX, 0, &[]),
            ),
        ];
        let mut buf = [0u8; 512];
        let mut d = Delta::new(10, 1000, 3, 77);
        let mut at = 0;
        let mut ends = [0; 4];
        for (i, (pos, e)) in evs.iter().enumerate() {
            at = d.encode(&mut buf, at, *pos, e);
            ends[i] = at;
        }
        // A small repeated event: head, dt, 2 args.
        assert_eq!(ends[1] - ends[0], 4);
        let mut d = Delta::new(10, 1000, 3, 77);
        let mut r = 0;
        for (pos, e) in &evs {
            assert_eq!(d.decode(&buf[..at], &mut r), Ok((*pos, *e)));
        }
        assert_eq!(r, at);
        // Every truncation fails cleanly.
        for cut in 0..at {
            let mut d = Delta::new(10, 1000, 3, 77);
            let mut r = 0;
            while r < cut {
                if d.decode(&buf[..cut], &mut r).is_err() {
                    break;
                }
            }
        }
    }
}
