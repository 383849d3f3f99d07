//! clew's backtrace equals libgcc's `_Unwind_Backtrace`, PC for PC: through native
//! recursions of distinct functions (depth 1..256) and from inside a signal handler.
//! (Generated function chain: f0 .. f255.)

use std::hint::black_box;
use std::sync::Mutex;

mod common;
use common::{clew_trace, libgcc_trace};

#[derive(Default, Debug)]
struct Traces {
    clew: Vec<usize>,
    libgcc: Vec<usize>,
}

#[inline(never)]
fn innermost(out: &mut Traces) {
    out.clew = clew_trace();
    out.libgcc = libgcc_trace();
    black_box(out);
}

#[inline(never)]
fn f0(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f1(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f1(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f2(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f2(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f3(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f3(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f4(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f4(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f5(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f5(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f6(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f6(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f7(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f7(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f8(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f8(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f9(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f9(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f10(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f10(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f11(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f11(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f12(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f12(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f13(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f13(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f14(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f14(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f15(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f15(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f16(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f16(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f17(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f17(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f18(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f18(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f19(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f19(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f20(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f20(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f21(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f21(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f22(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f22(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f23(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f23(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f24(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f24(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f25(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f25(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f26(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f26(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f27(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f27(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f28(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f28(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f29(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f29(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f30(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f30(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f31(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f31(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f32(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f32(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f33(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f33(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f34(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f34(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f35(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f35(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f36(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f36(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f37(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f37(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f38(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f38(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f39(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f39(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f40(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f40(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f41(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f41(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f42(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f42(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f43(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f43(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f44(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f44(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f45(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f45(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f46(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f46(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f47(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f47(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f48(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f48(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f49(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f49(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f50(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f50(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f51(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f51(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f52(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f52(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f53(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f53(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f54(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f54(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f55(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f55(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f56(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f56(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f57(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f57(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f58(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f58(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f59(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f59(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f60(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f60(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f61(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f61(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f62(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f62(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f63(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f63(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f64(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f64(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f65(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f65(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f66(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f66(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f67(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f67(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f68(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f68(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f69(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f69(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f70(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f70(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f71(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f71(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f72(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f72(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f73(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f73(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f74(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f74(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f75(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f75(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f76(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f76(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f77(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f77(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f78(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f78(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f79(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f79(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f80(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f80(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f81(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f81(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f82(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f82(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f83(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f83(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f84(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f84(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f85(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f85(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f86(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f86(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f87(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f87(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f88(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f88(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f89(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f89(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f90(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f90(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f91(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f91(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f92(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f92(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f93(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f93(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f94(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f94(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f95(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f95(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f96(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f96(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f97(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f97(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f98(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f98(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f99(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f99(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f100(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f100(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f101(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f101(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f102(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f102(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f103(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f103(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f104(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f104(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f105(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f105(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f106(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f106(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f107(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f107(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f108(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f108(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f109(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f109(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f110(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f110(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f111(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f111(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f112(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f112(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f113(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f113(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f114(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f114(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f115(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f115(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f116(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f116(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f117(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f117(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f118(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f118(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f119(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f119(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f120(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f120(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f121(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f121(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f122(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f122(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f123(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f123(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f124(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f124(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f125(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f125(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f126(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f126(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f127(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f127(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f128(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f128(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f129(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f129(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f130(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f130(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f131(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f131(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f132(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f132(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f133(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f133(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f134(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f134(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f135(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f135(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f136(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f136(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f137(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f137(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f138(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f138(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f139(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f139(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f140(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f140(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f141(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f141(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f142(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f142(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f143(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f143(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f144(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f144(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f145(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f145(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f146(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f146(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f147(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f147(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f148(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f148(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f149(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f149(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f150(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f150(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f151(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f151(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f152(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f152(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f153(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f153(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f154(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f154(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f155(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f155(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f156(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f156(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f157(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f157(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f158(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f158(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f159(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f159(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f160(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f160(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f161(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f161(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f162(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f162(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f163(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f163(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f164(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f164(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f165(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f165(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f166(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f166(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f167(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f167(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f168(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f168(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f169(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f169(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f170(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f170(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f171(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f171(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f172(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f172(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f173(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f173(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f174(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f174(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f175(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f175(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f176(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f176(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f177(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f177(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f178(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f178(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f179(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f179(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f180(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f180(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f181(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f181(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f182(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f182(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f183(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f183(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f184(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f184(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f185(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f185(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f186(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f186(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f187(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f187(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f188(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f188(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f189(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f189(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f190(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f190(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f191(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f191(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f192(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f192(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f193(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f193(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f194(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f194(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f195(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f195(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f196(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f196(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f197(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f197(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f198(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f198(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f199(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f199(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f200(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f200(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f201(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f201(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f202(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f202(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f203(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f203(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f204(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f204(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f205(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f205(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f206(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f206(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f207(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f207(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f208(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f208(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f209(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f209(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f210(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f210(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f211(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f211(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f212(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f212(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f213(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f213(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f214(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f214(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f215(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f215(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f216(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f216(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f217(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f217(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f218(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f218(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f219(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f219(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f220(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f220(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f221(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f221(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f222(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f222(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f223(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f223(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f224(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f224(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f225(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f225(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f226(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f226(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f227(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f227(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f228(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f228(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f229(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f229(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f230(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f230(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f231(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f231(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f232(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f232(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f233(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f233(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f234(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f234(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f235(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f235(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f236(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f236(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f237(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f237(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f238(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f238(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f239(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f239(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f240(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f240(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f241(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f241(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f242(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f242(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f243(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f243(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f244(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f244(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f245(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f245(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f246(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f246(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f247(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f247(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f248(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f248(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f249(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f249(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f250(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f250(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f251(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f251(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f252(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f252(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f253(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f253(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f254(depth - 1, out)
    }
    black_box(out);
}

#[inline(never)]
fn f254(depth: usize, out: &mut Traces) {
    if depth == 0 {
        innermost(out)
    } else {
        f255(depth - 1, out)
    }
    black_box(out);
}

/// The last of the chain: depth 255 is as deep as the chain goes.
#[inline(never)]
fn f255(depth: usize, out: &mut Traces) {
    black_box(depth);
    innermost(out);
    black_box(out);
}

fn check(t: &Traces, min_len: usize) {
    // Entries 0 and 1 are the two capture helpers' own call sites; from 2 on both
    // walks describe the same frames.
    assert!(
        t.libgcc.len() >= min_len,
        "libgcc saw only {} frames",
        t.libgcc.len()
    );
    assert_eq!(t.clew[2..], t.libgcc[2..], "clew vs libgcc");
}

#[test]
fn native_recursion_matches_libgcc() {
    for depth in [0usize, 1, 2, 3, 7, 16, 31, 64, 100, 128, 200, 255] {
        // Three times: cold, then with the thread's rules cached, then with them on the
        // cache's path by depth (each depth shifts the frames the path remembered).
        for _ in 0..3 {
            let mut t = Traces::default();
            f0(depth, &mut t);
            check(&t, depth + 3);
        }
    }
}

static IN_HANDLER: Mutex<Option<Traces>> = Mutex::new(None);

extern "C" fn on_signal(_sig: libc::c_int) {
    let mut t = Traces::default();
    innermost(&mut t);
    *IN_HANDLER.lock().unwrap() = Some(t);
}

#[inline(never)]
fn raise_at_depth(depth: usize) {
    if depth == 0 {
        // SAFETY: raising a signal whose handler is installed.
        unsafe { libc::raise(libc::SIGUSR1) };
    } else {
        raise_at_depth(depth - 1);
    }
    black_box(depth);
}

fn install(alt_stack: bool) {
    // SAFETY: installing a handler for SIGUSR1 with a plain sigaction.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_signal as *const () as usize;
        sa.sa_flags = if alt_stack { libc::SA_ONSTACK } else { 0 };
        libc::sigemptyset(&mut sa.sa_mask);
        assert_eq!(libc::sigaction(libc::SIGUSR1, &sa, std::ptr::null_mut()), 0);
    }
}

#[test]
fn signal_handler_matches_libgcc() {
    for alt in [false, true] {
        std::thread::spawn(move || {
            let mut stack = vec![0u8; 256 * 1024];
            if alt {
                // SAFETY: a signal stack this thread owns until it exits (disabled below).
                unsafe {
                    let ss = libc::stack_t {
                        ss_sp: stack.as_mut_ptr().cast(),
                        ss_flags: 0,
                        ss_size: stack.len(),
                    };
                    assert_eq!(libc::sigaltstack(&ss, std::ptr::null_mut()), 0);
                }
            }
            install(alt);
            // Cold, then warm (cached rules around the signal frame).
            for _ in 0..3 {
                raise_at_depth(10);
                let t = IN_HANDLER.lock().unwrap().take().expect("handler ran");
                // The handler's frames, the signal trampoline, libc's raise, 11 recursions.
                check(&t, 14);
            }
            if alt {
                // SAFETY: disable the signal stack before its memory goes away.
                unsafe {
                    let ss = libc::stack_t {
                        ss_sp: std::ptr::null_mut(),
                        ss_flags: libc::SS_DISABLE,
                        ss_size: 0,
                    };
                    libc::sigaltstack(&ss, std::ptr::null_mut());
                }
            }
            drop(stack);
        })
        .join()
        .unwrap();
    }
}
