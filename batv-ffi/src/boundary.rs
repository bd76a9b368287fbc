//! The one boundary every `extern "C"` body of libbatv goes through: it turns a panic or a NULL
//! pointer into a result code, so nothing ever unwinds into C.
//!
//! # How to use it
//!
//! - [`guard`] runs a closure and returns its value, or `on_panic` when the closure panics. It
//!   is generic over the return type, so the Exim `${dlfunc}` functions (which return Exim's
//!   `int` codes) use it with `ERROR` as `on_panic`, and the C API uses it with
//!   [`batv_result::BATV_RESULT_PANIC`].
//! - [`ffi_boundary!`] is the C API's form: `ffi_boundary! { ...body returning batv_result... }`.
//!   Inside it, `?` works on a `Result<_, batv_result>`, so the NULL checks read
//!   `let keyring = try_ref(keyring)?;`.
//! - [`try_ref`], [`try_mut`], [`try_str`] and [`try_buf`] turn raw pointers into references,
//!   returning `BATV_RESULT_NULL_ARGUMENT` for NULL instead of dereferencing it.
//! - [`try_disjoint`] refuses, with `BATV_RESULT_BUFFER_OVERLAP`, a call whose outputs overlap
//!   its input strings or each other ([`Span`]s compare addresses only), before any reference
//!   to either is made and before anything is written.
//!
//! # Why it is safe
//!
//! The workspace's release profile sets `panic = "unwind"` (and so does the dev profile by
//! default), so `catch_unwind` can catch every panic. Were the crate built with
//! `panic = "abort"`, a panic would abort the process instead of unwinding into C, which is still
//! sound, but would take the mail server down; `lib.rs` refuses to compile that configuration
//! (`#[cfg(panic = "abort")] compile_error!`).
//!
//! `AssertUnwindSafe` is justified because no body leaves shared state half-updated: keyrings and
//! policies are immutable once built, and a body that panics has written at most part of the
//! caller's buffer, which the caller must ignore on any result other than OK (the header says so).
//!
//! The panic message still goes to stderr through the default panic hook; it never carries a
//! secret, because the core never formats secrets (its `Debug` impls redact them).

use core::ffi::{c_char, CStr};
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A result code: 0 is success; the other codes are grouped by what the caller should do.
///
/// - 0: `BATV_RESULT_OK`.
/// - 1-5: verification outcomes (docs/scheme.md, "Outcomes"). The address is forged, stale or not a
///   BATV address: a bounce to it should be rejected.
/// - 100-199: bad input from the caller (a NULL pointer, a small buffer, a string that is not an
///   address). Fix the call or the input; retrying the same call gives the same answer.
/// - 200-299: bad configuration (the keyring). A mail server should
///   tempfail (451) until the administrator fixes it, never reject mail for it.
/// - 900: `BATV_RESULT_PANIC`, an internal error (a bug in libbatv); tempfail and report it.
///
/// Use `batv_strerror` for a static, human-readable message for any code.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum batv_result {
    /// Success. For `batv_verify` and `batv_check_bounce`: the address is valid / accepted.
    BATV_RESULT_OK = 0,

    /// Verification outcome: the address has no `prvs=` tag.
    BATV_RESULT_UNTAGGED = 1,
    /// Verification outcome: not an address (over 254 octets, not UTF-8, a control character,
    /// angle brackets or unquoted whitespace), or it starts like a tag but is not one (bad
    /// digits, a missing `=`, no address after the tag).
    BATV_RESULT_MALFORMED = 2,
    /// Verification outcome: the tag's key number is not in the keyring.
    BATV_RESULT_UNKNOWN_KEY = 3,
    /// Verification outcome: the MAC does not match; the address is forged.
    BATV_RESULT_BAD_SIGNATURE = 4,
    /// Verification outcome: the MAC matches but the tag's day is outside the validity window.
    BATV_RESULT_EXPIRED = 5,

    /// Input error: a required pointer argument is NULL.
    BATV_RESULT_NULL_ARGUMENT = 100,
    /// Input error: the output buffer is too small (or NULL with `buf_len` 0); `*out_len` holds
    /// the length needed, excluding the terminating NUL. Nothing usable was written.
    BATV_RESULT_BUFFER_TOO_SMALL = 101,
    /// Input error: not an address that can be signed: no `@`, an empty local part or domain, a
    /// control character, a `<` or `>` (angle brackets: pass the address inside them), or a
    /// space or other whitespace outside a quoted local part.
    BATV_RESULT_NOT_AN_ADDRESS = 102,
    /// Input error: the address, or its signed form, is over 254 octets. Send it untagged.
    BATV_RESULT_TOO_LONG = 103,
    /// Input error: a string argument that must be text is not valid UTF-8 (an address to sign,
    /// a policy pattern). An address to verify or check that is not UTF-8 is malformed instead.
    BATV_RESULT_NOT_UTF8 = 104,
    /// Input error: an exemption or bounce local part given to a policy is not valid. An
    /// exemption is literal (a `*` is refused: write `@domain` for a whole domain, `user@` for a
    /// local part at every domain) and at most 254 octets, as an address is.
    BATV_RESULT_BAD_PATTERN = 105,
    /// Input error: an output (`buf`, `out_len`, `verdict_out`) overlaps an input string or
    /// another output, as when the output buffer is the input address. Nothing was written, not
    /// even `*out_len`, so `buf` still holds what it held. Pass a separate buffer.
    BATV_RESULT_BUFFER_OVERLAP = 106,

    /// Configuration error: the keyring file cannot be read (missing, a directory, a FIFO,
    /// socket or device, an I/O error, or the process may not open it).
    BATV_RESULT_KEYRING_IO = 200,
    /// Configuration error: other users could read or write the keyring file: by its mode
    /// (others may use it, or its group may write it), its owner (neither root nor the user of
    /// the process) or its ACL (a named user, or a named group that may write). The file is
    /// refused; the error message names the fix (`chmod 600`, `chown root`, `setfacl -x`).
    BATV_RESULT_KEYRING_INSECURE = 201,
    /// Configuration error: the text is not a usable keyring (an unknown directive, a bad key
    /// number, scheme or secret, a short secret, a duplicate, no key at all, several keys and no
    /// `sign-key`, not UTF-8...). The error message names the line.
    BATV_RESULT_KEYRING_INVALID = 202,

    /// Internal error: libbatv panicked (a bug). The call did nothing; tempfail and report it.
    BATV_RESULT_PANIC = 900,
}

/// cbindgen:ignore
impl batv_result {
    /// Every code, in order. Keep it complete: `batv_strerror` answers "unknown" for codes that
    /// are missing here.
    pub const ALL: [batv_result; 17] = [
        batv_result::BATV_RESULT_OK,
        batv_result::BATV_RESULT_UNTAGGED,
        batv_result::BATV_RESULT_MALFORMED,
        batv_result::BATV_RESULT_UNKNOWN_KEY,
        batv_result::BATV_RESULT_BAD_SIGNATURE,
        batv_result::BATV_RESULT_EXPIRED,
        batv_result::BATV_RESULT_NULL_ARGUMENT,
        batv_result::BATV_RESULT_BUFFER_TOO_SMALL,
        batv_result::BATV_RESULT_NOT_AN_ADDRESS,
        batv_result::BATV_RESULT_TOO_LONG,
        batv_result::BATV_RESULT_NOT_UTF8,
        batv_result::BATV_RESULT_BAD_PATTERN,
        batv_result::BATV_RESULT_BUFFER_OVERLAP,
        batv_result::BATV_RESULT_KEYRING_IO,
        batv_result::BATV_RESULT_KEYRING_INSECURE,
        batv_result::BATV_RESULT_KEYRING_INVALID,
        batv_result::BATV_RESULT_PANIC,
    ];

    /// The code with this numeric value, if it is one (C may pass any `uint32_t`).
    pub fn from_u32(value: u32) -> Option<batv_result> {
        batv_result::ALL.into_iter().find(|r| *r as u32 == value)
    }
}

/// Runs `body` and returns its value; returns `on_panic` if `body` panics.
///
/// This is the whole boundary: every `extern "C"` function in this crate (the C API and the
/// Exim `${dlfunc}` functions) wraps its body in it, so no panic unwinds into C.
pub fn guard<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or(on_panic)
}

/// [`guard`] for a body that returns `Result<(), batv_result>` style early exits: `Ok(r)` and
/// `Err(r)` both become `r`, and a panic becomes `BATV_RESULT_PANIC`.
pub fn guard_result(body: impl FnOnce() -> Result<batv_result, batv_result>) -> batv_result {
    guard(batv_result::BATV_RESULT_PANIC, || match body() {
        Ok(r) | Err(r) => r,
    })
}

/// Wraps the body of a C API function: `?` on `Result<_, batv_result>` returns that code early,
/// a panic returns `BATV_RESULT_PANIC`. The body's final expression is a `batv_result`.
#[macro_export]
macro_rules! ffi_boundary {
    ($($body:tt)*) => {
        $crate::boundary::guard_result(move || -> ::core::result::Result<
            $crate::boundary::batv_result,
            $crate::boundary::batv_result,
        > {
            ::core::result::Result::Ok({ $($body)* })
        })
    };
}

/// A shared reference from a pointer the caller promises is NULL or valid.
///
/// # Safety
/// `ptr` is NULL or points to a live `T` for the returned lifetime.
pub unsafe fn try_ref<'a, T>(ptr: *const T) -> Result<&'a T, batv_result> {
    // SAFETY: the caller guarantees a non-NULL `ptr` is valid; NULL is refused.
    unsafe { ptr.as_ref() }.ok_or(batv_result::BATV_RESULT_NULL_ARGUMENT)
}

/// A mutable reference from a pointer the caller promises is NULL or valid (an out-parameter).
///
/// # Safety
/// `ptr` is NULL or points to a live, writable `T` that nothing else uses meanwhile.
pub unsafe fn try_mut<'a, T>(ptr: *mut T) -> Result<&'a mut T, batv_result> {
    // SAFETY: as for `try_ref`, and the caller guarantees exclusive access.
    unsafe { ptr.as_mut() }.ok_or(batv_result::BATV_RESULT_NULL_ARGUMENT)
}

/// The UTF-8 text of a NUL-terminated C string; `NULL_ARGUMENT` for NULL, `NOT_UTF8` when the
/// octets are not UTF-8.
///
/// # Safety
/// `ptr` is NULL or points to a NUL-terminated string that lives for `'a`.
pub unsafe fn try_str<'a>(ptr: *const c_char) -> Result<&'a str, batv_result> {
    if ptr.is_null() {
        return Err(batv_result::BATV_RESULT_NULL_ARGUMENT);
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    let c = unsafe { CStr::from_ptr(ptr) };
    c.to_str().map_err(|_| batv_result::BATV_RESULT_NOT_UTF8)
}

/// The caller's output buffer as a byte slice. A NULL `buf` is accepted only with `buf_len` 0
/// (the "how long would it be?" query), giving an empty slice.
///
/// # Safety
/// `buf` is NULL or points to `buf_len` writable octets that nothing else uses meanwhile.
pub unsafe fn try_buf<'a>(buf: *mut c_char, buf_len: usize) -> Result<&'a mut [u8], batv_result> {
    if buf.is_null() {
        return if buf_len == 0 {
            Ok(&mut [])
        } else {
            Err(batv_result::BATV_RESULT_NULL_ARGUMENT)
        };
    }
    // SAFETY: non-NULL, `buf_len` writable octets, exclusive, by the caller's contract.
    Ok(unsafe { core::slice::from_raw_parts_mut(buf.cast::<u8>(), buf_len) })
}

/// The octets an argument covers, by address only: nothing is read or written through it.
///
/// cbindgen:ignore
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Span {
    start: usize,
    end: usize,
}

/// cbindgen:ignore
impl Span {
    /// No octets: overlaps nothing.
    pub const EMPTY: Span = Span { start: 0, end: 0 };

    /// `len` octets at `ptr`; empty when `ptr` is NULL.
    pub fn octets<T>(ptr: *const T, len: usize) -> Span {
        let start = ptr.addr();
        let len = if ptr.is_null() { 0 } else { len };
        // Saturating: a `buf_len` past the end of the address space still covers what follows.
        Span { start, end: start.saturating_add(len) }
    }

    /// The one `T` at `ptr`; empty when `ptr` is NULL.
    pub fn of<T>(ptr: *const T) -> Span {
        Span::octets(ptr, core::mem::size_of::<T>())
    }

    /// A NUL-terminated string with its NUL.
    ///
    /// # Safety
    /// `ptr` is non-NULL and NUL-terminated.
    pub unsafe fn c_string(ptr: *const c_char) -> Span {
        // SAFETY: the caller's contract.
        Span::c_string_octets(unsafe { CStr::from_ptr(ptr) }.to_bytes())
    }

    /// The octets of a C string (as `CStr::to_bytes` gives them) with the NUL that follows.
    pub fn c_string_octets(s: &[u8]) -> Span {
        Span::octets(s.as_ptr(), s.len() + 1)
    }

    fn overlaps(self, other: Span) -> bool {
        self.start < self.end && other.start < other.end && self.start < other.end && other.start < self.end
    }
}

/// `Err(BATV_RESULT_BUFFER_OVERLAP)` when an output overlaps an input or another output. An
/// output that is its own input would be written while it is still being read, and the answer
/// would be wrong (an empty signed address, a valid tag seen as untagged), so such a call is
/// refused before it writes anything.
pub fn try_disjoint(inputs: &[Span], outputs: &[Span]) -> Result<(), batv_result> {
    for (i, out) in outputs.iter().enumerate() {
        if inputs.iter().chain(&outputs[i + 1..]).any(|other| out.overlaps(*other)) {
            return Err(batv_result::BATV_RESULT_BUFFER_OVERLAP);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_returns_the_body_value() {
        assert_eq!(guard(-1, || 7), 7);
    }

    #[test]
    fn guard_turns_a_panic_into_the_fallback() {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r = guard(3_i32, || panic!("boom"));
        std::panic::set_hook(prev);
        assert_eq!(r, 3);
    }

    #[test]
    fn the_macro_maps_question_mark_and_panics() {
        fn f(p: *const u8) -> batv_result {
            ffi_boundary! {
                // SAFETY: p is NULL or a valid pointer in these tests.
                let v = unsafe { try_ref(p) }?;
                if *v == 0 { panic!("zero") }
                batv_result::BATV_RESULT_OK
            }
        }
        let one = 1u8;
        let zero = 0u8;
        assert_eq!(f(&one), batv_result::BATV_RESULT_OK);
        assert_eq!(f(core::ptr::null()), batv_result::BATV_RESULT_NULL_ARGUMENT);
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let r = f(&zero);
        std::panic::set_hook(prev);
        assert_eq!(r, batv_result::BATV_RESULT_PANIC);
    }

    #[test]
    fn spans_overlap_only_when_they_share_an_octet() {
        let text = *b"user@example.com\0tail";
        let base = text.as_ptr();
        // SAFETY: `text` holds a NUL at 16.
        let input = unsafe { Span::c_string(base.cast()) };
        assert_eq!(input, Span::octets(base, 17));
        let at = |offset: usize, len: usize| Span::octets(base.wrapping_add(offset), len);
        for (output, overlap) in [
            (at(0, 255), true),  // the input is the buffer
            (at(5, 4), true),    // inside it
            (at(16, 1), true),   // its NUL
            (at(17, 5), false),  // just after the NUL
            (at(0, 0), false),   // an empty buffer writes nothing
            (Span::octets(core::ptr::null::<u8>(), 8), false),
            (Span::octets(base.wrapping_sub(3), 3), false),
            (Span::octets(base.wrapping_sub(3), 4), true),
            (Span::octets(base.wrapping_add(17), usize::MAX), false),
            (Span::octets(base.wrapping_sub(1), usize::MAX), true),
        ] {
            let got = try_disjoint(&[input], &[output]);
            assert_eq!(got.is_err(), overlap, "{output:?} against {input:?}");
        }
        // Outputs must not overlap each other either; an input may be given twice.
        assert!(try_disjoint(&[input, input], &[at(17, 5), at(30, 8)]).is_ok());
        assert_eq!(
            try_disjoint(&[], &[at(17, 5), at(20, 8)]),
            Err(batv_result::BATV_RESULT_BUFFER_OVERLAP)
        );
    }

    #[test]
    fn null_buffer_is_allowed_only_with_zero_length() {
        // SAFETY: NULL with length 0 and NULL with length 5 are both refused or handled safely.
        assert!(unsafe { try_buf(core::ptr::null_mut(), 0) }.is_ok_and(|b| b.is_empty()));
        assert_eq!(
            unsafe { try_buf(core::ptr::null_mut(), 5) }.err(),
            Some(batv_result::BATV_RESULT_NULL_ARGUMENT)
        );
    }
}
