#!/bin/sh
# RUSTC_WORKSPACE_WRAPPER for the demo kernel (see README.md): cargo calls it as
# `rustc-wrapper.sh rustc ARGS...` for the kernel's own crates. The final binary is
# compiled with `-C panic=abort` (a no_std binary cannot be panic=unwind on stable),
# appended after RUSTFLAGS' `-C panic=unwind` so that it wins; the libraries keep unwind.
rustc="$1"
shift
case " $* " in
*" --crate-type bin "*) exec "$rustc" "$@" -C panic=abort ;;
esac
exec "$rustc" "$@"
