//! Function names: the raw (mangled) name as the image holds it, and its demangled
//! form, computed once and cached with the name (Rust legacy and v0 through
//! `rustc-demangle`, C++ through `cpp_demangle`).

use alloc::boxed::Box;
use alloc::string::{String, ToString};
use alloc::sync::Arc;
use core::fmt;

/// The source language of a name, when the debug information says it (a hint for
/// demangling: a name is tried as Rust first, then as C++, unless the hint says C++).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Language {
    #[default]
    Unknown,
    Rust,
    Cpp,
    C,
}

impl Language {
    pub(crate) fn from_dwarf(lang: gimli::DwLang) -> Self {
        match lang {
            gimli::DW_LANG_Rust => Language::Rust,
            gimli::DW_LANG_C_plus_plus
            | gimli::DW_LANG_C_plus_plus_03
            | gimli::DW_LANG_C_plus_plus_11
            | gimli::DW_LANG_C_plus_plus_14 => Language::Cpp,
            gimli::DW_LANG_C89 | gimli::DW_LANG_C99 | gimli::DW_LANG_C11 | gimli::DW_LANG_C => {
                Language::C
            }
            _ => Language::Unknown,
        }
    }
}

/// A function name: cheap to clone (shared), demangled at most once.
#[derive(Clone)]
pub struct Name(Arc<Inner>);

struct Inner {
    raw: Box<str>,
    language: Language,
    demangled: spin::Once<Option<Box<str>>>,
}

impl Name {
    pub fn new(raw: &str, language: Language) -> Self {
        Name(Arc::new(Inner {
            raw: raw.into(),
            language,
            demangled: spin::Once::new(),
        }))
    }

    /// The name as the image holds it (mangled, for Rust and C++ linkage names).
    pub fn raw(&self) -> &str {
        &self.0.raw
    }

    /// The demangled name (Rust without the hash, C++ with its signature); the raw name
    /// when it is not mangled.
    pub fn demangled(&self) -> &str {
        self.0
            .demangled
            .call_once(|| demangle(&self.0.raw, self.0.language).map(String::into_boxed_str))
            .as_deref()
            .unwrap_or(&self.0.raw)
    }

    /// Whether the raw name is mangled (a demangler recognized it).
    pub fn is_mangled(&self) -> bool {
        self.demangled().as_ptr() != self.0.raw.as_ptr()
    }

    pub fn language(&self) -> Language {
        self.0.language
    }

    /// Approximate heap bytes held (for the cache budget).
    pub(crate) fn heap_size(&self) -> usize {
        // Raw, the demangled form once computed (about as long), the Arc header.
        2 * self.0.raw.len() + 48
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.demangled())
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.raw(), f)
    }
}

impl PartialEq for Name {
    fn eq(&self, other: &Self) -> bool {
        self.raw() == other.raw()
    }
}
impl Eq for Name {}

/// Demangles `raw`: Rust (legacy `_ZN…17h<hash>E` and v0 `_R…`, printed without the
/// hash) or C++ (Itanium). `None` when `raw` is not a mangled name.
pub fn demangle(raw: &str, language: Language) -> Option<String> {
    if language == Language::C {
        return None;
    }
    if language != Language::Cpp
        && let Some(s) = demangle_rust(raw)
    {
        return Some(s);
    }
    demangle_cpp(raw).or_else(|| {
        if language == Language::Cpp {
            demangle_rust(raw)
        } else {
            None
        }
    })
}

fn demangle_rust(raw: &str) -> Option<String> {
    let d = rustc_demangle::try_demangle(raw).ok()?;
    Some(alloc::format!("{d:#}"))
}

fn demangle_cpp(raw: &str) -> Option<String> {
    // Only Itanium-mangled names: `cpp_demangle` also accepts bare type encodings
    // ("i" → "int"), which would rename plain C functions.
    if !raw.starts_with("_Z") {
        return None;
    }
    let sym = cpp_demangle::Symbol::new(raw.as_bytes()).ok()?;
    let opts = cpp_demangle::DemangleOptions::default();
    sym.demangle_with_options(&opts).ok().map(|s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rust_legacy_v0_and_cpp() {
        let legacy = Name::new("_ZN4core3fmt5write17h0123456789abcdefE", Language::Unknown);
        assert_eq!(legacy.demangled(), "core::fmt::write");
        assert!(legacy.is_mangled());
        let v0 = Name::new("_RNvCs1234_7mycrate3foo", Language::Rust);
        assert_eq!(v0.demangled(), "mycrate::foo");
        let cpp = Name::new("_ZN3foo3barEi", Language::Unknown);
        assert_eq!(cpp.demangled(), "foo::bar(int)");
        let clone = Name::new("_Z3bazv.cold", Language::Cpp);
        assert!(
            clone.demangled().starts_with("baz()"),
            "{}",
            clone.demangled()
        );
        let plain = Name::new("main", Language::C);
        assert_eq!(plain.demangled(), "main");
        assert!(!plain.is_mangled());
        let c_like = Name::new("i", Language::Unknown);
        assert_eq!(c_like.demangled(), "i");
    }
}
