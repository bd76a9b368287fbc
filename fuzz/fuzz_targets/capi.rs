//! The C entry points of libbatv (`include/batv.h`) with arbitrary octets, arbitrary buffer
//! sizes and NULL pointers, called exactly as C calls them, each held to the batv-core call it
//! wraps (docs/scheme.md, "Where the faces differ": C strings cannot hold a NUL, and nothing
//! else differs).
//!
//! Input: byte 0 picks the function and which pointers are NULL; bytes 1-2 the buffer length
//! (mod 300); bytes 3-10 `now`; the rest is split at NUL bytes into the string arguments,
//! which need not be UTF-8 (the core admits octets as they are).
//!
//! Invariants: no call panics (`BATV_RESULT_PANIC`); the buffer protocol holds (on OK
//! `*out_len` <= buf_len - 1 and `buf` is a NUL-terminated string of that length; on
//! BUFFER_TOO_SMALL `*out_len` is the length needed, and a buffer of `*out_len + 1` then gets
//! the same answer; otherwise `buf` is empty, or holds the SMTP reply of a reject); nothing is
//! written past `buf_len` (AddressSanitizer watches the exact-size buffer); a NULL required
//! pointer gives NULL_ARGUMENT and writes nothing. Every answer is the core's: the same output
//! octets, OK exactly when the core call succeeds, an outcome code 1-5 that is the core's
//! outcome (its place in `Outcome::ALL`, the order of docs/scheme.md and of the header), a
//! verdict with the core's reason, words and reply. Keyring parsing gives the core's error
//! message, cut to the buffer at a character boundary; `batv_strerror` gives a static message
//! for any `uint32_t`, the core's outcome message for codes 1-5.
#![no_main]

use batv::boundary::batv_result;
use batv::capi::*;
use batv_core::{AddressProblem, Keyring, KeyringError, KeyringErrorKind, Outcome, Policy, Reason, SignError, Signed, Verdict};
use batv_fuzz::*;
use core::ffi::{c_char, CStr};
use libfuzzer_sys::fuzz_target;
use std::ffi::CString;

use batv_result::*;

fn keyring_handle() -> &'static Handle {
    static H: std::sync::OnceLock<Handle> = std::sync::OnceLock::new();
    H.get_or_init(|| {
        let mut k: *mut batv_keyring = core::ptr::null_mut();
        // SAFETY: valid text of the given length, writable out-pointer.
        let r = unsafe { batv_keyring_parse(KEYRING_TEXT.as_ptr().cast(), KEYRING_TEXT.len(), &mut k) };
        assert_eq!(r, BATV_RESULT_OK);
        Handle(k)
    })
}

struct Handle(*mut batv_keyring);
// SAFETY: the header promises a keyring may be shared between threads.
unsafe impl Sync for Handle {}
unsafe impl Send for Handle {}

/// What one buffer call returned: the code, `*out_len`, and the string in `buf`.
#[derive(Debug, PartialEq)]
struct Answer {
    code: u32,
    out_len: usize,
    text: Vec<u8>,
    /// The first call said BUFFER_TOO_SMALL, and this is the second call's answer.
    retried: bool,
}

/// Calls `f(buf, buf_len, out_len)` with an exact-size heap buffer (ASan sees any overrun),
/// checks the buffer protocol, and for BUFFER_TOO_SMALL calls again with the size it asked for.
fn call(buf_len: usize, null_buf: bool, f: &dyn Fn(*mut c_char, usize, *mut usize) -> batv_result) -> Answer {
    let a = call_once(buf_len, null_buf, f);
    if a.code == BATV_RESULT_BUFFER_TOO_SMALL as u32 {
        assert!(a.out_len + 1 > buf_len, "too small, yet {} + 1 <= {buf_len}", a.out_len);
        let again = call_once(a.out_len + 1, false, f);
        assert_ne!(again.code, BATV_RESULT_BUFFER_TOO_SMALL as u32, "the size asked for did not suffice");
        assert_eq!(again.out_len, a.out_len, "the size asked for is not the size used");
        return Answer { retried: true, ..again };
    }
    a
}

fn call_once(buf_len: usize, null_buf: bool, f: &dyn Fn(*mut c_char, usize, *mut usize) -> batv_result) -> Answer {
    let mut buf = vec![0xAAu8; buf_len];
    let mut out_len = usize::MAX;
    let ptr = if null_buf && buf_len == 0 { core::ptr::null_mut() } else { buf.as_mut_ptr().cast() };
    let code = f(ptr, buf_len, &mut out_len);
    assert_ne!(code, BATV_RESULT_PANIC, "libbatv panicked");
    if code == BATV_RESULT_NULL_ARGUMENT {
        assert!(buf.iter().all(|&b| b == 0xAA) && out_len == usize::MAX, "NULL_ARGUMENT wrote");
        return Answer { code: code as u32, out_len: 0, text: Vec::new(), retried: false };
    }
    // The string in the buffer: NUL-terminated within buf_len whenever there is room.
    let text = if buf_len > 0 {
        let nul = buf.iter().position(|&b| b == 0).expect("buf is NUL-terminated");
        buf[..nul].to_vec()
    } else {
        Vec::new()
    };
    match code {
        BATV_RESULT_OK => {
            assert!(buf_len >= 1 && out_len < buf_len, "OK with out_len {out_len}, buf_len {buf_len}");
            assert_eq!(text.len(), out_len, "*out_len is not strlen(buf)");
        }
        BATV_RESULT_BUFFER_TOO_SMALL => assert!(text.is_empty()),
        // A reject carries the SMTP reply; every other failure leaves buf empty.
        _ if !text.is_empty() => {
            assert!((1..=5).contains(&(code as u32)), "{code:?} left {text:?} in buf");
            assert_eq!(text.len(), out_len);
        }
        _ => assert_eq!(out_len, 0, "{code:?} with *out_len {out_len}"),
    }
    Answer { code: code as u32, out_len, text, retried: false }
}

/// The code of an outcome: its place in `Outcome::ALL`, which is the header's 0-5.
fn outcome_code(o: Outcome) -> u32 {
    Outcome::ALL.iter().position(|&x| x == o).expect("every outcome is in ALL") as u32
}

/// What `batv_check_bounce` / `batv_policy_check` answer for a core verdict: OK and the address
/// to deliver to, or the reject's outcome code and its SMTP reply.
fn verdict_answer(v: &Verdict) -> (u32, Vec<u8>) {
    if v.accepted {
        (0, v.deliver_to.clone().unwrap_or_default().into_bytes())
    } else {
        let o = v.reason.outcome().expect("a reject is an outcome");
        assert_ne!(o, Outcome::Valid);
        (outcome_code(o), v.smtp_reply.expect("a reject has a reply").as_bytes().to_vec())
    }
}

/// The C answer equals the core's: OK with the same octets, or the same code.
fn check(a: &Answer, want: Result<Vec<u8>, u32>) {
    match want {
        Ok(s) => {
            assert_eq!(a.code, 0, "want OK with {:?}", String::from_utf8_lossy(&s));
            assert_eq!(a.text, s);
        }
        Err(code) => assert_eq!(a.code, code, "{a:?}"),
    }
}

/// A C string as Rust text, for the static strings of the header.
fn c_text(p: *const c_char) -> Option<&'static str> {
    // SAFETY: libbatv's static strings are NUL-terminated and live for the process.
    (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_str().expect("a static string is UTF-8"))
}

/// The longest prefix of `s` that fits `len - 1` octets and ends at a character boundary.
fn cut(s: &str, len: usize) -> &str {
    let mut n = s.len().min(len.saturating_sub(1));
    while !s.is_char_boundary(n) {
        n -= 1;
    }
    &s[..n]
}

fuzz_target!(|data: &[u8]| {
    let Some((&op, rest)) = data.split_first() else { return };
    let buf_len = usize::from(u16::from_le_bytes([rest.first().copied().unwrap_or(0), rest.get(1).copied().unwrap_or(1)])) % 300;
    let mut now = read_i64(rest.get(2..).unwrap_or(&[]));
    if now == BATV_NOW {
        now = NOW; // the system clock would make the answer unpredictable
    }
    let strings: Vec<&[u8]> = rest.get(10..).unwrap_or(&[]).split(|&b| b == 0).collect();
    let raw = |i: usize| strings.get(i).copied().unwrap_or(b"");
    let arg = |i: usize| CString::new(raw(i)).expect("split at NUL");
    let (a0, a1) = (arg(0), arg(1));
    let null_buf = op & 0x80 != 0;
    let null_arg = op & 0x40 != 0;
    let ring = keyring_handle().0;
    let rust = keyring();

    match op & 0x07 {
        0 => {
            let addr = if null_arg { core::ptr::null() } else { a0.as_ptr() };
            let a = call(buf_len, null_buf, &|b, n, o| unsafe { batv_sign(ring, addr, now, b, n, o) });
            assert!(a.out_len < BATV_ADDRESS_MAX, "BATV_ADDRESS_MAX suffices");
            let mut out = [0u8; batv_core::SIGNED_MAX];
            let want = match rust.sign_into(raw(0), now, &mut out) {
                _ if null_arg => Err(BATV_RESULT_NULL_ARGUMENT as u32),
                Ok(Signed::Unchanged) => Ok(raw(0).to_vec()),
                Ok(Signed::Written(n)) => Ok(out[..n].to_vec()),
                Err(SignError::Address(AddressProblem::TooLong { .. } | AddressProblem::TooLongToSign { .. })) => {
                    Err(BATV_RESULT_TOO_LONG as u32)
                }
                Err(SignError::Address(AddressProblem::NotUtf8)) => Err(BATV_RESULT_NOT_UTF8 as u32),
                Err(SignError::Address(_)) => Err(BATV_RESULT_NOT_AN_ADDRESS as u32),
                Err(e @ SignError::BufferTooSmall { .. }) => panic!("SIGNED_MAX does not suffice: {e:?}"),
            };
            check(&a, want);
        }
        1 => {
            let addr = if null_arg { core::ptr::null() } else { a0.as_ptr() };
            let a = call(buf_len, null_buf, &|b, n, o| unsafe { batv_verify(ring, addr, now, b, n, o) });
            assert!(a.out_len < BATV_ADDRESS_MAX, "BATV_ADDRESS_MAX suffices");
            assert!(!a.retried || a.code == 0, "BUFFER_TOO_SMALL only comes with a valid tag");
            let want = match rust.verify_at(raw(0), now) {
                _ if null_arg => Err(BATV_RESULT_NULL_ARGUMENT as u32),
                Ok(o) => Ok(String::from(o).into_bytes()),
                Err(e) => Err(outcome_code(e.outcome())),
            };
            check(&a, want);
        }
        2 => {
            let addr = if null_arg { core::ptr::null() } else { a0.as_ptr() };
            let a = call(buf_len, null_buf, &|b, n, o| unsafe { batv_strip(addr, b, n, o) });
            assert!(a.out_len <= raw(0).len(), "never longer than the input");
            assert!(a.out_len < BATV_ADDRESS_MAX || raw(0).len() > 254, "BATV_ADDRESS_MAX suffices");
            let want = if null_arg { Err(BATV_RESULT_NULL_ARGUMENT as u32) } else { Ok(batv_core::strip(raw(0)).into_owned()) };
            check(&a, want);
        }
        3 => {
            let (s, r) = (a0.as_ptr(), if null_arg { core::ptr::null() } else { a1.as_ptr() });
            let a = call(buf_len, null_buf, &|b, n, o| unsafe { batv_check_bounce(ring, s, r, now, b, n, o) });
            assert!(a.out_len < BATV_ADDRESS_MAX, "BATV_ADDRESS_MAX suffices");
            if null_arg {
                check(&a, Err(BATV_RESULT_NULL_ARGUMENT as u32));
            } else {
                let v = Policy::default().check(rust, raw(0), raw(1), now);
                assert_eq!((a.code, a.text), verdict_answer(&v), "check_bounce{:?}", (raw(0), raw(1)));
            }
        }
        4 => keyring_parse(op, rest.get(10..).unwrap_or(&[]), buf_len, null_arg, null_buf),
        5 => {
            let code = u32::from_le_bytes([op, rest.first().copied().unwrap_or(0), rest.get(1).copied().unwrap_or(0), rest.get(2).copied().unwrap_or(0)]);
            for c in [code, code & 0x3ff, code % 6] {
                let p = batv_strerror(c);
                let s = c_text(p).expect("batv_strerror never gives NULL");
                assert!(!s.is_empty() && s.len() < 200);
                assert_eq!(p, batv_strerror(c), "the message is static");
                if let Some(o) = Outcome::ALL.get(c as usize).filter(|_| c != 0) {
                    assert_eq!(s, o.message(), "batv_strerror({c}) is the core's outcome message");
                }
            }
            let v = c_text(batv_version()).expect("a version");
            assert!(!v.is_empty() && v.split('.').all(|n| n.parse::<u32>().is_ok()), "{v:?}");
        }
        6 => {
            // A NULL required pointer in each function: NULL_ARGUMENT, and nothing written.
            let mut out_len = 7usize;
            let mut buf = [0xAAu8; 8];
            let bp = buf.as_mut_ptr().cast::<c_char>();
            let mut k: *mut batv_keyring = core::ptr::null_mut();
            let mut p: *mut batv_policy = core::ptr::null_mut();
            let parts = [core::ptr::null::<c_char>()];
            // SAFETY: every pointer is NULL or valid for what the header says.
            let results = unsafe {
                assert_eq!(batv_policy_new(&mut p), BATV_RESULT_OK);
                let r = [
                    batv_sign(core::ptr::null(), a0.as_ptr(), now, bp, 8, &mut out_len),
                    batv_verify(ring, a0.as_ptr(), now, bp, 8, core::ptr::null_mut()),
                    batv_strip(a0.as_ptr(), core::ptr::null_mut(), 5, &mut out_len),
                    batv_check_bounce(ring, core::ptr::null(), a1.as_ptr(), now, bp, 8, &mut out_len),
                    batv_policy_check(core::ptr::null(), ring, a0.as_ptr(), a1.as_ptr(), now, core::ptr::null_mut(), bp, 8, &mut out_len),
                    batv_policy_check(p, core::ptr::null(), a0.as_ptr(), a1.as_ptr(), now, core::ptr::null_mut(), bp, 8, &mut out_len),
                    batv_keyring_parse(a0.as_ptr(), a0.as_bytes().len(), core::ptr::null_mut()),
                    batv_keyring_parse(core::ptr::null(), 3, &mut k),
                    batv_policy_new(core::ptr::null_mut()),
                    batv_policy_add_exempt(core::ptr::null_mut(), a0.as_ptr()),
                    batv_policy_add_exempt(p, core::ptr::null()),
                    batv_policy_set_bounce_local_parts(p, parts.as_ptr(), 1),
                    batv_policy_set_bounce_local_parts(p, core::ptr::null(), 1),
                    batv_policy_set_monitor(core::ptr::null_mut(), true),
                ];
                batv_policy_free(p);
                batv_keyring_free(core::ptr::null_mut());
                batv_policy_free(core::ptr::null_mut());
                r
            };
            for (i, r) in results.into_iter().enumerate() {
                assert_eq!(r, BATV_RESULT_NULL_ARGUMENT, "call {i}");
            }
            assert!(out_len == 7 && buf.iter().all(|&b| b == 0xAA) && k.is_null(), "NULL_ARGUMENT wrote");
        }
        _ => policy_check(op, now, buf_len, null_buf, &strings, ring, rust),
    }
});

/// `batv_keyring_parse_ex` with arbitrary octets and error buffer size, against
/// `Keyring::parse` of the same text.
fn keyring_parse(op: u8, text: &[u8], errbuf_len: usize, null_arg: bool, null_buf: bool) {
    let mut errbuf = vec![0xAAu8; errbuf_len];
    let mut k: *mut batv_keyring = 0x1 as *mut _; // must be overwritten
    let ebuf = if null_buf && errbuf_len == 0 { core::ptr::null_mut() } else { errbuf.as_mut_ptr().cast() };
    let tptr = if null_arg { core::ptr::null() } else { text.as_ptr().cast::<c_char>() };
    // SAFETY: `text.len()` readable octets (or NULL), a writable out-pointer, `errbuf_len`
    // writable octets (or NULL with 0).
    let code = unsafe { batv_keyring_parse_ex(tptr, text.len(), &mut k, ebuf, errbuf_len) };
    assert_ne!(code, BATV_RESULT_PANIC);
    let msg = if errbuf_len > 0 {
        let nul = errbuf.iter().position(|&b| b == 0).expect("errbuf is NUL-terminated");
        String::from_utf8(errbuf[..nul].to_vec()).expect("the message is UTF-8 (cut at a character boundary)")
    } else {
        String::new()
    };
    // The core's answer; octets that are not UTF-8 are an invalid keyring, on the line where
    // the bad octet is.
    let want: Result<Keyring, String> = match (null_arg, std::str::from_utf8(text)) {
        (true, _) => Err(c_text(batv_strerror(BATV_RESULT_NULL_ARGUMENT as u32)).unwrap_or("").to_owned()),
        (false, Ok(t)) => Keyring::parse(t).map_err(|e| e.to_string()),
        (false, Err(e)) => {
            let line = text[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
            Err(KeyringError { path: None, line: Some(line), kind: KeyringErrorKind::NotUtf8 }.to_string())
        }
    };
    match want {
        Ok(rust) => {
            assert_eq!(code, BATV_RESULT_OK, "{msg:?}");
            assert!(!k.is_null() && msg.is_empty());
            // The same keyring: the same signature for an address.
            let mut buf = [0u8; 256];
            let mut n = 0usize;
            let addr = c"User@Example.com";
            // SAFETY: a live keyring, a NUL-terminated address, a 256-octet buffer.
            let r = unsafe { batv_sign(k, addr.as_ptr(), NOW + i64::from(op), buf.as_mut_ptr().cast(), buf.len(), &mut n) };
            assert_eq!(r, BATV_RESULT_OK);
            let s = rust.sign_at("User@Example.com", NOW + i64::from(op)).expect("it signs");
            assert_eq!(&buf[..n], s.as_bytes());
            // SAFETY: made by batv_keyring_parse_ex above, freed once.
            unsafe { batv_keyring_free(k) };
        }
        Err(m) => {
            assert!(k.is_null(), "{code:?}");
            let want_code = if null_arg { BATV_RESULT_NULL_ARGUMENT } else { BATV_RESULT_KEYRING_INVALID };
            assert_eq!(code, want_code);
            // A C string ends at its first NUL: a NUL from the text, echoed, ends the message.
            let m = m.split('\0').next().unwrap_or_default();
            assert_eq!(msg, cut(m, errbuf_len), "the message is the core's, cut to the buffer");
        }
    }
}

/// A policy configured through C with the input's exemption and bounce local part, against
/// the core's policy configured alike, then one recipient checked by both.
fn policy_check(op: u8, now: i64, buf_len: usize, null_buf: bool, strings: &[&[u8]], ring: *mut batv_keyring, rust: &Keyring) {
    let raw = |i: usize| strings.get(i).copied().unwrap_or(b"");
    let arg = |i: usize| CString::new(raw(i)).expect("split at NUL");
    let (exempt, part, sender, recipient) = (arg(0), arg(1), arg(2), arg(3));
    let mut core_policy = Policy::default();
    let mut p: *mut batv_policy = core::ptr::null_mut();
    // SAFETY: pointers to live, NUL-terminated strings and a fresh policy, freed once.
    unsafe {
        assert_eq!(batv_policy_new(&mut p), BATV_RESULT_OK);
        let ex = batv_policy_add_exempt(p, exempt.as_ptr());
        let want_ex = match exempt.to_str() {
            Err(_) => BATV_RESULT_NOT_UTF8,
            Ok(s) => match core_policy.add_exempt(s) {
                Ok(()) => BATV_RESULT_OK,
                Err(_) => BATV_RESULT_BAD_PATTERN,
            },
        };
        assert_eq!(ex, want_ex);
        // Bit 4: no bounce local parts at all; bit 5: leave the default.
        if op & 0x20 == 0 {
            let parts = [part.as_ptr()];
            let count = if op & 0x10 != 0 { 0 } else { 1 };
            let bl = batv_policy_set_bounce_local_parts(p, parts.as_ptr(), count);
            let want_bl = match (count, part.to_str()) {
                (0, _) => core_policy.set_bounce_local_parts(Vec::<&str>::new()).map(|()| BATV_RESULT_OK).unwrap_or(BATV_RESULT_BAD_PATTERN),
                (_, Err(_)) => BATV_RESULT_NOT_UTF8,
                (_, Ok(s)) => core_policy.set_bounce_local_parts([s]).map(|()| BATV_RESULT_OK).unwrap_or(BATV_RESULT_BAD_PATTERN),
            };
            assert_eq!(bl, want_bl);
        }
        let monitor = op & 0x08 != 0;
        assert_eq!(batv_policy_set_monitor(p, monitor), BATV_RESULT_OK);
        core_policy.set_monitor(monitor);

        let mut verdict = core::mem::MaybeUninit::<batv_verdict>::zeroed();
        let (pp, vp) = (p, verdict.as_mut_ptr());
        let a = call(buf_len, null_buf, &|b, n, o| {
            batv_policy_check(pp, ring, sender.as_ptr(), recipient.as_ptr(), now, vp, b, n, o)
        });
        assert!(a.out_len < BATV_ADDRESS_MAX, "BATV_ADDRESS_MAX suffices");
        let v = core_policy.check(rust, raw(2), raw(3), now);
        assert_eq!((a.code, a.text), verdict_answer(&v), "policy_check{:?}", (raw(2), raw(3)));
        let c = verdict.assume_init_ref();
        assert_eq!((c.accepted, c.monitored), (v.accepted, v.monitored));
        let place = Reason::ALL.iter().position(|&r| r == v.reason).expect("every reason is in ALL");
        assert_eq!(c.reason as usize, place, "batv_reason is the core's reason, in the core's order");
        assert_eq!(c_text(c.reason_word), Some(v.reason.as_str()));
        assert_eq!(c_text(c.smtp_reply), v.smtp_reply);
        if a.retried {
            // The verdict is filled in on BUFFER_TOO_SMALL too.
            let mut small = core::mem::MaybeUninit::<batv_verdict>::zeroed();
            let sp = small.as_mut_ptr();
            let first = call_once(buf_len, null_buf, &|b, n, o| {
                batv_policy_check(pp, ring, sender.as_ptr(), recipient.as_ptr(), now, sp, b, n, o)
            });
            assert_eq!(first.code, BATV_RESULT_BUFFER_TOO_SMALL as u32);
            let s = small.assume_init_ref();
            assert_eq!((s.accepted, s.monitored, s.reason as u32), (c.accepted, c.monitored, c.reason as u32));
            assert_eq!(c_text(s.reason_word), Some(v.reason.as_str()));
        }
        batv_policy_free(p);
    }
}
