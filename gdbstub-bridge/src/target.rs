//! The gdbstub `Target`: registers, memory, breakpoints and resume requests go to the
//! [`Machine`]; libraries, host I/O, the exec file, the target description and
//! `monitor` are answered here.

use alloc::string::String;
use alloc::vec::Vec;

use clew_unwinder::{ModuleProvider, Registry};
use gdbstub::common::{Pid, Signal};
use gdbstub::target::ext::base::BaseOps;
use gdbstub::target::ext::base::singlethread::{
    SingleThreadBase, SingleThreadResume, SingleThreadResumeOps, SingleThreadSingleStep,
    SingleThreadSingleStepOps,
};
use gdbstub::target::ext::breakpoints::{Breakpoints as BreakpointsExt, BreakpointsOps};
use gdbstub::target::ext::breakpoints::{SwBreakpoint, SwBreakpointOps};
use gdbstub::target::ext::exec_file::{ExecFile, ExecFileOps};
use gdbstub::target::ext::host_io::{
    FsKind, HostIo, HostIoClose, HostIoCloseOps, HostIoErrno, HostIoError, HostIoFstat,
    HostIoFstatOps, HostIoOpen, HostIoOpenFlags, HostIoOpenMode, HostIoOpenOps, HostIoOps,
    HostIoPread, HostIoPreadOps, HostIoResult, HostIoSetfs, HostIoSetfsOps, HostIoStat,
};
use gdbstub::target::ext::libraries::{Libraries, LibrariesOps};
use gdbstub::target::ext::monitor_cmd::{ConsoleOutput, MonitorCmd, MonitorCmdOps};
use gdbstub::target::ext::target_description_xml_override::{
    TargetDescriptionXmlOverride, TargetDescriptionXmlOverrideOps,
};
use gdbstub::target::{Target, TargetError, TargetResult};
use gdbstub_arch::x86::X86_64_SSE;

use crate::breakpoints::Breakpoints;
use crate::files::{FileTable, OpenFile};
use crate::libraries::{self, Library};
use crate::machine::{Machine, Registers};
use crate::monitor;

/// The target description: x86-64 with SSE, and no OS ABI, so that gdb takes the
/// library list from `qXfer:libraries` (solib-target) rather than looking for a Linux
/// dynamic linker.
pub const TARGET_XML: &str = r#"<?xml version="1.0"?><!DOCTYPE target SYSTEM "gdb-target.dtd"><target version="1.0"><architecture>i386:x86-64</architecture><osabi>none</osabi><feature name="org.gnu.gdb.i386.sse"></feature></target>"#;

/// What gdb asked for when it resumed the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResumeRequest {
    Continue,
    Step,
}

/// The state the stub keeps for the stopped target.
pub struct BridgeTarget<M: Machine> {
    pub machine: M,
    pub breakpoints: Breakpoints,
    pub resume: Option<ResumeRequest>,
    pub registry: &'static Registry,
    pub provider: Option<&'static dyn ModuleProvider>,
    pub no_ack: bool,
    /// Run-length encode responses (fewer bytes on a slow line, more CPU per byte).
    pub rle: bool,
    libs: Vec<Library>,
    libs_xml: String,
    files: FileTable,
    exec: Vec<u8>,
}

impl<M: Machine> BridgeTarget<M> {
    pub fn new(machine: M, registry: &'static Registry) -> Self {
        BridgeTarget {
            machine,
            breakpoints: Breakpoints::default(),
            resume: None,
            registry,
            provider: None,
            no_ack: false,
            rle: true,
            libs: Vec::new(),
            libs_xml: String::new(),
            files: FileTable::default(),
            exec: libraries::exec_image(),
        }
    }

    /// Rebuilds the JIT images and the library list from the registry.
    pub fn refresh_libraries(&mut self) {
        self.libs = libraries::collect(self.registry, &self.machine);
        self.libs_xml = libraries::library_list_xml(&self.libs);
    }

    /// The library list as it is now (after [`BridgeTarget::refresh_libraries`]).
    pub fn libraries_xml(&self) -> &str {
        &self.libs_xml
    }

    /// Forgets what a session left: breakpoints restored, files closed, no step.
    pub fn end_session(&mut self) {
        self.breakpoints.remove_all(&mut self.machine);
        self.files.clear();
        self.resume = None;
        self.machine.set_single_step(false);
    }

    /// Runs a monitor command into `out`.
    pub fn monitor_text(&mut self, cmd: &str, out: &mut dyn core::fmt::Write) {
        let cmd = cmd.trim();
        match cmd {
            "bt" | "backtrace" => {
                monitor::backtrace(&self.machine, self.registry, self.provider, out)
            }
            "modules" => monitor::modules(self.registry, out),
            "trace" => monitor::trace(32, out),
            _ if cmd == "dump" || cmd.starts_with("dump ") => {
                let path = cmd["dump".len()..].trim();
                if path.is_empty() {
                    let _ = writeln!(out, "usage: monitor dump FILE");
                    return;
                }
                let (bytes, summary) =
                    monitor::dump(&self.machine, self.registry, self.provider, "monitor dump");
                match self.machine.write_file(path, &bytes) {
                    Ok(()) => {
                        let _ = writeln!(
                            out,
                            "wrote {} bytes ({} records, {} events) to {path}",
                            bytes.len(),
                            summary.records,
                            summary.events
                        );
                    }
                    Err(_) => {
                        let _ = writeln!(out, "cannot write {path} on the target");
                    }
                }
            }
            "help" | "" => {
                let _ = out.write_str(monitor::HELP);
            }
            _ => {
                if !self.machine.monitor(cmd, out) {
                    let _ = writeln!(out, "unknown monitor command `{cmd}`\n{}", monitor::HELP);
                }
            }
        }
    }
}

impl<M: Machine> Target for BridgeTarget<M> {
    type Arch = X86_64_SSE;
    type Error = ();

    fn base_ops(&mut self) -> BaseOps<'_, Self::Arch, Self::Error> {
        BaseOps::SingleThread(self)
    }
    fn use_no_ack_mode(&self) -> bool {
        self.no_ack
    }
    fn guard_rail_implicit_sw_breakpoints(&self) -> bool {
        true
    }
    fn use_rle(&self) -> bool {
        self.rle
    }
    fn support_breakpoints(&mut self) -> Option<BreakpointsOps<'_, Self>> {
        Some(self)
    }
    fn support_monitor_cmd(&mut self) -> Option<MonitorCmdOps<'_, Self>> {
        Some(self)
    }
    fn support_target_description_xml_override(
        &mut self,
    ) -> Option<TargetDescriptionXmlOverrideOps<'_, Self>> {
        Some(self)
    }
    fn support_host_io(&mut self) -> Option<HostIoOps<'_, Self>> {
        Some(self)
    }
    fn support_exec_file(&mut self) -> Option<ExecFileOps<'_, Self>> {
        Some(self)
    }
    fn support_libraries(&mut self) -> Option<LibrariesOps<'_, Self>> {
        Some(self)
    }
}

impl<M: Machine> SingleThreadBase for BridgeTarget<M> {
    fn read_registers(&mut self, regs: &mut Registers) -> TargetResult<(), Self> {
        *regs = self.machine.registers();
        Ok(())
    }
    fn write_registers(&mut self, regs: &Registers) -> TargetResult<(), Self> {
        self.machine.set_registers(regs);
        Ok(())
    }
    fn read_addrs(&mut self, start: u64, data: &mut [u8]) -> TargetResult<usize, Self> {
        let mut done = 0;
        while done < data.len() {
            match self
                .machine
                .read_memory(start.wrapping_add(done as u64), &mut data[done..])
            {
                Ok(n) => done += n,
                Err(_) => break,
            }
        }
        if done == 0 && !data.is_empty() {
            return Err(TargetError::Errno(14)); // EFAULT
        }
        Ok(done)
    }
    fn write_addrs(&mut self, start: u64, data: &[u8]) -> TargetResult<(), Self> {
        self.machine
            .write_memory(start, data)
            .map_err(|_| TargetError::Errno(14))
    }
    fn support_resume(&mut self) -> Option<SingleThreadResumeOps<'_, Self>> {
        Some(self)
    }
}

impl<M: Machine> SingleThreadResume for BridgeTarget<M> {
    fn resume(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.resume = Some(ResumeRequest::Continue);
        Ok(())
    }
    fn support_single_step(&mut self) -> Option<SingleThreadSingleStepOps<'_, Self>> {
        Some(self)
    }
}

impl<M: Machine> SingleThreadSingleStep for BridgeTarget<M> {
    fn step(&mut self, _signal: Option<Signal>) -> Result<(), Self::Error> {
        self.resume = Some(ResumeRequest::Step);
        Ok(())
    }
}

impl<M: Machine> BreakpointsExt for BridgeTarget<M> {
    fn support_sw_breakpoint(&mut self) -> Option<SwBreakpointOps<'_, Self>> {
        Some(self)
    }
}

impl<M: Machine> SwBreakpoint for BridgeTarget<M> {
    fn add_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self.breakpoints.insert(&mut self.machine, addr).is_ok())
    }
    fn remove_sw_breakpoint(&mut self, addr: u64, _kind: usize) -> TargetResult<bool, Self> {
        Ok(self
            .breakpoints
            .remove(&mut self.machine, addr)
            .unwrap_or(false))
    }
}

impl<M: Machine> MonitorCmd for BridgeTarget<M> {
    fn handle_monitor_cmd(&mut self, cmd: &[u8], mut out: ConsoleOutput<'_>) -> Result<(), ()> {
        let cmd = core::str::from_utf8(cmd).unwrap_or("");
        let mut text = String::new();
        self.monitor_text(cmd, &mut text);
        out.write_raw(text.as_bytes());
        Ok(())
    }
}

impl<M: Machine> TargetDescriptionXmlOverride for BridgeTarget<M> {
    fn target_description_xml(
        &self,
        annex: &[u8],
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        if annex != b"target.xml" {
            return Err(TargetError::NonFatal);
        }
        Ok(libraries::read_at(
            TARGET_XML.as_bytes(),
            offset,
            length,
            buf,
        ))
    }
}

impl<M: Machine> ExecFile for BridgeTarget<M> {
    fn get_exec_file(
        &self,
        _pid: Option<Pid>,
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        Ok(libraries::read_at(
            libraries::EXEC_PATH.as_bytes(),
            offset,
            length,
            buf,
        ))
    }
}

impl<M: Machine> Libraries for BridgeTarget<M> {
    fn get_libraries(
        &self,
        offset: u64,
        length: usize,
        buf: &mut [u8],
    ) -> TargetResult<usize, Self> {
        Ok(libraries::read_at(
            self.libs_xml.as_bytes(),
            offset,
            length,
            buf,
        ))
    }
}

impl<M: Machine> HostIo for BridgeTarget<M> {
    fn support_open(&mut self) -> Option<HostIoOpenOps<'_, Self>> {
        Some(self)
    }
    fn support_close(&mut self) -> Option<HostIoCloseOps<'_, Self>> {
        Some(self)
    }
    fn support_pread(&mut self) -> Option<HostIoPreadOps<'_, Self>> {
        Some(self)
    }
    fn support_fstat(&mut self) -> Option<HostIoFstatOps<'_, Self>> {
        Some(self)
    }
    fn support_setfs(&mut self) -> Option<HostIoSetfsOps<'_, Self>> {
        Some(self)
    }
}

impl<M: Machine> HostIoOpen for BridgeTarget<M> {
    fn open(
        &mut self,
        filename: &[u8],
        flags: HostIoOpenFlags,
        _mode: HostIoOpenMode,
    ) -> HostIoResult<u32, Self> {
        if flags.bits() & 0x3 != 0 {
            // O_WRONLY / O_RDWR: the files are read-only.
            return Err(HostIoError::Errno(HostIoErrno::EACCES));
        }
        let file = if filename == libraries::EXEC_PATH.as_bytes() {
            Some(OpenFile::Exec)
        } else {
            if self.libs.is_empty() {
                self.refresh_libraries();
            }
            self.libs
                .iter()
                .position(|l| l.path.as_bytes() == filename)
                .map(OpenFile::Library)
        };
        let file = file.ok_or(HostIoError::Errno(HostIoErrno::ENOENT))?;
        self.files
            .open(file)
            .ok_or(HostIoError::Errno(HostIoErrno::EMFILE))
    }
}

impl<M: Machine> HostIoClose for BridgeTarget<M> {
    fn close(&mut self, fd: u32) -> HostIoResult<(), Self> {
        if self.files.close(fd) {
            Ok(())
        } else {
            Err(HostIoError::Errno(HostIoErrno::EBADF))
        }
    }
}

impl<M: Machine> HostIoPread for BridgeTarget<M> {
    fn pread(
        &mut self,
        fd: u32,
        count: usize,
        offset: u64,
        buf: &mut [u8],
    ) -> HostIoResult<usize, Self> {
        let n = count.min(buf.len());
        match self.files.get(fd) {
            Some(OpenFile::Library(i)) => match self.libs.get(i) {
                Some(Library {
                    image: Some(image), ..
                }) => Ok(libraries::read_at(image, offset, n, buf)),
                Some(Library { path, .. }) => self
                    .machine
                    .read_file(path, offset, &mut buf[..n])
                    .map_err(|_| HostIoError::Errno(HostIoErrno::EIO)),
                None => Err(HostIoError::Errno(HostIoErrno::EBADF)),
            },
            Some(OpenFile::Exec) => Ok(libraries::read_at(&self.exec, offset, n, buf)),
            None => Err(HostIoError::Errno(HostIoErrno::EBADF)),
        }
    }
}

impl<M: Machine> HostIoFstat for BridgeTarget<M> {
    fn fstat(&mut self, fd: u32) -> HostIoResult<HostIoStat, Self> {
        let size = match self.files.get(fd) {
            Some(OpenFile::Library(i)) => match self.libs.get(i) {
                Some(Library {
                    image: Some(image), ..
                }) => image.len() as u64,
                Some(Library { path, .. }) => self.machine.file_size(path).unwrap_or(0),
                None => 0,
            },
            Some(OpenFile::Exec) => self.exec.len() as u64,
            None => return Err(HostIoError::Errno(HostIoErrno::EBADF)),
        };
        Ok(HostIoStat {
            st_dev: 0,
            st_ino: fd,
            st_mode: HostIoOpenMode::S_IFREG | HostIoOpenMode::S_IRUSR,
            st_nlink: 1,
            st_uid: 0,
            st_gid: 0,
            st_rdev: 0,
            st_size: size,
            st_blksize: 4096,
            st_blocks: size.div_ceil(512),
            st_atime: 0,
            st_mtime: 0,
            st_ctime: 0,
        })
    }
}

impl<M: Machine> HostIoSetfs for BridgeTarget<M> {
    fn setfs(&mut self, _fs: FsKind) -> HostIoResult<(), Self> {
        Ok(())
    }
}
