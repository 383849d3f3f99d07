//! The stub's life across stops: a stopped target enters [`Bridge::stop`], which serves
//! gdb until it resumes the target (continue, step), detaches, or kills it.
//!
//! A session (one `gdbstub` state machine) outlives a resume: when the target stops
//! again the session reports the stop to the same gdb. A gdb that vanishes ends the
//! session; the target stays stopped, its breakpoints restored, and the transport waits
//! for the next gdb. A packet gdbstub cannot parse restarts the session on the same
//! connection with an error reply (gdbstub treats it as fatal, the bridge does not).

use alloc::sync::Arc;
use alloc::vec;
use alloc::vec::Vec;

use clew_unwinder::{ModuleProvider, Registry};
use gdbstub::common::Signal;
use gdbstub::conn::Connection;
use gdbstub::stub::state_machine::GdbStubStateMachine;
use gdbstub::stub::{DisconnectReason, GdbStubBuilder, SingleThreadStopReason};
use spin::Mutex;

use crate::framer::{Frame, Framer};
use crate::machine::Machine;
use crate::target::{BridgeTarget, ResumeRequest};
use crate::transport::{Closed, Transport};

/// Why the target stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopCause {
    /// An `int3` executed; the PC is right after it. A breakpoint gdb inserted there is
    /// reported as `swbreak` (PC moved back onto it); any other (a compiled-in
    /// breakpoint such as `clew.breakpoint`) as `SIGTRAP`, the PC left after it.
    Trap,
    /// A single step finished.
    Step,
    /// A fault or other event, reported as this POSIX signal number (gdb's numbering
    /// for the common ones: 4 SIGILL, 6 SIGABRT, 11 SIGSEGV…).
    Signal(u8),
}

/// How the target continues after [`Bridge::stop`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resume {
    /// Run on (continue, detach, or no gdb can connect).
    Continue,
    /// Run one instruction (the machine's single-step flag is set).
    Step,
    /// gdb asked to kill the target.
    Kill,
}

/// Bridge settings.
#[derive(Clone, Copy)]
pub struct Config {
    /// The registry whose JIT modules gdb sees as libraries.
    pub registry: &'static Registry,
    /// Finds unregistered native code for `monitor bt` (the host's `dl_iterate_phdr`).
    pub provider: Option<&'static dyn ModuleProvider>,
    /// Accept gdb's `QStartNoAckMode` (TCP: reliable). Off on serial lines, where
    /// acknowledgments let a corrupted packet be sent again.
    pub no_ack: bool,
    /// The largest packet gdb may send (advertised as `PacketSize`).
    pub packet_size: usize,
    /// Run-length encode responses: fewer bytes for a slow serial line; off on fast
    /// transports, where encoding each byte costs more than sending it.
    pub rle: bool,
}

impl Config {
    pub fn new(registry: &'static Registry) -> Self {
        Config {
            registry,
            provider: None,
            no_ack: false,
            packet_size: 0x4000,
            rle: true,
        }
    }
}

/// What both the bridge and gdbstub's connection reach: the transport and the last
/// packet sent (resent on `-`).
struct Link<T> {
    transport: T,
    last: Vec<u8>,
    /// Drop output (gdbstub's answer to a replayed `QStartNoAckMode`).
    mute: bool,
}

/// gdbstub's [`Connection`]: collects a response and writes it in one piece on flush.
pub struct Wire<T: Transport> {
    link: Arc<Mutex<Link<T>>>,
    out: Vec<u8>,
}

impl<T: Transport> Connection for Wire<T> {
    type Error = Closed;
    fn write(&mut self, byte: u8) -> Result<(), Closed> {
        self.out.push(byte);
        Ok(())
    }
    fn write_all(&mut self, buf: &[u8]) -> Result<(), Closed> {
        self.out.extend_from_slice(buf);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), Closed> {
        if self.out.is_empty() {
            return Ok(());
        }
        let mut link = self.link.lock();
        let r = if link.mute {
            Ok(())
        } else {
            link.transport.write_all(&self.out)
        };
        if let Some(p) = self.out.iter().position(|&b| b == b'$') {
            link.last.clear();
            link.last.extend_from_slice(&self.out[p..]);
        }
        self.out.clear();
        r
    }
}

type Session<M, T> = GdbStubStateMachine<'static, BridgeTarget<M>, Wire<T>>;

/// A received frame, owned.
enum Input {
    StopQuery,
    /// In `Bridge::scratch`.
    Packet,
    Interrupt,
    Nack,
    Corrupt,
}

/// The stub: a target, a transport, and the current gdb session.
pub struct Bridge<M: Machine, T: Transport> {
    target: BridgeTarget<M>,
    link: Arc<Mutex<Link<T>>>,
    session: Option<Session<M, T>>,
    connected: bool,
    framer: Framer,
    rx: Vec<u8>,
    rx_pos: usize,
    rx_len: usize,
    no_ack_active: bool,
    /// The stop being served, for `?` (gdbstub answers it with a fixed `T05`).
    current: Option<SingleThreadStopReason<u64>>,
    /// gdb negotiated `multiprocess+` on this connection (thread ids are `pP.T`).
    multiprocess: bool,
    /// The library list the current gdb last saw (at connection or at a stop report):
    /// a different list at the next stop is announced with a `library` stop first.
    listed: Option<alloc::string::String>,
    /// The packet being fed to gdbstub (reused: no allocation per packet).
    scratch: Vec<u8>,
    /// gdbstub's packet buffer, lent to one session at a time (freed in `drop`).
    packet_buf: *mut [u8],
}

// SAFETY: `packet_buf` is an owned allocation (`Box::into_raw`) only reached through
// `&mut self`; the rest is `Send` when the machine and transport are.
unsafe impl<M: Machine + Send, T: Transport + Send> Send for Bridge<M, T> {}

impl<M: Machine, T: Transport> Drop for Bridge<M, T> {
    fn drop(&mut self) {
        // The session borrows the buffer: end it first.
        self.session = None;
        // SAFETY: `packet_buf` came from `Box::into_raw` in `new`; no session uses it.
        unsafe { drop(alloc::boxed::Box::from_raw(self.packet_buf)) };
    }
}

const NO_ACK_PACKET: &[u8] = b"$QStartNoAckMode#b0";

impl<M: Machine, T: Transport> Bridge<M, T> {
    pub fn new(machine: M, transport: T, config: Config) -> Self {
        let mut target = BridgeTarget::new(machine, config.registry);
        target.provider = config.provider;
        target.no_ack = config.no_ack;
        target.rle = config.rle;
        Bridge {
            target,
            link: Arc::new(Mutex::new(Link {
                transport,
                last: Vec::new(),
                mute: false,
            })),
            session: None,
            connected: false,
            framer: Framer::new(config.packet_size + 4),
            rx: vec![0; 64 * 1024],
            rx_pos: 0,
            rx_len: 0,
            no_ack_active: false,
            current: None,
            multiprocess: false,
            scratch: Vec::with_capacity(256),
            listed: None,
            packet_buf: alloc::boxed::Box::into_raw(
                vec![b'#'; config.packet_size].into_boxed_slice(),
            ),
        }
    }

    /// The machine (to point it at the next stopped context).
    pub fn machine_mut(&mut self) -> &mut M {
        &mut self.target.machine
    }

    /// While the target runs: takes in what gdb sent without waiting, and says whether
    /// it asked to interrupt (`^C`). The embedder then stops the target (the host
    /// signals the thread), and [`Bridge::stop`] reports the stop. Other bytes are
    /// kept for the stop. Never blocks.
    pub fn poll_interrupt(&mut self) -> bool {
        if !matches!(self.session, Some(GdbStubStateMachine::Running(_))) {
            return false;
        }
        if self.rx_pos == self.rx_len {
            self.rx_pos = 0;
            self.rx_len = 0;
        }
        let end = self.rx_len;
        if end == self.rx.len() {
            return false;
        }
        let r = self.link.lock().transport.try_read(&mut self.rx[end..]);
        match r {
            Ok(n) => self.rx_len += n,
            Err(Closed) => return false,
        }
        // A `^C` between packets: drop it here (the stop it asks for is the answer).
        let pending = &self.rx[self.rx_pos..self.rx_len];
        match pending.iter().position(|&b| b == 0x03) {
            Some(i) => {
                let at = self.rx_pos + i;
                self.rx.copy_within(at + 1..self.rx_len, at);
                self.rx_len -= 1;
                true
            }
            None => false,
        }
    }

    /// Whether gdb has a breakpoint at `addr`.
    pub fn has_breakpoint(&self, addr: u64) -> bool {
        self.target.breakpoints.contains(addr)
    }

    /// Runs a monitor command without gdb (tests, a console).
    pub fn monitor(&mut self, cmd: &str, out: &mut dyn core::fmt::Write) {
        self.target.monitor_text(cmd, out)
    }

    /// Serves gdb while the target is stopped by `cause`; returns how it continues.
    pub fn stop(&mut self, cause: StopCause) -> Resume {
        if cause == StopCause::Trap && self.trap_was_withdrawn() {
            // The int3 this thread hit was gdb's and is gone (removed while another
            // thread was stopped): run the restored instruction as if never trapped.
            return Resume::Continue;
        }
        self.target.machine.set_single_step(false);
        self.target.resume = None;
        self.target.refresh_libraries();
        let reason = self.stop_reason(cause);
        self.current = Some(reason);
        let mut pending = Some(reason);
        // Modules came or went since gdb read the list: a `library` stop first (gdb
        // re-reads the list and resumes), then the real stop.
        let mut deferred = None;
        let running = matches!(self.session, Some(GdbStubStateMachine::Running(_)));
        if running && self.listed.as_deref() != Some(self.target.libraries_xml()) {
            deferred = pending.replace(SingleThreadStopReason::Library(()));
        }
        loop {
            let sm = match self.session.take() {
                Some(sm) => sm,
                None => {
                    // A fresh gdb asks `?` itself: nothing to report.
                    pending = None;
                    match self.start_session() {
                        Ok(sm) => sm,
                        Err(()) => return Resume::Continue,
                    }
                }
            };
            let next = match sm {
                GdbStubStateMachine::Running(r) => match pending.take() {
                    Some(reason) => {
                        self.listed = Some(self.target.libraries_xml().into());
                        r.report_stop(&mut self.target, reason)
                    }
                    // gdb resumed after the `library` stop: now the real one.
                    None if deferred.is_some() => {
                        pending = deferred.take();
                        self.target.resume = None;
                        self.target.machine.set_single_step(false);
                        Ok(GdbStubStateMachine::Running(r))
                    }
                    None => {
                        self.session = Some(GdbStubStateMachine::Running(r));
                        return match self.target.resume.take() {
                            Some(ResumeRequest::Step) => {
                                self.target.machine.set_single_step(true);
                                Resume::Step
                            }
                            _ => Resume::Continue,
                        };
                    }
                },
                GdbStubStateMachine::Idle(i) => {
                    pending = None;
                    match self.serve_one(GdbStubStateMachine::Idle(i)) {
                        Some(r) => r,
                        None => continue,
                    }
                }
                GdbStubStateMachine::CtrlCInterrupt(c) => {
                    pending = None;
                    c.interrupt_handled(&mut self.target, None::<SingleThreadStopReason<u64>>)
                }
                GdbStubStateMachine::Disconnected(d) => {
                    let why = d.get_reason();
                    self.end_connection();
                    return match why {
                        DisconnectReason::Kill => Resume::Kill,
                        _ => Resume::Continue,
                    };
                }
            };
            match next {
                Ok(sm) => self.session = Some(sm),
                Err(e) => {
                    if e.is_connection_error() {
                        self.end_connection();
                    } else {
                        // An unparsable command (gdbstub gives up on the session):
                        // answer it with an error and start over on the same line.
                        self.target.resume = None;
                        self.restart_session();
                    }
                }
            }
        }
    }

    /// The target is exiting with `code`: tells a gdb waiting on it (`W` packet), so
    /// its `continue` ends with "exited", and closes the connection.
    pub fn exited(&mut self, code: u8) {
        if let Some(GdbStubStateMachine::Running(r)) = self.session.take() {
            let _ = r.report_stop(&mut self.target, SingleThreadStopReason::Exited(code));
            self.link.lock().transport.drain();
        }
        self.end_connection();
    }

    /// Whether the `int3` before the PC is no longer there (and not ours): then the PC
    /// is moved back onto the restored instruction.
    fn trap_was_withdrawn(&mut self) -> bool {
        let mut regs = self.target.machine.registers();
        let at = regs.rip.wrapping_sub(1);
        let mut byte = [0u8];
        let gone = !self.target.breakpoints.contains(at)
            && self.target.machine.read_memory(at, &mut byte).is_ok()
            && byte[0] != crate::breakpoints::INT3;
        if gone {
            regs.rip = at;
            self.target.machine.set_registers(&regs);
        }
        gone
    }

    fn stop_reason(&mut self, cause: StopCause) -> SingleThreadStopReason<u64> {
        match cause {
            StopCause::Trap => {
                let mut regs = self.target.machine.registers();
                let at = regs.rip.wrapping_sub(1);
                if self.target.breakpoints.contains(at) {
                    regs.rip = at;
                    self.target.machine.set_registers(&regs);
                    SingleThreadStopReason::SwBreak(())
                } else {
                    SingleThreadStopReason::Signal(Signal::SIGTRAP)
                }
            }
            StopCause::Step => SingleThreadStopReason::DoneStep,
            StopCause::Signal(s) => SingleThreadStopReason::Signal(Signal(s)),
        }
    }

    fn start_session(&mut self) -> Result<Session<M, T>, ()> {
        if !self.connected {
            self.link.lock().transport.connect().map_err(|_| ())?;
            self.connected = true;
            self.framer.reset();
            self.rx_pos = 0;
            self.rx_len = 0;
            self.no_ack_active = false;
            self.multiprocess = false;
        }
        let wire = Wire {
            link: self.link.clone(),
            out: Vec::new(),
        };
        // gdbstub finds a packet's checksum by splitting its *whole* buffer at `#`:
        // with the rest of the buffer zeroed it scans all of it (16 KiB) per packet,
        // a third of an `m` round trip. Filled with `#`, the scan stops right away.
        // SAFETY: `packet_buf` is ours until `drop`, and sessions never overlap (the
        // previous one is dropped before a new one starts: `self.session` is `None`).
        let buf: &'static mut [u8] = unsafe { &mut *self.packet_buf };
        buf.fill(b'#');
        let gdb = GdbStubBuilder::new(wire)
            .with_packet_buffer(buf)
            .build()
            .map_err(|_| ())?;
        let mut sm = gdb.run_state_machine(&mut self.target).map_err(|_| ())?;
        // A new gdb reads the list itself.
        self.listed = Some(self.target.libraries_xml().into());
        if self.no_ack_active {
            // gdb is in no-ack mode: put the new session there too, silently.
            self.link.lock().mute = true;
            for &b in NO_ACK_PACKET {
                sm = match sm {
                    GdbStubStateMachine::Idle(i) => match i.incoming_data(&mut self.target, b) {
                        Ok(s) => s,
                        Err(_) => {
                            self.link.lock().mute = false;
                            return Err(());
                        }
                    },
                    other => other,
                };
            }
            self.link.lock().mute = false;
        }
        Ok(sm)
    }

    fn restart_session(&mut self) {
        let reply: &[u8] = if self.no_ack_active {
            b"$E01#a6"
        } else {
            b"+$E01#a6"
        };
        if self.link.lock().transport.write_all(reply).is_err() {
            self.end_connection();
        }
        self.session = None;
    }

    /// Answers `?` with the real stop: the signal, and `swbreak` for gdb's breakpoint.
    fn answer_stop_query(&mut self) -> Result<(), Closed> {
        use core::fmt::Write as _;
        let (sig, swbreak) = match self.current {
            Some(SingleThreadStopReason::Signal(s)) => (s.0, false),
            Some(SingleThreadStopReason::SwBreak(())) => (5, true),
            _ => (5, false),
        };
        let mut body = alloc::string::String::new();
        let _ = write!(body, "T{sig:02x}thread:");
        body.push_str(if self.multiprocess { "p01.01;" } else { "01;" });
        if swbreak {
            body.push_str("swbreak:;");
        }
        let sum = body.bytes().fold(0u8, |s, b| s.wrapping_add(b));
        let mut out = alloc::string::String::new();
        if !self.no_ack_active {
            out.push('+');
        }
        let _ = write!(out, "${body}#{sum:02x}");
        let mut link = self.link.lock();
        link.last.clear();
        link.last
            .extend_from_slice(&out.as_bytes()[out.find('$').unwrap_or(0)..]);
        link.transport.write_all(out.as_bytes())
    }

    fn end_connection(&mut self) {
        self.session = None;
        self.target.end_session();
        if self.connected {
            self.link.lock().transport.disconnect();
        }
        self.connected = false;
    }

    /// Reads until one frame is complete and feeds it to the session. `None` when the
    /// connection ended (the session is dropped).
    fn serve_one(
        &mut self,
        mut sm: Session<M, T>,
    ) -> Option<Result<Session<M, T>, gdbstub::stub::GdbStubError<(), Closed>>> {
        loop {
            if self.rx_pos == self.rx_len {
                let r = self.link.lock().transport.read(&mut self.rx);
                match r {
                    Ok(n) if n > 0 => {
                        self.rx_pos = 0;
                        self.rx_len = n;
                    }
                    _ => {
                        drop(sm);
                        self.end_connection();
                        return None;
                    }
                }
            }
            let b = self.rx[self.rx_pos];
            self.rx_pos += 1;
            // An owned copy, so that answering may use `self`.
            let input = match self.framer.push(b) {
                None => continue,
                Some(Frame::Packet(p)) if p.starts_with(b"$?#") => Input::StopQuery,
                Some(Frame::Packet(p)) => {
                    self.scratch.clear();
                    self.scratch.extend_from_slice(p);
                    Input::Packet
                }
                Some(Frame::Interrupt) => Input::Interrupt,
                Some(Frame::Nack) => Input::Nack,
                Some(Frame::Corrupt) => Input::Corrupt,
            };
            let written = match input {
                Input::StopQuery => self.answer_stop_query(),
                Input::Packet => {
                    let packet = &self.scratch;
                    if packet.starts_with(b"$qSupported") {
                        self.multiprocess = packet.windows(13).any(|w| w == b"multiprocess+");
                    }
                    let no_ack = self.target.no_ack && packet.starts_with(b"$QStartNoAckMode#");
                    for &byte in packet {
                        sm = match sm {
                            GdbStubStateMachine::Idle(i) => {
                                match i.incoming_data(&mut self.target, byte) {
                                    Ok(s) => s,
                                    Err(e) => return Some(Err(e)),
                                }
                            }
                            other => other,
                        };
                    }
                    if no_ack {
                        self.no_ack_active = true;
                    }
                    // gdbstub writes its `+` for a packet and flushes only with the
                    // response: a resume has none, and gdb would wait for the ack.
                    let flushed = match &mut sm {
                        GdbStubStateMachine::Idle(x) => x.borrow_conn().flush(),
                        GdbStubStateMachine::Running(x) => x.borrow_conn().flush(),
                        GdbStubStateMachine::CtrlCInterrupt(x) => x.borrow_conn().flush(),
                        GdbStubStateMachine::Disconnected(x) => x.borrow_conn().flush(),
                    };
                    if flushed.is_err() {
                        drop(sm);
                        self.end_connection();
                        return None;
                    }
                    return Some(Ok(sm));
                }
                Input::Interrupt => {
                    return Some(match sm {
                        GdbStubStateMachine::Idle(i) => i.incoming_data(&mut self.target, 0x03),
                        other => Ok(other),
                    });
                }
                Input::Nack => {
                    let mut link = self.link.lock();
                    let last = core::mem::take(&mut link.last);
                    let r = link.transport.write_all(&last);
                    link.last = last;
                    r
                }
                // Ask gdb to resend (with acknowledgments; without, it will not: drop).
                Input::Corrupt if !self.no_ack_active => self.link.lock().transport.write_all(b"-"),
                Input::Corrupt => Ok(()),
            };
            if written.is_err() {
                drop(sm);
                self.end_connection();
                return None;
            }
        }
    }
}
