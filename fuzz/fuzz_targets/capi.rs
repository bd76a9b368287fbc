//! The C entry points of libbatv (`include/batv.h`) with arbitrary bytes, arbitrary buffer
//! sizes and NULL pointers, called exactly as C calls them.
//!
//! Input: byte 0 picks the function and which pointers are NULL; bytes 1-2 the buffer length
//! (mod 300); bytes 3-10 `now`; the rest is split at NUL bytes into the string arguments (C
//! strings cannot hold a NUL), which need not be UTF-8.
//!
//! Invariants: no call panics (that would be `BATV_RESULT_PANIC`) and every result is a code of
//! the header; the buffer protocol holds (on OK `*out_len` <= buf_len - 1 and `buf` is a
//! NUL-terminated string of that length; on BUFFER_TOO_SMALL `*out_len` is the length needed,
//! and a buffer of `*out_len + 1` then gets the same answer; otherwise `buf` is empty); nothing
//! is written past `buf_len` (AddressSanitizer watches the exact-size buffer); a NULL required
//! pointer gives NULL_ARGUMENT and invalid UTF-8 gives NOT_UTF8; and every answer equals
//! batv-core's for the same input. Keyring parsing writes a NUL-terminated message that shows
//! no secret; `batv_strerror` gives a static message for any `uint32_t`.
#![no_main]

use batv::boundary::batv_result;
use batv::capi::*;
use batv_core::{AddressProblem, Outcome, Policy, Reason, SignError};
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
    code: batv_result,
    out_len: usize,
    text: Vec<u8>,
}

/// Calls `f(buf, buf_len, out_len)` with an exact-size heap buffer (ASan sees any overrun),
/// checks the buffer protocol, and for BUFFER_TOO_SMALL calls again with the size it asked for.
fn call(buf_len: usize, null_buf: bool, f: &dyn Fn(*mut c_char, usize, *mut usize) -> batv_result) -> Answer {
    let a = call_once(buf_len, null_buf, f);
    if a.code == BATV_RESULT_BUFFER_TOO_SMALL {
        assert!(a.out_len + 1 > buf_len, "too small, yet {} + 1 <= {buf_len}", a.out_len);
        let again = call_once(a.out_len + 1, false, f);
        assert_ne!(again.code, BATV_RESULT_BUFFER_TOO_SMALL, "the size asked for did not suffice");
        assert_eq!(again.out_len, a.out_len, "the size asked for is not the size used");
        return again;
    }
    a
}

fn call_once(buf_len: usize, null_buf: bool, f: &dyn Fn(*mut c_char, usize, *mut usize) -> batv_result) -> Answer {
    let mut buf = vec![0xAAu8; buf_len];
    let mut out_len = usize::MAX;
    let ptr = if null_buf && buf_len == 0 { core::ptr::null_mut() } else { buf.as_mut_ptr().cast() };
    let code = f(ptr, buf_len, &mut out_len);
    assert!(batv_result::from_u32(code as u32).is_some());
    assert_ne!(code, BATV_RESULT_PANIC, "libbatv panicked");
    if code == BATV_RESULT_NULL_ARGUMENT {
        // "a NULL one makes the call return BATV_RESULT_NULL_ARGUMENT and do nothing else"
        assert!(buf.iter().all(|&b| b == 0xAA) && out_len == usize::MAX, "NULL_ARGUMENT wrote");
        return Answer { code, out_len: 0, text: Vec::new() };
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
            assert!(buf_len >= 1 && out_len <= buf_len - 1, "OK with out_len {out_len}, buf_len {buf_len}");
            assert_eq!(text.len(), out_len, "*out_len is not strlen(buf)");
        }
        BATV_RESULT_BUFFER_TOO_SMALL => assert!(text.is_empty()),
        // check_bounce's rejects carry the SMTP reply; every other failure leaves buf empty.
        _ if !text.is_empty() => {
            assert!(text.starts_with(b"550 5.7.1 "), "{code:?} left {text:?} in buf");
            assert_eq!(text.len(), out_len);
        }
        _ => assert_eq!(out_len, 0, "{code:?} with *out_len {out_len}"),
    }
    Answer { code, out_len, text }
}

fn outcome_code(o: Outcome) -> batv_result {
    match o {
        Outcome::Valid => BATV_RESULT_OK,
        Outcome::Untagged => BATV_RESULT_UNTAGGED,
        Outcome::Malformed => BATV_RESULT_MALFORMED,
        Outcome::UnknownKey => BATV_RESULT_UNKNOWN_KEY,
        Outcome::BadSignature => BATV_RESULT_BAD_SIGNATURE,
        Outcome::Expired => BATV_RESULT_EXPIRED,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&op, rest)) = data.split_first() else { return };
    let buf_len = usize::from(u16::from_le_bytes([
        rest.first().copied().unwrap_or(0),
        rest.get(1).copied().unwrap_or(1),
    ])) % 300;
    let mut now = read_i64(rest.get(2..).unwrap_or(&[]));
    if now == BATV_NOW {
        now = NOW; // the system clock would make the answer unpredictable
    }
    let strings: Vec<&[u8]> = rest.get(10..).unwrap_or(&[]).split(|&b| b == 0).collect();
    let arg = |i: usize| CString::new(strings.get(i).copied().unwrap_or(b"")).expect("split at NUL");
    let (a0, a1) = (arg(0), arg(1));
    let null_buf = op & 0x80 != 0;
    let null_arg = op & 0x40 != 0;
    let ring = keyring_handle().0;
    let rust = keyring();

    match op & 0x07 {
        0 => {
            // batv_sign
            let addr = if null_arg { core::ptr::null() } else { a0.as_ptr() };
            let a = call(buf_len, null_buf, &|b, n, o| unsafe { batv_sign(ring, addr, now, b, n, o) });
            let want = match (null_arg, a0.to_str()) {
                (true, _) => Err(BATV_RESULT_NULL_ARGUMENT),
                (false, Err(_)) => Err(BATV_RESULT_NOT_UTF8),
                (false, Ok(s)) => match rust.sign_at(s, now) {
                    Ok(signed) => Ok(signed.into_owned()),
                    Err(SignError::Address(p)) => Err(match p {
                        AddressProblem::TooLong { .. } => BATV_RESULT_TOO_LONG,
                        // Listed one by one: a new problem must be given its code here.
                        AddressProblem::NoAt
                        | AddressProblem::EmptyLocalPart
                        | AddressProblem::EmptyDomain
                        | AddressProblem::ControlCharacter
                        | AddressProblem::AngleBrackets
                        | AddressProblem::Whitespace => BATV_RESULT_NOT_AN_ADDRESS,
                    }),
                    Err(e @ SignError::BufferTooSmall { .. }) => panic!("sign_at({s:?}) = {e:?}"),
                },
            };
            check(&a, want);
        }
        1 => {
            // batv_verify
            let addr = if null_arg { core::ptr::null() } else { a0.as_ptr() };
            let a = call(buf_len, null_buf, &|b, n, o| unsafe { batv_verify(ring, addr, now, b, n, o) });
            let want = match (null_arg, a0.to_str()) {
                (true, _) => Err(BATV_RESULT_NULL_ARGUMENT),
                (false, Err(_)) => Err(BATV_RESULT_NOT_UTF8),
                (false, Ok(s)) => rust.verify_at(s, now).map(String::from).map_err(|e| outcome_code(e.outcome())),
            };
            check(&a, want);
        }
        2 => {
            // batv_strip
            let addr = if null_arg { core::ptr::null() } else { a0.as_ptr() };
            let a = call(buf_len, null_buf, &|b, n, o| unsafe { batv_strip(addr, b, n, o) });
            let want = match (null_arg, a0.to_str()) {
                (true, _) => Err(BATV_RESULT_NULL_ARGUMENT),
                (false, Err(_)) => Err(BATV_RESULT_NOT_UTF8),
                (false, Ok(s)) if s.len() > 254 => Err(BATV_RESULT_TOO_LONG),
                (false, Ok(s)) => Ok(batv_core::strip(s).into_owned()),
            };
            if let Ok(s) = &want {
                assert!(!batv_core::is_tagged(s));
            }
            check(&a, want);
        }
        3 => {
            // batv_check_bounce
            let (s, r) = (a0.as_ptr(), if null_arg { core::ptr::null() } else { a1.as_ptr() });
            let a = call(buf_len, null_buf, &|b, n, o| unsafe { batv_check_bounce(ring, s, r, now, b, n, o) });
            let want = match (null_arg, a0.to_str(), a1.to_str()) {
                (true, _, _) => Err(BATV_RESULT_NULL_ARGUMENT),
                (false, Err(_), _) | (false, _, Err(_)) => Err(BATV_RESULT_NOT_UTF8),
                (false, Ok(_), Ok(r)) if r.len() > 254 => Err(BATV_RESULT_TOO_LONG),
                (false, Ok(s), Ok(r)) => {
                    let v = Policy::new().check(rust, s, r, now);
                    if v.accepted {
                        Ok(v.deliver_to.unwrap_or_default())
                    } else {
                        let code = match v.reason {
                            Reason::Untagged => BATV_RESULT_UNTAGGED,
                            Reason::Malformed => BATV_RESULT_MALFORMED,
                            Reason::UnknownKey => BATV_RESULT_UNKNOWN_KEY,
                            Reason::BadSignature => BATV_RESULT_BAD_SIGNATURE,
                            Reason::Expired => BATV_RESULT_EXPIRED,
                            other => panic!("a reject for {other:?}"),
                        };
                        assert_eq!(a.text, v.smtp_reply.unwrap_or_default().as_bytes());
                        Err(code)
                    }
                }
            };
            if null_arg && a0.to_str().is_err() {
                // A NULL recipient and a sender that is not UTF-8: either error will do.
                assert!(matches!(a.code, BATV_RESULT_NULL_ARGUMENT | BATV_RESULT_NOT_UTF8));
            } else if a.code != BATV_RESULT_OK && (1..=5).contains(&(a.code as u32)) {
                assert_eq!(Err(a.code), want);
            } else {
                check(&a, want);
            }
        }
        4 => {
            // batv_keyring_parse_ex with arbitrary text and error buffer size.
            let text = rest.get(10..).unwrap_or(&[]);
            let errbuf_len = buf_len;
            let mut errbuf = vec![0xAAu8; errbuf_len];
            let mut k: *mut batv_keyring = 0x1 as *mut _; // must be overwritten
            let ebuf = if null_buf && errbuf_len == 0 { core::ptr::null_mut() } else { errbuf.as_mut_ptr().cast() };
            let tptr = if null_arg { core::ptr::null() } else { text.as_ptr().cast::<c_char>() };
            let code = unsafe { batv_keyring_parse_ex(tptr, text.len(), &mut k, ebuf, errbuf_len) };
            assert_ne!(code, BATV_RESULT_PANIC);
            let msg = if errbuf_len > 0 {
                let nul = errbuf.iter().position(|&b| b == 0).expect("errbuf is NUL-terminated");
                String::from_utf8(errbuf[..nul].to_vec()).expect("the message is UTF-8 (cut at a character boundary)")
            } else {
                String::new()
            };
            let want_ok = !null_arg && std::str::from_utf8(text).is_ok_and(|t| batv_core::Keyring::parse(t).is_ok());
            if code == BATV_RESULT_OK {
                assert!(want_ok && !k.is_null() && msg.is_empty());
                unsafe { batv_keyring_free(k) };
            } else {
                assert!(!want_ok && k.is_null(), "{code:?}");
                if null_arg {
                    assert_eq!(code, BATV_RESULT_NULL_ARGUMENT);
                } else {
                    assert_eq!(code, BATV_RESULT_KEYRING_INVALID);
                }
                for prefix in ["base64:", "hex:", "text:"] {
                    for (i, _) in msg.match_indices(prefix) {
                        let next = msg[i + prefix.len()..].chars().next();
                        assert!(matches!(next, None | Some(' ' | ',')), "the message shows a secret: {msg:?}");
                    }
                }
            }
        }
        5 => {
            // batv_strerror on any value, and the version string.
            let code = u32::from_le_bytes([op, rest.first().copied().unwrap_or(0), rest.get(1).copied().unwrap_or(0), rest.get(2).copied().unwrap_or(0)]);
            for c in [code, code & 0x3ff] {
                let p = batv_strerror(c);
                assert!(!p.is_null());
                let s = unsafe { CStr::from_ptr(p) }.to_str().expect("UTF-8 message");
                assert!(!s.is_empty() && s.len() < 200);
                assert_eq!(p, batv_strerror(c), "the message is static");
            }
            assert!(!batv_version().is_null());
        }
        6 => {
            // NULL keyring, NULL out_len, NULL buf with a length, NULL sender: NULL_ARGUMENT,
            // or NOT_UTF8 when another string argument is not UTF-8 (which check comes first
            // is not specified).
            let mut out_len = 7usize;
            let mut buf = [0xAAu8; 8];
            let bad0 = a0.to_str().is_err();
            let bad1 = a1.to_str().is_err();
            let fine = |r: batv_result, bad: bool| {
                r == BATV_RESULT_NULL_ARGUMENT || (bad && r == BATV_RESULT_NOT_UTF8)
            };
            unsafe {
                let r = batv_sign(core::ptr::null(), a0.as_ptr(), now, buf.as_mut_ptr().cast(), 8, &mut out_len);
                assert!(fine(r, bad0), "{r:?}");
                let r = batv_verify(ring, a0.as_ptr(), now, buf.as_mut_ptr().cast(), 8, core::ptr::null_mut());
                assert!(fine(r, bad0), "{r:?}");
                let r = batv_strip(a0.as_ptr(), core::ptr::null_mut(), 5, &mut out_len);
                assert!(fine(r, bad0), "{r:?}");
                let r = batv_check_bounce(ring, core::ptr::null(), a1.as_ptr(), now, buf.as_mut_ptr().cast(), 8, &mut out_len);
                assert!(fine(r, bad1), "{r:?}");
            }
        }
        _ => {
            // A policy with the input's exemption and bounce local part, then a check.
            let mut p: *mut batv_policy = core::ptr::null_mut();
            unsafe {
                assert_eq!(batv_policy_new(&mut p), BATV_RESULT_OK);
                let ex = batv_policy_add_exempt(p, a0.as_ptr());
                let parts = [a1.as_ptr()];
                let bl = batv_policy_set_bounce_local_parts(p, parts.as_ptr(), 1);
                let want_ex = match a0.to_str() {
                    Err(_) => BATV_RESULT_NOT_UTF8,
                    Ok(s) if batv_core::Exemption::parse(s).is_ok() => BATV_RESULT_OK,
                    Ok(_) => BATV_RESULT_BAD_PATTERN,
                };
                assert_eq!(ex, want_ex);
                let want_bl = match a1.to_str() {
                    Err(_) => BATV_RESULT_NOT_UTF8,
                    Ok(s) if Policy::new().bounce_local_parts([s]).is_ok() => BATV_RESULT_OK,
                    Ok(_) => BATV_RESULT_BAD_PATTERN,
                };
                assert_eq!(bl, want_bl);
                assert_eq!(batv_policy_set_monitor(p, op & 0x08 != 0), BATV_RESULT_OK);
                let r = arg(2);
                let verdict = core::mem::MaybeUninit::<batv_verdict>::zeroed();
                let pp = p;
                let a = call(buf_len, null_buf, &|b, n, o| {
                    batv_policy_check(pp, ring, a0.as_ptr(), r.as_ptr(), now, verdict.as_ptr().cast_mut(), b, n, o)
                });
                if a.code == BATV_RESULT_OK || (1..=5).contains(&(a.code as u32)) {
                    let v = verdict.assume_init_ref();
                    assert_eq!(v.accepted, a.code == BATV_RESULT_OK);
                    assert!(!v.reason_word.is_null());
                    assert_eq!(v.smtp_reply.is_null(), v.accepted);
                }
                batv_policy_free(p);
            }
        }
    }
});

/// The C answer equals the Rust one: OK with the same string, or the same error code.
fn check(a: &Answer, want: Result<String, batv_result>) {
    match want {
        Ok(s) => {
            assert_eq!(a.code, BATV_RESULT_OK, "want {s:?}");
            assert_eq!(a.text, s.as_bytes());
        }
        Err(code) => assert_eq!(a.code, code),
    }
}
