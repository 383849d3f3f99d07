//! The bytes an [`crate::ElfImage`] reads: an image in memory (a kernel's loaded crate
//! object, a `&'static [u8]`), a mapped file (std), or a buffer. The image keeps them
//! alive, and parses DWARF straight out of them without copying.

use alloc::boxed::Box;
use alloc::sync::Arc;
use alloc::vec::Vec;

/// Bytes of an ELF image, shareable between threads.
pub trait ImageBytes: Send + Sync {
    fn bytes(&self) -> &[u8];

    /// A hint that about `len` more bytes of the image were read and are unlikely to be
    /// needed again soon. File mappings use it to drop clean pages from the process's
    /// resident set (they are read back from the page cache if needed): the symbolizer's
    /// memory budget then covers the mapping too. The default does nothing.
    fn consumed(&self, _len: usize) {}
}

impl ImageBytes for &'static [u8] {
    fn bytes(&self) -> &[u8] {
        self
    }
}

impl ImageBytes for Vec<u8> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

impl ImageBytes for Box<[u8]> {
    fn bytes(&self) -> &[u8] {
        self
    }
}

/// Keeps every buffer an image's parsed data points into alive, at a stable address.
#[derive(Default)]
pub(crate) struct Backing {
    images: Vec<Arc<dyn ImageBytes>>,
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    owned: spin::Mutex<Vec<Box<[u8]>>>,
}

/// `&'static` views of bytes a [`Backing`] owns.
///
/// The parsed structures of an image (the `object` file, gimli sections, symbol names)
/// borrow from buffers that the image owns through its `Backing`, which is declared
/// last in the image so it is dropped after everything that borrows from it; the
/// buffers are heap or mapped memory that never moves. The `'static` lifetime never
/// escapes the image: what leaves it (names, paths) is copied.
pub(crate) type Static = &'static [u8];

impl Backing {
    /// Keeps `image` alive and returns a view of its bytes for the owner's lifetime.
    pub fn add(&mut self, image: Arc<dyn ImageBytes>) -> Static {
        let bytes = image.bytes();
        // SAFETY: `image` is kept in `self.images` until the backing (and the image
        // holding it, whose borrowers are dropped first) is dropped; its bytes do not
        // move while it lives (see `Static`).
        let view: Static = unsafe { core::slice::from_raw_parts(bytes.as_ptr(), bytes.len()) };
        self.images.push(image);
        view
    }

    /// Keeps `buf` (a decompressed section) alive and returns a view of it.
    #[cfg_attr(not(feature = "std"), allow(dead_code))]
    pub fn own(&self, buf: Box<[u8]>) -> Static {
        // SAFETY: the box is kept in `self.owned` (never removed) until the backing is
        // dropped; moving the box does not move its heap contents (see `Static`).
        let view: Static = unsafe { core::slice::from_raw_parts(buf.as_ptr(), buf.len()) };
        self.owned.lock().push(buf);
        view
    }

    /// Forwards a [`ImageBytes::consumed`] hint to the images.
    pub fn consumed(&self, len: usize) {
        for i in &self.images {
            i.consumed(len);
        }
    }
}
