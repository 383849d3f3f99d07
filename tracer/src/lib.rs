//! clew-tracer: will hold a lock-free no_std flight recorder and panic-time post-mortem
//! dumps (postcard records) that the host decodes. Not yet implemented: see the tracer issue.
#![no_std]
