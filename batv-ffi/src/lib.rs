//! libbatv: the C ABI over `batv-core` (`include/batv.h`), and the functions Exim loads with
//! `${dlfunc}`.
//!
//! Every `extern "C"` body goes through [`boundary`], which turns panics and NULL pointers into
//! result codes.

// A panic must unwind to the boundary's `catch_unwind`, which turns it into a result code.
// With panic=abort it would kill the mail server process instead.
#[cfg(panic = "abort")]
compile_error!("batv-ffi must be built with panic = \"unwind\": the C boundary catches panics");

pub mod boundary;
pub mod capi;
/// cbindgen:ignore
#[cfg(feature = "test-hooks")]
pub mod test_hooks;
/// cbindgen:ignore
///
/// The Exim `${dlfunc}` functions are for Exim, not for C callers: they stay out of batv.h.
pub mod exim;
