//! An in-memory ELF image for a JIT module, built for gdb: its code at the runtime
//! address, its `.eh_frame` at the runtime address of the registered bytes (so the
//! pc-relative FDE pointers resolve unchanged), and a symbol per JIT function.
//!
//! gdb reads it over host I/O (`vFile:pread`) like a shared library: the library list
//! gives the address of its first `PT_LOAD`, which equals that segment's `p_vaddr`, so
//! gdb relocates it by zero. An ET_DYN file with absolute addresses is what gdb's
//! target-side solib code relocates most simply; each section gets its own `PT_LOAD`
//! (code and `.eh_frame` may be far apart), file offsets congruent to the addresses
//! modulo the page size as the ELF spec asks.

use alloc::vec::Vec;
use core::ops::Range;

use object::Endianness;
use object::elf;
use object::write::StringId;
use object::write::elf::{FileHeader, ProgramHeader, SectionHeader, Sym, Writer};

const PAGE: u64 = 0x1000;

/// What an image holds.
pub struct JitImage<'a> {
    /// Runtime address range of the code.
    pub text: Range<u64>,
    /// The code bytes (`text.end - text.start` of them).
    pub text_bytes: &'a [u8],
    /// Runtime address of the `.eh_frame` bytes.
    pub eh_frame_addr: u64,
    pub eh_frame: &'a [u8],
    /// Function symbols: name and runtime address range.
    pub symbols: &'a [(&'a str, Range<u64>)],
}

impl JitImage<'_> {
    /// The address of the first `PT_LOAD` (the library list's segment address).
    pub fn first_load_address(&self) -> u64 {
        if self.eh_frame.is_empty() {
            self.text.start
        } else {
            self.text.start.min(self.eh_frame_addr)
        }
    }

    /// Writes the ELF file.
    pub fn build(&self) -> Result<Vec<u8>, object::write::Error> {
        let mut out = Vec::new();
        let mut w = Writer::new(Endianness::Little, true, &mut out);
        let has_eh = !self.eh_frame.is_empty();
        // Segments in address order.
        let mut segs: Vec<(u64, &[u8], u32)> = Vec::new();
        segs.push((self.text.start, self.text_bytes, elf::PF_R | elf::PF_X));
        if has_eh {
            segs.push((self.eh_frame_addr, self.eh_frame, elf::PF_R));
        }
        segs.sort_by_key(|s| s.0);

        w.reserve_file_header();
        w.reserve_program_headers(segs.len() as u32);
        let mut offsets = Vec::new();
        for &(addr, bytes, _) in &segs {
            let cur = w.reserved_len() as u64;
            let pad = (addr.wrapping_sub(cur)) % PAGE;
            w.reserve_until((cur + pad) as usize);
            offsets.push(w.reserve(bytes.len(), 1) as u64);
        }
        let text_off = offsets[segs
            .iter()
            .position(|s| s.0 == self.text.start)
            .unwrap_or(0)];
        let eh_off = if has_eh {
            offsets[segs
                .iter()
                .rposition(|s| s.0 == self.eh_frame_addr)
                .unwrap_or(0)]
        } else {
            0
        };

        w.reserve_null_section_index();
        let text_name = w.add_section_name(b".text");
        let text_index = w.reserve_section_index();
        let eh_name = has_eh.then(|| w.add_section_name(b".eh_frame"));
        if has_eh {
            w.reserve_section_index();
        }
        w.reserve_symtab_section_index();
        w.reserve_strtab_section_index();
        w.reserve_shstrtab_section_index();
        w.reserve_null_symbol_index();
        let names: Vec<StringId> = self
            .symbols
            .iter()
            .map(|(n, _)| {
                w.reserve_symbol_index(Some(text_index));
                w.add_string(n.as_bytes())
            })
            .collect();
        w.reserve_symtab();
        w.reserve_strtab();
        w.reserve_shstrtab();
        w.reserve_section_headers();

        w.write_file_header(&FileHeader {
            os_abi: elf::ELFOSABI_NONE,
            abi_version: 0,
            e_type: elf::ET_DYN,
            e_machine: elf::EM_X86_64,
            e_entry: 0,
            e_flags: 0,
        })?;
        w.write_align_program_headers();
        for (i, &(addr, bytes, flags)) in segs.iter().enumerate() {
            w.write_program_header(&ProgramHeader {
                p_type: elf::PT_LOAD,
                p_flags: flags,
                p_offset: offsets[i],
                p_vaddr: addr,
                p_paddr: addr,
                p_filesz: bytes.len() as u64,
                p_memsz: bytes.len() as u64,
                p_align: PAGE,
            });
        }
        for (i, &(_, bytes, _)) in segs.iter().enumerate() {
            w.pad_until(offsets[i] as usize);
            w.write(bytes);
        }
        w.write_null_symbol();
        for ((_, range), &name) in self.symbols.iter().zip(&names) {
            w.write_symbol(&Sym {
                name: Some(name),
                section: Some(text_index),
                st_info: (elf::STB_GLOBAL << 4) | elf::STT_FUNC,
                st_other: elf::STV_DEFAULT,
                st_shndx: 0,
                st_value: range.start,
                st_size: range.end.saturating_sub(range.start),
            });
        }
        w.write_strtab();
        w.write_shstrtab();
        w.write_null_section_header();
        w.write_section_header(&SectionHeader {
            name: Some(text_name),
            sh_type: elf::SHT_PROGBITS,
            sh_flags: (elf::SHF_ALLOC | elf::SHF_EXECINSTR) as u64,
            sh_addr: self.text.start,
            sh_offset: text_off,
            sh_size: self.text_bytes.len() as u64,
            sh_link: 0,
            sh_info: 0,
            sh_addralign: 16,
            sh_entsize: 0,
        });
        if let Some(eh_name) = eh_name {
            w.write_section_header(&SectionHeader {
                name: Some(eh_name),
                sh_type: elf::SHT_PROGBITS,
                sh_flags: elf::SHF_ALLOC as u64,
                sh_addr: self.eh_frame_addr,
                sh_offset: eh_off,
                sh_size: self.eh_frame.len() as u64,
                sh_link: 0,
                sh_info: 0,
                sh_addralign: 1,
                sh_entsize: 0,
            });
        }
        w.write_symtab_section_header(1);
        w.write_strtab_section_header();
        w.write_shstrtab_section_header();
        debug_assert_eq!(w.reserved_len(), w.len());
        Ok(out)
    }
}
