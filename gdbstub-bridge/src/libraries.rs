//! clew's registry as gdb's library list: every JIT module becomes a library whose file
//! is an in-memory ELF image ([`crate::jit_elf`]) served over host I/O, listed in the
//! generic `qXfer:libraries` format with the address of the image's first `PT_LOAD`.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;
use core::fmt::Write as _;

use clew_unwinder::{ModuleKind, Registry};

use crate::jit_elf::JitImage;
use crate::machine::Machine;

/// Where the images live in the stub's host-I/O namespace.
pub const JIT_PREFIX: &str = "/clew/jit/";

/// One library as gdb sees it.
pub struct Library {
    /// Its path in the library list (JIT images: under [`JIT_PREFIX`]).
    pub path: String,
    /// The first `PT_LOAD` address.
    pub segment: u64,
    /// A JIT module's ELF image; `None` for a native file the machine reads.
    pub image: Option<Vec<u8>>,
}

/// A library path: the registry's module id (stable while the module is registered, so
/// gdb keeps what it loaded) and its name with anything but `[A-Za-z0-9._-]` replaced,
/// so gdb's XML and file name handling see plain text.
fn path_of(id: u64, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{JIT_PREFIX}{id}-{clean}.elf")
}

/// The machine's native objects, then an image for every JIT module of `registry`
/// (none when a writer holds the registry: the stopped code was registering a module;
/// this never waits).
pub fn collect(registry: &Registry, machine: &dyn Machine) -> Vec<Library> {
    let mut libs: Vec<Library> = machine
        .native_objects()
        .into_iter()
        .map(|o| Library {
            path: o.path,
            segment: o.segment,
            image: None,
        })
        .collect();
    registry.try_for_each_module(|m| {
        if m.kind() != ModuleKind::Jit {
            return;
        }
        let text = m.text();
        let mut code = alloc::vec![0u8; text.len()];
        let mut done = 0;
        while done < code.len() {
            match machine.read_memory((text.start + done) as u64, &mut code[done..]) {
                Ok(k) => done += k,
                Err(_) => return,
            }
        }
        let syms: Vec<(&str, core::ops::Range<u64>)> = m
            .symbols()
            .symbols()
            .iter()
            .map(|s| (s.name.as_str(), s.range.start as u64..s.range.end as u64))
            .collect();
        let eh = m.eh_frame();
        let image = JitImage {
            text: text.start as u64..text.end as u64,
            text_bytes: &code,
            eh_frame_addr: eh.as_ptr() as u64,
            eh_frame: eh,
            symbols: &syms,
        };
        if let Ok(bytes) = image.build() {
            libs.push(Library {
                path: path_of(m.id().0, m.name()),
                segment: image.first_load_address(),
                image: Some(bytes),
            });
        }
    });
    libs
}

/// The `qXfer:libraries:read` document.
pub fn library_list_xml(libs: &[Library]) -> String {
    let mut x = String::from("<library-list version=\"1.0\">");
    for l in libs {
        x.push_str("<library name=\"");
        escape_into(&mut x, &l.path);
        let _ = write!(x, "\"><segment address=\"{:#x}\"/></library>", l.segment);
    }
    x.push_str("</library-list>");
    x
}

/// Copies the part of `doc` at `offset` into `buf` (the `qXfer` read convention).
pub fn read_at(doc: &[u8], offset: u64, length: usize, buf: &mut [u8]) -> usize {
    let Ok(start) = usize::try_from(offset) else {
        return 0;
    };
    if start >= doc.len() {
        return 0;
    }
    let n = (doc.len() - start).min(length).min(buf.len());
    buf[..n].copy_from_slice(&doc[start..start + n]);
    n
}

/// XML attribute escaping (native paths are arbitrary).
fn escape_into(x: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '&' => x.push_str("&amp;"),
            '<' => x.push_str("&lt;"),
            '>' => x.push_str("&gt;"),
            '"' => x.push_str("&quot;"),
            '\'' => x.push_str("&apos;"),
            c => x.push(c),
        }
    }
}

/// The exec file gdb loads first: an ELF header and nothing else, with no OS ABI note,
/// so that gdb keeps the target description's `<osabi>none</osabi>` (a Linux
/// executable would make it walk the dynamic linker's list instead of asking for
/// ours) and takes every module, the real executable included, from the library list.
pub const EXEC_PATH: &str = "/clew/target.elf";

/// Builds [`EXEC_PATH`]'s bytes.
pub fn exec_image() -> Vec<u8> {
    use object::elf;
    use object::write::elf::{FileHeader, Writer};
    let mut out = Vec::new();
    let mut w = Writer::new(object::Endianness::Little, true, &mut out);
    w.reserve_file_header();
    w.reserve_null_section_index();
    w.reserve_shstrtab_section_index();
    w.reserve_shstrtab();
    w.reserve_section_headers();
    let ok = w
        .write_file_header(&FileHeader {
            os_abi: elf::ELFOSABI_NONE,
            abi_version: 0,
            e_type: elf::ET_EXEC,
            e_machine: elf::EM_X86_64,
            e_entry: 0,
            e_flags: 0,
        })
        .is_ok();
    w.write_shstrtab();
    w.write_null_section_header();
    w.write_shstrtab_section_header();
    if !ok {
        out.clear();
    }
    out
}
