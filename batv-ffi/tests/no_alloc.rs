//! `batv_sign` and `batv_verify` never allocate: a mail server may call them on every message
//! from any thread without touching the heap. A counting global allocator proves it for each
//! path through them (signed, unchanged, valid in both wire forms, every failing outcome, a
//! small buffer, the system clock).

use std::ffi::{c_char, CStr};

use batv::boundary::batv_result;
use batv::capi::*;
use batv_test_support::Counting;

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_in(f: impl FnOnce()) -> u64 {
    batv_test_support::allocations_in(f).0
}

const NOW: i64 = 1_795_700_000;

/// `sign` or `verify` below.
type Call = fn(*const batv_keyring, *const c_char, i64, &mut [u8], &mut usize) -> batv_result;

#[test]
fn sign_and_verify_never_allocate() {
    let text = "sign-key 1\nkey 1 hmac-sha256 text:secret\nkey 2 hmac-sha1 text:other\n";
    let mut keyring = std::ptr::null_mut();
    // SAFETY: valid text and out-pointer.
    let r = unsafe { batv_keyring_parse(text.as_ptr().cast(), text.len(), &mut keyring) };
    assert_eq!(r, batv_result::BATV_RESULT_OK);

    let cases: [(&CStr, i64, Call, batv_result); 12] = [
        (c"user@example.com", NOW, sign, batv_result::BATV_RESULT_OK),
        (
            c"prvs=1790ac4fd6=user@example.com",
            NOW,
            sign,
            batv_result::BATV_RESULT_OK,
        ),
        (c"", NOW, sign, batv_result::BATV_RESULT_OK),
        (c"user", NOW, sign, batv_result::BATV_RESULT_NOT_AN_ADDRESS),
        (
            c"user@example.com",
            BATV_NOW,
            sign,
            batv_result::BATV_RESULT_OK,
        ),
        (
            c"prvs=1790ac4fd6=user@example.com",
            NOW,
            verify,
            batv_result::BATV_RESULT_OK,
        ),
        (
            c"prvs=user/1790ac4fd6@example.com",
            NOW,
            verify,
            batv_result::BATV_RESULT_OK,
        ),
        (
            c"\"prvs=0790e9e584=john doe\"@example.com",
            NOW,
            verify,
            batv_result::BATV_RESULT_UNKNOWN_KEY,
        ),
        (
            c"prvs=1790ac4fd7=user@example.com",
            NOW,
            verify,
            batv_result::BATV_RESULT_BAD_SIGNATURE,
        ),
        (
            c"prvs=1790ac4fd6=user@example.com",
            NOW + 30 * 86_400,
            verify,
            batv_result::BATV_RESULT_EXPIRED,
        ),
        (
            c"prvs=1x90ac4fd6=user@example.com",
            NOW,
            verify,
            batv_result::BATV_RESULT_MALFORMED,
        ),
        (
            c"user@example.com",
            NOW,
            verify,
            batv_result::BATV_RESULT_UNTAGGED,
        ),
    ];
    let mut buf = [0u8; BATV_ADDRESS_MAX];
    let mut small = [0u8; 4];
    let mut len = 0usize;
    // The first call may initialise lazily-built state in std (the clock); warm it up.
    sign(
        keyring,
        c"warm@example.com".as_ptr(),
        BATV_NOW,
        &mut buf,
        &mut len,
    );
    for (address, now, call, want) in cases {
        let mut got = batv_result::BATV_RESULT_PANIC;
        let n = allocations_in(|| got = call(keyring, address.as_ptr(), now, &mut buf, &mut len));
        assert_eq!(got, want, "{address:?}");
        assert_eq!(n, 0, "{address:?} allocated {n} times");
        let n = allocations_in(|| got = call(keyring, address.as_ptr(), now, &mut small, &mut len));
        assert_eq!(n, 0, "{address:?} with a small buffer allocated {n} times");
    }
    // The counter works: parsing a keyring does allocate.
    let mut other = std::ptr::null_mut();
    // SAFETY: valid text and out-pointer.
    let n = allocations_in(|| unsafe {
        batv_keyring_parse(text.as_ptr().cast(), text.len(), &mut other);
    });
    assert!(n > 0);
    // SAFETY: both made by batv_keyring_parse above.
    unsafe {
        batv_keyring_free(other);
        batv_keyring_free(keyring);
    }
}

fn sign(
    k: *const batv_keyring,
    a: *const c_char,
    now: i64,
    buf: &mut [u8],
    len: &mut usize,
) -> batv_result {
    // SAFETY: live keyring, NUL-terminated address, buffer and length from the caller.
    unsafe { batv_sign(k, a, now, buf.as_mut_ptr().cast(), buf.len(), len) }
}

fn verify(
    k: *const batv_keyring,
    a: *const c_char,
    now: i64,
    buf: &mut [u8],
    len: &mut usize,
) -> batv_result {
    // SAFETY: as for `sign`.
    unsafe { batv_verify(k, a, now, buf.as_mut_ptr().cast(), buf.len(), len) }
}
