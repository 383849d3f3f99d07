//! Host operating-system glue (the `std` feature).

pub mod linux;
