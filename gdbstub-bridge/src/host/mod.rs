//! The host side (std, Linux x86-64): TCP and pty transports, and a process that enters
//! the stub from its `SIGTRAP` handler ([`process`]).

pub mod process;
pub mod pty;
pub mod spin;
pub mod tcp;

pub use process::{
    ProcessMachine, breakpoint, exited, install, install_fault_handlers, installed,
    stop_with_signal,
};
pub use pty::PtyTransport;
pub use tcp::TcpTransport;
