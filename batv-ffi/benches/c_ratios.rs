//! The C ABI's target ratios against two SHA-256 compressions: `batv_sign` and `batv_verify`
//! called exactly as C calls them (through `extern "C"`, with NUL-terminated strings and a
//! caller buffer), interleaved with the limit and with the core calls they wrap.
//!
//! `cargo bench -p batv-ffi --bench c_ratios [-- ROUNDS]`

use batv::boundary::batv_result;
use batv::capi::*;
use batv_test_support::{interleaved, two_compressions, Op};
use std::ffi::CString;
use std::hint::black_box;

const NOW: i64 = 1_795_700_000;
const KEYS: &str = "key 1 hmac-sha256 base64:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n";
const BATCH: u32 = 1000;

fn main() {
    let rounds = std::env::args().skip(1).find_map(|a| a.parse::<usize>().ok()).unwrap_or(600);
    let core = batv_core::Keyring::parse(KEYS).expect("keyring parses");
    let mut keyring = std::ptr::null_mut();
    // SAFETY: valid text and out-pointer.
    let r = unsafe { batv_keyring_parse(KEYS.as_ptr().cast(), KEYS.len(), &mut keyring) };
    assert_eq!(r, batv_result::BATV_RESULT_OK);
    let short = CString::new("user01@example.com").expect("no NUL");
    let tagged = CString::new(core.sign_at("user01@example.com", NOW).expect("signs")).expect("no NUL");
    let (mut a, mut b, mut c) = ([0u8; SIGNED_MAX_C], [0u8; SIGNED_MAX_C], [0u8; batv_core::SIGNED_MAX]);
    let (mut len_a, mut len_b) = (0usize, 0usize);
    let mut ops: Vec<Op> = vec![
        ("limit/two_compressions", Box::new(two_compressions)),
        ("core/sign/short", Box::new(|| core.sign_into(black_box("user01@example.com"), NOW, &mut c).is_ok() as usize)),
        ("c_abi/sign/short", Box::new(|| {
            // SAFETY: a live keyring, NUL-terminated strings, a buffer of its stated length.
            let r = unsafe { batv_sign(keyring, black_box(short.as_ptr()), NOW, a.as_mut_ptr().cast(), a.len(), &mut len_a) };
            r as usize + len_a
        })),
        ("c_abi/verify_valid/short", Box::new(|| {
            // SAFETY: as above.
            let r = unsafe { batv_verify(keyring, black_box(tagged.as_ptr()), NOW, b.as_mut_ptr().cast(), b.len(), &mut len_b) };
            r as usize + len_b
        })),
    ];
    interleaved(&mut ops, rounds, BATCH);
    drop(ops);
    // SAFETY: made by batv_keyring_parse, freed once.
    unsafe { batv_keyring_free(keyring) };
}

/// `BATV_ADDRESS_MAX`: the terminating NUL included.
const SIGNED_MAX_C: usize = BATV_ADDRESS_MAX;
