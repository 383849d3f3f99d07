//! The rings' events: per ring a [`RingRecord`], then its events in [`EventsRecord`]s of
//! delta-encoded events: blocks of positions newest block first, each oldest first.

use super::{CHUNK, DumpError, DumpWriter};
use crate::clock::Clock;
use crate::recorder::{Recorder, RingKind};
use crate::ring::Ring;
use crate::sink::Sink;
use crate::wire::events::{Delta, MAX_EVENT};
use crate::wire::{Bytes, EventsRecord, Record, RingRecord};

/// Events read per block, newest block first.
const BLOCK: u64 = 96;

/// A batch being packed into the scratch buffer.
struct Batch {
    delta: Delta,
    first_pos: u64,
    count: u32,
    base_ts: u64,
    base_cpu: u32,
    base_task: u64,
    len: usize,
}

impl<S: Sink> DumpWriter<S> {
    /// Every ring of `recorder` that ever recorded. Producers may keep recording: each
    /// event is written whole or not at all, and events recorded after a ring was
    /// started are left out. Returns the number of events written.
    pub fn events<C: Clock, const RINGS: usize, const CAP: usize>(
        &mut self,
        recorder: &Recorder<C, RINGS, CAP>,
    ) -> Result<u64, DumpError> {
        let mut total = 0;
        let mut err = None;
        recorder.for_each_ring(|kind, owner, ring| {
            if ring.head() == 0 {
                return;
            }
            let (index, shared) = match kind {
                RingKind::Local(i) => (i, false),
                RingKind::Shared => (RINGS as u32, true),
            };
            match self.ring(index, shared, owner, ring) {
                Ok(n) => total += n,
                Err(e) => {
                    err.get_or_insert(e);
                }
            }
        });
        match err {
            Some(e) => Err(e),
            None => Ok(total),
        }
    }

    /// One ring: its state, then the events it still holds. Returns how many.
    pub fn ring<const CAP: usize>(
        &mut self,
        index: u32,
        shared: bool,
        owner: u64,
        ring: &Ring<CAP>,
    ) -> Result<u64, DumpError> {
        let window = ring.window();
        self.out.put(&Record::Ring(RingRecord {
            ring: index,
            shared,
            owner,
            capacity: CAP as u32,
            head: window.end,
            dropped: ring.dropped(),
        }))?;
        // Newest block first: if producers are still running, they overwrite the
        // oldest events while this reads, so the newest are the ones to save first.
        // Within a block (and a record) events go oldest first.
        let mut written = 0u64;
        let mut block_end = window.end;
        while block_end > window.start {
            let block_start = block_end.saturating_sub(BLOCK).max(window.start);
            written += self.block(index, ring, block_start..block_end)?;
            block_end = block_start;
        }
        self.events += written;
        Ok(written)
    }

    /// Positions `block` of a ring, oldest first, in as many records as they need.
    fn block<const CAP: usize>(
        &mut self,
        index: u32,
        ring: &Ring<CAP>,
        block: core::ops::Range<u64>,
    ) -> Result<u64, DumpError> {
        let mut batch: Option<Batch> = None;
        let mut written = 0u64;
        for pos in block {
            let Some(e) = ring.get(pos) else { continue };
            let b = match &mut batch {
                Some(b) if b.len + MAX_EVENT <= CHUNK => b,
                _ => {
                    if let Some(full) = batch.take() {
                        self.flush_batch(index, &full)?;
                    }
                    batch.insert(Batch {
                        delta: Delta::new(pos, e.ts, e.cpu, e.task),
                        first_pos: pos,
                        count: 0,
                        base_ts: e.ts,
                        base_cpu: e.cpu,
                        base_task: e.task,
                        len: 0,
                    })
                }
            };
            b.len = b.delta.encode(&mut self.scratch, b.len, pos, &e);
            b.count += 1;
            written += 1;
        }
        if let Some(b) = batch {
            self.flush_batch(index, &b)?;
        }
        Ok(written)
    }

    fn flush_batch(&mut self, ring: u32, b: &Batch) -> Result<(), DumpError> {
        self.out.put(&Record::Events(EventsRecord {
            ring,
            first_pos: b.first_pos,
            count: b.count,
            base_ts: b.base_ts,
            base_cpu: b.base_cpu,
            base_task: b.base_task,
            data: Bytes(&self.scratch[..b.len]),
        }))
    }
}
