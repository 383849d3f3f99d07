//! The kernel heap: power-of-two size classes, each with a free list, carved from one
//! region of RAM. Small and predictable; freed blocks are reused by their class.

use core::alloc::{GlobalAlloc, Layout};
use core::ops::Range;

const MIN_SHIFT: u32 = 4;
const CLASSES: usize = 40;
/// Blocks are aligned to their size up to this; larger blocks to this.
const MAX_NATURAL_ALIGN: usize = 4096;

struct Inner {
    next: usize,
    end: usize,
    /// The head of each class's free list (0: empty); a free block's first word links
    /// to the next.
    free: [usize; CLASSES],
}

pub struct Heap(spin::Mutex<Inner>);

#[global_allocator]
static HEAP: Heap = Heap(spin::Mutex::new(Inner {
    next: 0,
    end: 0,
    free: [0; CLASSES],
}));

/// Hands `region` to the heap.
///
/// # Safety
/// `region` must be unused RAM, mapped read-write, for the rest of the kernel's life.
pub unsafe fn init(region: Range<usize>) {
    let mut h = HEAP.0.lock();
    h.next = region.start;
    h.end = region.end;
}

/// The heap bytes not yet carved into blocks.
pub fn remaining() -> usize {
    let h = HEAP.0.lock();
    h.end - h.next
}

fn class_of(layout: Layout) -> Option<(usize, usize)> {
    let size = layout
        .size()
        .max(layout.align())
        .max(1 << MIN_SHIFT)
        .checked_next_power_of_two()?;
    let class = (size.trailing_zeros() - MIN_SHIFT) as usize;
    (class < CLASSES).then_some((class, size))
}

// SAFETY: blocks never overlap: each comes either from the bump region (then never handed
// out again until freed) or from its class's free list, where only `dealloc` puts it.
unsafe impl GlobalAlloc for Heap {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let Some((class, size)) = class_of(layout) else {
            return core::ptr::null_mut();
        };
        let mut h = self.0.lock();
        let head = h.free[class];
        if head != 0 && head.is_multiple_of(layout.align()) {
            // SAFETY: a free block of this class; its first word links the list.
            h.free[class] = unsafe { *(head as *const usize) };
            return head as *mut u8;
        }
        let align = size.min(MAX_NATURAL_ALIGN).max(layout.align());
        let start = h.next.next_multiple_of(align);
        match start.checked_add(size) {
            Some(end) if end <= h.end => {
                h.next = end;
                start as *mut u8
            }
            _ => core::ptr::null_mut(),
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        let Some((class, _)) = class_of(layout) else {
            return;
        };
        let mut h = self.0.lock();
        // SAFETY: the block is ours again and at least 16 bytes long.
        unsafe { *(ptr as *mut usize) = h.free[class] };
        h.free[class] = ptr as usize;
    }
}
