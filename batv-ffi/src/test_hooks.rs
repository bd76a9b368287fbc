//! Entry points that exist only to test the boundary from C; built only with the
//! `test-hooks` feature (tests/c/run builds a separate copy of the library with it), never in
//! the installed library, and never in the header.

use crate::boundary::batv_result;
use crate::ffi_boundary;

/// Panics inside the boundary, so the C tests can see `BATV_RESULT_PANIC` come back instead of
/// an unwind into C.
#[no_mangle]
pub extern "C" fn batv_test_panic() -> batv_result {
    ffi_boundary! {
        if std::hint::black_box(true) {
            panic!("batv_test_panic: a deliberate panic to test the C boundary");
        }
        batv_result::BATV_RESULT_OK
    }
}
