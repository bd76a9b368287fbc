//! Which standard descriptors (0, 1, 2) were closed when the process started.
//!
//! Before `main`, the Rust runtime opens /dev/null on a closed standard descriptor, so
//! `batv sign >&-` would write its results into /dev/null and exit 0. The C runtime calls the
//! functions of `.init_array` before it calls `main`, and so before the Rust runtime's own
//! set-up: one of them records which descriptors were closed. batv-cli/tests/commands.rs
//! proves the order (a run with descriptor 1 closed exits 2).

use std::sync::atomic::{AtomicU8, Ordering};

/// Bit `fd` is set when descriptor `fd` was closed at start-up.
static CLOSED_AT_START: AtomicU8 = AtomicU8::new(0);

// The one unsafe part of the command: a function pointer placed where the C runtime finds it.
// It runs once, single-threaded, before main, and touches nothing of the Rust runtime.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
#[used]
#[link_section = ".init_array"]
static RECORD_CLOSED: extern "C" fn() = record_closed;

#[cfg(target_os = "linux")]
extern "C" fn record_closed() {
    let mut closed = 0;
    for fd in 0..3 {
        // SAFETY: F_GETFD only looks the number up in the descriptor table; any number may be
        // asked about.
        #[allow(unsafe_code)]
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
        if flags == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF) {
            closed |= 1 << fd;
        }
    }
    CLOSED_AT_START.store(closed, Ordering::Relaxed);
}

/// Whether descriptor `fd` (0, 1 or 2) was closed when the process started. Off Linux this is
/// not recorded, and the answer is always no.
pub fn closed_at_start(fd: u8) -> bool {
    CLOSED_AT_START.load(Ordering::Relaxed) & (1 << fd) != 0
}
