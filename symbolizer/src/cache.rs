//! Caches and the memory budget shared by an image's lookups.
//!
//! - [`Budget`]: the heap bytes of parsed state (units, line rows, inline trees,
//!   names). Past its limit the DWARF layer evicts least recently used units.
//! - [`NameCache`]: one [`Name`] per distinct raw name, so a name is demangled once
//!   however many functions and units share it.
//! - The image's bytes get [`crate::ImageBytes::consumed`] hints for the DWARF read, so
//!   a mapped file can drop pages it no longer needs.

use alloc::collections::BTreeMap;
use core::sync::atomic::{AtomicU32, AtomicUsize, Ordering};

use crate::image::Backing;
use crate::{Language, Name};

/// The default memory budget of an image's parsed state.
pub const DEFAULT_BUDGET: usize = 16 << 20;

/// Heap bytes in use against a limit, and a clock for least-recently-used eviction.
pub(crate) struct Budget {
    limit: AtomicUsize,
    used: AtomicUsize,
    clock: AtomicU32,
}

impl Budget {
    pub const fn new(limit: usize) -> Self {
        Budget {
            limit: AtomicUsize::new(limit),
            used: AtomicUsize::new(0),
            clock: AtomicU32::new(1),
        }
    }

    /// Adds `n` bytes; returns whether the limit is now exceeded.
    pub fn add(&self, n: usize) -> bool {
        self.used.fetch_add(n, Ordering::Relaxed) + n > self.limit()
    }

    pub fn sub(&self, n: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |u| {
                Some(u.saturating_sub(n))
            });
    }

    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> usize {
        self.limit.load(Ordering::Relaxed)
    }

    pub fn set_limit(&self, limit: usize) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    /// Advances the clock by one lookup.
    pub fn tick(&self) {
        self.clock.fetch_add(1, Ordering::Relaxed);
    }

    pub fn now(&self) -> u32 {
        self.clock.load(Ordering::Relaxed)
    }
}

/// Names by the address and length of their raw bytes in the image.
pub(crate) struct NameCache {
    map: spin::Mutex<BTreeMap<(usize, usize), Name>>,
    bytes: AtomicUsize,
}

impl NameCache {
    pub const fn new() -> Self {
        NameCache {
            map: spin::Mutex::new(BTreeMap::new()),
            bytes: AtomicUsize::new(0),
        }
    }

    /// The cached name for `raw` (bytes inside the image), made on first use.
    pub fn get(&self, raw: &[u8], lang: Language, budget: &Budget) -> Name {
        let key = (raw.as_ptr() as usize, raw.len());
        if let Some(n) = self.map.lock().get(&key) {
            return n.clone();
        }
        let name = Name::new(&alloc::string::String::from_utf8_lossy(raw), lang);
        let size = name.heap_size() + 64;
        let mut map = self.map.lock();
        // A name cache past a quarter of the budget starts over (names in use stay
        // alive in their frames and functions).
        if self.bytes.load(Ordering::Relaxed) > budget.limit() / 4 {
            map.clear();
            budget.sub(self.bytes.swap(0, Ordering::Relaxed));
        }
        let name = map.entry(key).or_insert(name).clone();
        self.bytes.fetch_add(size, Ordering::Relaxed);
        budget.add(size);
        name
    }
}

/// What an image's lookups share: the budget, the name cache, the image's bytes.
pub(crate) struct Shared {
    pub budget: Budget,
    pub names: NameCache,
    pub backing: Backing,
}

impl Shared {
    pub fn name(&self, raw: &[u8], lang: Language) -> Name {
        self.names.get(raw, lang, &self.budget)
    }

    /// Hints that `len` bytes of the image were read (see [`crate::ImageBytes::consumed`]).
    pub fn consumed(&self, len: usize) {
        self.backing.consumed(len);
    }
}
