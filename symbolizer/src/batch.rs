//! Batches: answer in input order, look up in address order (each unit is parsed once
//! and its state stays warm while its addresses are answered).

use alloc::vec::Vec;

/// Calls `f` on every address of `addrs` in ascending order; returns the results in
/// the order of `addrs`.
pub fn in_address_order<T>(addrs: &[u64], mut f: impl FnMut(u64) -> T) -> Vec<T> {
    let mut order: Vec<u32> = (0..addrs.len() as u32).collect();
    order.sort_unstable_by_key(|&i| addrs[i as usize]);
    let mut out: Vec<Option<T>> = (0..addrs.len()).map(|_| None).collect();
    for i in order {
        out[i as usize] = Some(f(addrs[i as usize]));
    }
    out.into_iter()
        .map(|r| r.expect("every slot filled"))
        .collect()
}
