//! Events: what a ring slot holds and a dump's events decode to, and the ids of the
//! built-in events.

/// How many arguments an event carries at most.
pub const MAX_ARGS: usize = 4;

/// An event's kind. Ids below [`EventId::USER_BASE`] are clew's built-in events; user
/// events are [`EventId::user`]`(n)`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventId(pub u16);

impl EventId {
    /// A module was registered: args `[module id, text start, text end, name hash]`
    /// (the hash is [`name_hash`] of the module's name).
    pub const MODULE_REGISTERED: EventId = EventId(1);
    /// A module is being deregistered: args as for [`EventId::MODULE_REGISTERED`].
    pub const MODULE_DEREGISTERED: EventId = EventId(2);
    /// A panic began: args `[file name hash, line, column]`.
    pub const PANIC: EventId = EventId(3);
    /// A trap (fault, signal): args `[trap code, pc, faulting address, error code]`
    /// (the code is [`crate::wire::TrapKind::code`]).
    pub const TRAP: EventId = EventId(4);
    /// A breakpoint was hit: args `[pc, breakpoint number]`.
    pub const BREAKPOINT: EventId = EventId(5);
    /// The first user event id.
    pub const USER_BASE: u16 = 0x100;

    /// User event `n` (`n < 0xff00`; larger values wrap into the user range).
    #[inline]
    pub const fn user(n: u16) -> EventId {
        EventId(Self::USER_BASE.wrapping_add(n % (u16::MAX - Self::USER_BASE + 1)))
    }

    /// `Some(n)` for user event `n`.
    pub const fn as_user(self) -> Option<u16> {
        if self.0 >= Self::USER_BASE {
            Some(self.0 - Self::USER_BASE)
        } else {
            None
        }
    }

    /// The name of a built-in event.
    pub const fn builtin_name(self) -> Option<&'static str> {
        Some(match self {
            Self::MODULE_REGISTERED => "module-registered",
            Self::MODULE_DEREGISTERED => "module-deregistered",
            Self::PANIC => "panic",
            Self::TRAP => "trap",
            Self::BREAKPOINT => "breakpoint",
            _ => return None,
        })
    }
}

/// One recorded event.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Event {
    /// Clock ticks (see the dump header's clock).
    pub ts: u64,
    pub id: EventId,
    /// The CPU (per-CPU rings) or the ring number (host per-thread rings).
    pub cpu: u32,
    /// The task or thread that recorded it (host: the OS thread id).
    pub task: u64,
    /// How many of `args` are used.
    pub nargs: u8,
    pub args: [u64; MAX_ARGS],
}

impl Event {
    /// An event with up to [`MAX_ARGS`] arguments (more are dropped).
    #[inline]
    pub fn new(ts: u64, id: EventId, cpu: u32, task: u64, args: &[u64]) -> Event {
        let mut a = [0u64; MAX_ARGS];
        let n = args.len().min(MAX_ARGS);
        a[..n].copy_from_slice(&args[..n]);
        Event {
            ts,
            id,
            cpu,
            task,
            nargs: n as u8,
            args: a,
        }
    }

    /// The used arguments.
    #[inline]
    pub fn args(&self) -> &[u64] {
        &self.args[..(self.nargs as usize).min(MAX_ARGS)]
    }
}

/// FNV-1a (64 bits) of a name: what module and panic events carry instead of the name.
pub const fn name_hash(name: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut i = 0;
    while i < name.len() {
        h ^= name[i] as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
        i += 1;
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert_eq!(EventId::user(0).0, 0x100);
        assert_eq!(EventId::user(7).as_user(), Some(7));
        assert_eq!(EventId::PANIC.as_user(), None);
        assert_eq!(EventId::user(0xff00), EventId::user(0));
        assert_eq!(EventId::user(0xfeff).0, u16::MAX);
        assert_eq!(name_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(name_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
    }

    #[test]
    fn args_are_bounded() {
        let e = Event::new(1, EventId(9), 0, 0, &[1, 2, 3, 4, 5, 6]);
        assert_eq!(e.args(), &[1, 2, 3, 4]);
    }
}
