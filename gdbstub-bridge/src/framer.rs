//! Packet framing in front of gdbstub: only whole packets with a correct checksum reach
//! it, so that line noise, corrupted or oversize packets cost a retransmission, never
//! the session.
//!
//! gdbstub treats a bad checksum, an overlong packet or a stray byte as a fatal error
//! of the whole stub. On a serial line those happen (a UART drops a byte, a terminal
//! program types into it); the framer resynchronises instead: bytes outside a packet
//! other than `+`, `-` and `^C` are dropped, a `$` inside a packet starts it over, and a
//! packet whose checksum does not match (or that exceeds the advertised size) is
//! answered with `-` so that gdb sends it again (RSP "Packet Acknowledgment").

use alloc::vec::Vec;

/// What a received byte completed.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    /// A whole packet, `$…#xx`, checksum verified.
    Packet(&'a [u8]),
    /// `^C` (0x03) outside a packet: gdb asks the running target to stop.
    Interrupt,
    /// `-`: gdb did not receive our last packet intact; send it again.
    Nack,
    /// A packet with a wrong checksum, bad checksum digits, or longer than the limit.
    Corrupt,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Idle,
    Body,
    Checksum1,
    Checksum2,
}

/// The receive side of the RSP framing.
pub struct Framer {
    buf: Vec<u8>,
    max: usize,
    state: State,
    sum: u8,
    oversize: bool,
    checksum: u8,
    bad_digit: bool,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

impl Framer {
    /// A framer that accepts packets of at most `max` bytes (`$`, body, `#xx`).
    pub fn new(max: usize) -> Self {
        Framer {
            buf: Vec::with_capacity(max.min(64 * 1024)),
            max,
            state: State::Idle,
            sum: 0,
            oversize: false,
            checksum: 0,
            bad_digit: false,
        }
    }

    /// Forgets a partly received packet (a new connection).
    pub fn reset(&mut self) {
        self.state = State::Idle;
        self.buf.clear();
    }

    /// Feeds one received byte.
    pub fn push(&mut self, b: u8) -> Option<Frame<'_>> {
        match self.state {
            State::Idle => match b {
                b'$' => self.start(),
                0x03 => return Some(Frame::Interrupt),
                b'-' => return Some(Frame::Nack),
                // `+` acknowledges our last packet: nothing to do. Anything else is
                // noise between packets.
                _ => {}
            },
            State::Body => match b {
                b'$' => self.start(),
                b'#' => {
                    self.state = State::Checksum1;
                    self.push_byte(b);
                }
                _ => {
                    self.sum = self.sum.wrapping_add(b);
                    self.push_byte(b);
                }
            },
            // `$` is never a checksum digit: the packet was cut short, a new one starts.
            State::Checksum1 | State::Checksum2 if b == b'$' => self.start(),
            State::Checksum1 => {
                self.bad_digit = false;
                match hex(b) {
                    Some(h) => self.checksum = h << 4,
                    None => self.bad_digit = true,
                }
                self.push_byte(b);
                self.state = State::Checksum2;
            }
            State::Checksum2 => {
                self.push_byte(b);
                self.state = State::Idle;
                match hex(b) {
                    Some(h) => self.checksum |= h,
                    None => self.bad_digit = true,
                }
                if self.bad_digit || self.oversize || self.checksum != self.sum {
                    return Some(Frame::Corrupt);
                }
                return Some(Frame::Packet(&self.buf));
            }
        }
        None
    }

    fn start(&mut self) {
        self.buf.clear();
        self.buf.push(b'$');
        self.sum = 0;
        self.oversize = false;
        self.state = State::Body;
    }

    fn push_byte(&mut self, b: u8) {
        if self.buf.len() < self.max {
            self.buf.push(b);
        } else {
            self.oversize = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed(f: &mut Framer, bytes: &[u8]) -> Vec<Result<Vec<u8>, &'static str>> {
        let mut out = Vec::new();
        for &b in bytes {
            match f.push(b) {
                Some(Frame::Packet(p)) => out.push(Ok(p.to_vec())),
                Some(Frame::Interrupt) => out.push(Err("int")),
                Some(Frame::Nack) => out.push(Err("nack")),
                Some(Frame::Corrupt) => out.push(Err("corrupt")),
                None => {}
            }
        }
        out
    }

    #[test]
    fn packets_noise_and_resync() {
        let mut f = Framer::new(64);
        let got = feed(&mut f, b"xx+$g#67garbage$m0,1#fa\x03-$m0#ff$$?#3f");
        assert_eq!(
            got,
            [
                Ok(b"$g#67".to_vec()),
                Ok(b"$m0,1#fa".to_vec()),
                Err("int"),
                Err("nack"),
                Err("corrupt"),
                Ok(b"$?#3f".to_vec()),
            ]
        );
    }

    #[test]
    fn oversize_is_corrupt_and_the_next_packet_passes() {
        let mut f = Framer::new(16);
        let mut big = Vec::from(&b"$"[..]);
        let body = [b'a'; 100];
        big.extend_from_slice(&body);
        let sum = body.iter().fold(0u8, |s, &b| s.wrapping_add(b));
        big.extend_from_slice(alloc::format!("#{sum:02x}$g#67").as_bytes());
        assert_eq!(feed(&mut f, &big), [Err("corrupt"), Ok(b"$g#67".to_vec())]);
    }

    #[test]
    fn bad_checksum_digits() {
        let mut f = Framer::new(64);
        assert_eq!(
            feed(&mut f, b"$g#zz$g#67"),
            [Err("corrupt"), Ok(b"$g#67".to_vec())]
        );
    }

    mod prop {
        use super::super::*;
        use alloc::vec::Vec;
        use proptest::prelude::*;

        fn checksum_ok(p: &[u8]) -> bool {
            let n = p.len();
            if n < 4 || p[0] != b'$' || p[n - 3] != b'#' {
                return false;
            }
            let sum = p[1..n - 3].iter().fold(0u8, |s, &b| s.wrapping_add(b));
            alloc::format!("{sum:02x}").as_bytes() == &p[n - 2..]
                || alloc::format!("{sum:02X}").as_bytes() == &p[n - 2..]
        }

        proptest! {
            /// Any input: no panic, and only well-formed packets come out.
            #[test]
            fn only_valid_packets_pass(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
                let mut f = Framer::new(256);
                for b in bytes {
                    if let Some(Frame::Packet(p)) = f.push(b) {
                        prop_assert!(checksum_ok(p), "{:?}", p);
                        prop_assert!(p.len() <= 256);
                    }
                }
            }

            /// Noise of any kind, then a valid packet: the packet is recovered whole.
            #[test]
            fn resyncs_after_noise(
                noise in proptest::collection::vec(any::<u8>(), 0..512),
                body in proptest::collection::vec(any::<u8>().prop_filter("framing", |b| *b != b'$' && *b != b'#'), 0..200),
            ) {
                let mut f = Framer::new(256);
                for b in noise {
                    let _ = f.push(b);
                }
                let sum = body.iter().fold(0u8, |s, &b| s.wrapping_add(b));
                let mut p = Vec::from(&b"$"[..]);
                p.extend_from_slice(&body);
                p.extend_from_slice(alloc::format!("#{sum:02x}").as_bytes());
                let mut got = None;
                for &b in &p {
                    if let Some(Frame::Packet(q)) = f.push(b) {
                        got = Some(q.to_vec());
                    }
                }
                prop_assert_eq!(got, Some(p));
            }
        }
    }
}
