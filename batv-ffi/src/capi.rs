//! The C API of libbatv (`include/batv.h`): keyring and policy handles, sign, verify, strip and
//! the bounce check, over `batv-core`.
//!
//! The `///` comments here are written for C programmers: cbindgen copies them into the header.
//! Every body runs inside [`ffi_boundary!`](crate::ffi_boundary), so a NULL pointer or a panic
//! becomes a result code and nothing unwinds into C.

// C names, as they appear in the header.
#![allow(non_camel_case_types)]

use core::ffi::c_char;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use batv_core::{
    AddressProblem, Keyring, KeyringError, KeyringErrorKind, Outcome, Policy, Reason, SignError,
    Signed, MAX_ADDRESS_LEN,
};
use core::ffi::CStr;

use crate::boundary::{batv_result, try_buf, try_disjoint, try_mut, try_ref, try_str, Span};
use crate::ffi_boundary;

use batv_result::*;

/// Pass as `now` to use the system clock (UTC seconds since 1970). Any other value is taken as
/// the current time in Unix seconds, for tests and replays.
pub const BATV_NOW: i64 = i64::MIN;

/// A buffer of this many octets (the terminating NUL included) always suffices for the output of
/// `batv_sign`, `batv_verify`, `batv_check_bounce` and `batv_policy_check`, and for
/// `batv_strip` of an address: an address is at most 254 octets (a longer input is not an
/// address, see docs/scheme.md), and every SMTP reply is shorter.
pub const BATV_ADDRESS_MAX: usize = 255;
const _: () = assert!(BATV_ADDRESS_MAX == MAX_ADDRESS_LEN + 1);

/// A good size for the `errbuf` of `batv_keyring_load_ex` and `batv_keyring_parse_ex`. Longer
/// messages (very long paths) are cut short; the message is always NUL-terminated.
pub const BATV_ERROR_MAX: usize = 1024;

/// A keyring: the keys that sign and verify, the tag lifetime and the clock skew allowed.
///
/// Opaque. Made by `batv_keyring_load` or `batv_keyring_parse`, released by
/// `batv_keyring_free`. It is immutable, so one keyring may be used by many threads at once
/// without locking. To change keys, load a new keyring and free the old one when no thread
/// uses it any more.
pub struct batv_keyring {
    keyring: Keyring,
}

/// A bounce policy: exempt recipients, which senders count as bounces, and monitor mode.
///
/// Opaque. Made by `batv_policy_new` (no exemptions, `mailer-daemon` as the only bounce local
/// part besides the null sender, monitor mode off), configured with `batv_policy_add_exempt`,
/// `batv_policy_set_bounce_local_parts` and `batv_policy_set_monitor`, released by
/// `batv_policy_free`. Once configured, many threads may call `batv_policy_check` on it at once;
/// configuring it while another thread uses it is a data race.
pub struct batv_policy {
    policy: Policy,
}

// The header promises that handles may be shared between threads.
const _: () = {
    const fn shareable<T: Send + Sync>() {}
    shareable::<batv_keyring>();
    shareable::<batv_policy>();
};

/// Why `batv_policy_check` (or `batv_check_bounce`) decided as it did.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum batv_reason {
    /// The recipient carries a valid tag; deliver to the original address.
    BATV_REASON_VALID = 0,
    /// The recipient is untagged but exempt.
    BATV_REASON_EXEMPT = 1,
    /// The recipient is untagged and the sender is not a bounce: ordinary mail.
    BATV_REASON_NOT_BOUNCE = 2,
    /// A bounce to an untagged recipient: the joe-job case.
    BATV_REASON_UNTAGGED = 3,
    /// The recipient's tag is malformed.
    BATV_REASON_MALFORMED = 4,
    /// The recipient's tag names a key that is not in the keyring.
    BATV_REASON_UNKNOWN_KEY = 5,
    /// The recipient's tag does not verify: forged.
    BATV_REASON_BAD_SIGNATURE = 6,
    /// The recipient's tag has expired.
    BATV_REASON_EXPIRED = 7,
}

/// The details of one bounce-policy decision, filled in by `batv_policy_check`.
///
/// The strings are static: never free them; they stay valid for the life of the process.
#[repr(C)]
pub struct batv_verdict {
    /// true to accept the recipient, false to reject it. Always true in monitor mode.
    pub accepted: bool,
    /// true when monitor mode accepted a recipient that would otherwise have been rejected.
    pub monitored: bool,
    /// Why. In monitor mode, the reason it would have been rejected.
    pub reason: batv_reason,
    /// The reason as a word for logs: `valid`, `exempt`, `not-bounce`, `untagged`,
    /// `malformed`, `unknown-key`, `bad-signature` or `expired`.
    pub reason_word: *const c_char,
    /// For a reject, the SMTP reply to send (`550 5.7.1 ...`, no CRLF); NULL when accepted.
    pub smtp_reply: *const c_char,
}

/// A static message for a result code, for logs: for example `"bad signature: the tag was not
/// made with this keyring (forged)"`. Never NULL, never freed; an unknown code gives
/// `"unknown batv_result code"`.
#[no_mangle]
pub extern "C" fn batv_strerror(result: batv_result_value) -> *const c_char {
    crate::boundary::guard(c"internal error".as_ptr(), || message(result).as_ptr())
}

/// The library version, for example `"0.1.0"`. Static; never free it.
#[no_mangle]
pub extern "C" fn batv_version() -> *const c_char {
    concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast()
}

/// A `batv_result` as it crosses the ABI into libbatv: C may pass any `uint32_t`, so functions
/// that take a result code take this and treat unknown values as such (a Rust enum must never
/// hold an undefined value). The header spells it `batv_result`.
pub type batv_result_value = u32;

fn message(code: batv_result_value) -> &'static CStr {
    match batv_result::from_u32(code) {
        Some(r) => known_message(r),
        None => c"unknown batv_result code",
    }
}

/// A `&'static CStr` of a constant string, made at compile time: the core's words and messages
/// reach C without a copy of their text and without lazy set-up.
macro_rules! c_text {
    ($s:expr) => {{
        const S: &str = $s;
        const N: usize = S.len() + 1;
        const BYTES: [u8; N] = {
            let mut b = [0u8; N];
            let mut i = 0;
            while i < S.len() {
                b[i] = S.as_bytes()[i];
                i += 1;
            }
            b
        };
        const C: &CStr = match CStr::from_bytes_with_nul(&BYTES) {
            Ok(c) => c,
            Err(_) => panic!("a message holds a NUL"),
        };
        C
    }};
}

fn known_message(r: batv_result) -> &'static CStr {
    match r {
        BATV_RESULT_OK => c"ok",
        BATV_RESULT_UNTAGGED => c_text!(Outcome::Untagged.message()),
        BATV_RESULT_MALFORMED => c_text!(Outcome::Malformed.message()),
        BATV_RESULT_UNKNOWN_KEY => c_text!(Outcome::UnknownKey.message()),
        BATV_RESULT_BAD_SIGNATURE => c_text!(Outcome::BadSignature.message()),
        BATV_RESULT_EXPIRED => c_text!(Outcome::Expired.message()),
        BATV_RESULT_NULL_ARGUMENT => c"a required pointer argument is NULL",
        BATV_RESULT_BUFFER_TOO_SMALL => {
            c"the output buffer is too small: *out_len holds the length needed without the NUL"
        }
        BATV_RESULT_NOT_AN_ADDRESS => c"not an address that can be signed: send the mail untagged",
        BATV_RESULT_TOO_LONG => c"too long: the address, or its signed form, would not fit an SMTP path",
        BATV_RESULT_NOT_UTF8 => c"a string argument is not valid UTF-8",
        BATV_RESULT_BAD_PATTERN => c"bad policy pattern: the exemption or bounce local part cannot be used",
        BATV_RESULT_BUFFER_OVERLAP => {
            c"the output buffer overlaps an input string or another output: nothing was written"
        }
        BATV_RESULT_KEYRING_IO => c"keyring: the file cannot be read",
        BATV_RESULT_KEYRING_INSECURE => {
            c"keyring: other users could read or write the file, by its mode, owner or ACL (the _ex message names the fix)"
        }
        BATV_RESULT_KEYRING_INVALID => c"keyring: the text is not a valid keyring (the _ex message names the line)",
        BATV_RESULT_PANIC => c"internal error in libbatv (a bug): tempfail and report it",
    }
}

/// Loads a keyring file (docs/scheme.md, "Keyring file").
///
/// `path` is a NUL-terminated file name (any bytes but NUL). On success `*keyring_out` is a new
/// keyring that the caller owns and releases with `batv_keyring_free`; on failure it is set to
/// NULL. The file is refused when other users could read or write it, by its mode, its owner
/// or its ACL (`BATV_RESULT_KEYRING_INSECURE`), and when it is not a regular file (a FIFO,
/// socket or device: `BATV_RESULT_KEYRING_IO`, at once, never waiting for a writer).
///
/// Returns `BATV_RESULT_OK`, `BATV_RESULT_NULL_ARGUMENT`, `BATV_RESULT_KEYRING_IO`,
/// `BATV_RESULT_KEYRING_INSECURE` or `BATV_RESULT_KEYRING_INVALID`. Use
/// `batv_keyring_load_ex` to get the message naming the file and line.
///
/// # Safety
/// `path` is NULL or a NUL-terminated string; `keyring_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn batv_keyring_load(
    path: *const c_char,
    keyring_out: *mut *mut batv_keyring,
) -> batv_result {
    // SAFETY: forwarded under the same contract; no error buffer.
    unsafe { batv_keyring_load_ex(path, keyring_out, core::ptr::null_mut(), 0) }
}

/// `batv_keyring_load`, and on failure a message for the administrator in `errbuf`.
///
/// The message names the file, the line and what is wrong, for example
/// `keyring /etc/batv.keys line 4: unknown scheme: a word of 8 characters with punctuation
/// (expected hmac-sha256 or hmac-sha1)`; it never contains a secret. `errbuf` may be NULL (no message wanted); otherwise
/// it receives `errbuf_len - 1` octets at most and a NUL (`BATV_ERROR_MAX` is a good size; a
/// longer message is cut at a character boundary). On success it receives the empty string.
/// For errors that are not about the keyring (NULL argument, panic) it receives the
/// `batv_strerror` text.
///
/// # Safety
/// As `batv_keyring_load`; `errbuf` is NULL or points to `errbuf_len` writable octets.
#[no_mangle]
pub unsafe extern "C" fn batv_keyring_load_ex(
    path: *const c_char,
    keyring_out: *mut *mut batv_keyring,
    errbuf: *mut c_char,
    errbuf_len: usize,
) -> batv_result {
    // SAFETY: the caller's contract covers every pointer.
    unsafe {
        with_errbuf(errbuf, errbuf_len, |err| {
            ffi_boundary! {
                let out = try_mut(keyring_out)?;
                *out = core::ptr::null_mut();
                if path.is_null() {
                    return Err(BATV_RESULT_NULL_ARGUMENT);
                }
                let path = Path::new(OsStr::from_bytes(core::ffi::CStr::from_ptr(path).to_bytes()));
                *out = new_keyring(Keyring::load(path), err)?;
                BATV_RESULT_OK
            }
        })
    }
}

/// Parses keyring text (docs/scheme.md, "Keyring file"): `text_len` octets at `text`, which need not be
/// NUL-terminated. No permission check is made (that belongs to files).
///
/// On success `*keyring_out` is a new keyring that the caller owns and releases with
/// `batv_keyring_free`; on failure it is set to NULL. The text is not kept: the caller may
/// overwrite it (it holds secrets) as soon as this returns.
///
/// Returns `BATV_RESULT_OK`, `BATV_RESULT_NULL_ARGUMENT` or `BATV_RESULT_KEYRING_INVALID` (also
/// for text that is not UTF-8). Use `batv_keyring_parse_ex` for the message with the line.
///
/// # Safety
/// `text` is NULL or points to `text_len` readable octets; `keyring_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn batv_keyring_parse(
    text: *const c_char,
    text_len: usize,
    keyring_out: *mut *mut batv_keyring,
) -> batv_result {
    // SAFETY: forwarded under the same contract; no error buffer.
    unsafe { batv_keyring_parse_ex(text, text_len, keyring_out, core::ptr::null_mut(), 0) }
}

/// `batv_keyring_parse`, and on failure a message naming the line in `errbuf`, under the rules of
/// `batv_keyring_load_ex`.
///
/// # Safety
/// As `batv_keyring_parse`; `errbuf` is NULL or points to `errbuf_len` writable octets.
#[no_mangle]
pub unsafe extern "C" fn batv_keyring_parse_ex(
    text: *const c_char,
    text_len: usize,
    keyring_out: *mut *mut batv_keyring,
    errbuf: *mut c_char,
    errbuf_len: usize,
) -> batv_result {
    // SAFETY: the caller's contract covers every pointer.
    unsafe {
        with_errbuf(errbuf, errbuf_len, |err| {
            ffi_boundary! {
                let out = try_mut(keyring_out)?;
                *out = core::ptr::null_mut();
                if text.is_null() {
                    return Err(BATV_RESULT_NULL_ARGUMENT);
                }
                let bytes = core::slice::from_raw_parts(text.cast::<u8>(), text_len);
                let parsed = match core::str::from_utf8(bytes) {
                    Ok(t) => Keyring::parse(t),
                    Err(e) => Err(KeyringError {
                        path: None,
                        line: Some(line_of_offset(bytes, e.valid_up_to())),
                        kind: KeyringErrorKind::NotUtf8,
                    }),
                };
                *out = new_keyring(parsed, err)?;
                BATV_RESULT_OK
            }
        })
    }
}

/// Releases a keyring. NULL is allowed and does nothing. The keyring's secrets are wiped from
/// memory. No thread may use the keyring after (or while) it is freed.
///
/// # Safety
/// `keyring` is NULL or a keyring from `batv_keyring_load`/`batv_keyring_parse`, not yet freed.
#[no_mangle]
pub unsafe extern "C" fn batv_keyring_free(keyring: *mut batv_keyring) {
    // SAFETY: the caller's contract; keyrings are made by Box::into_raw in new_keyring.
    unsafe { release(keyring) }
}

/// Signs an envelope sender (docs/scheme.md, "Signing") as of `now` (`BATV_NOW` for the system
/// clock).
///
/// `address` is the envelope sender without the angle brackets of SMTP: `user@example.com`,
/// not `<user@example.com>`.
///
/// On `BATV_RESULT_OK`, `buf` holds the address to use as `MAIL FROM`, NUL-terminated, and
/// `*out_len` its length without the NUL. That is the signed address, or the address itself,
/// unchanged, for the null sender (`""`, `"<>"` or `"\"<>\""`) and for an address that is
/// already tagged.
/// A quoted local part keeps the tag inside the quotes (`"john doe"@example.com` signs as
/// `"prvs=...=john doe"@example.com`). Signing is deterministic for an address, key and day,
/// and never allocates memory.
///
/// Errors, for which the message is sent with the address untagged:
/// `BATV_RESULT_NOT_AN_ADDRESS` (no `@`, an empty local part or domain, a control character, a
/// `<` or `>` such as angle brackets around the address, whitespace outside a quoted local
/// part, or a `prvs=` tag that is not one), `BATV_RESULT_TOO_LONG` (the address, or its signed
/// form, would exceed 254 octets) and `BATV_RESULT_NOT_UTF8`. `BATV_RESULT_BUFFER_TOO_SMALL`,
/// `BATV_RESULT_NULL_ARGUMENT`, `BATV_RESULT_PANIC` as everywhere.
///
/// Buffer protocol (the same for every function with `buf, buf_len, out_len`): `out_len` must
/// not be NULL. On OK, `*out_len` is the string length (`strlen(buf)`). On
/// `BATV_RESULT_BUFFER_TOO_SMALL`, `*out_len` is the length needed *without* the NUL, so call
/// again with a buffer of at least `*out_len + 1` octets; `buf` is then the empty string (when
/// `buf_len > 0`). `buf` may be NULL only when `buf_len` is 0, to ask for the length. On any
/// other result, `*out_len` is 0 and `buf` is the empty string, except for
/// `BATV_RESULT_NULL_ARGUMENT` and `BATV_RESULT_BUFFER_OVERLAP`, which write nothing. `buf` and
/// `*out_len` must not overlap an input string or each other (so `buf` cannot be the input
/// address): such a call returns `BATV_RESULT_BUFFER_OVERLAP`. A buffer of
/// `BATV_ADDRESS_MAX` octets always suffices.
///
/// # Safety
/// `keyring` is NULL or a live keyring; `address` is NULL or NUL-terminated; `buf` is NULL or
/// `buf_len` writable octets; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn batv_sign(
    keyring: *const batv_keyring,
    address: *const c_char,
    now: i64,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> batv_result {
    ffi_boundary! {
        // SAFETY: the caller's contract covers every pointer.
        let (keyring, (address, mut out)) =
            unsafe { (try_ref(keyring)?, address_and_output(address, buf, buf_len, out_len)?) };
        let room = out.room();
        match keyring.keyring.sign_into(address, resolve(now), room) {
            Ok(Signed::Written(n)) => out.written(n),
            Ok(Signed::Unchanged) => out.copy(address),
            Err(SignError::BufferTooSmall { needed }) => out.too_small(needed),
            Err(SignError::Address(p)) => out.fail(match p {
                AddressProblem::TooLong { .. } | AddressProblem::TooLongToSign { .. } => {
                    BATV_RESULT_TOO_LONG
                }
                AddressProblem::NotUtf8 => BATV_RESULT_NOT_UTF8,
                _ => BATV_RESULT_NOT_AN_ADDRESS,
            }),
        }
    }
}

/// Verifies a tagged address (docs/scheme.md, "Outcomes") as of `now` (`BATV_NOW` for the
/// system clock).
///
/// Returns `BATV_RESULT_OK` when the tag is valid, with the original (untagged) address in
/// `buf`; otherwise the outcome: `BATV_RESULT_UNTAGGED`, `BATV_RESULT_MALFORMED` (also for what
/// is not an address: over 254 octets, not UTF-8, a control character, angle brackets,
/// unquoted whitespace), `BATV_RESULT_UNKNOWN_KEY`, `BATV_RESULT_BAD_SIGNATURE` or
/// `BATV_RESULT_EXPIRED`, with the empty string in `buf`. An outcome is reported even when the
/// buffer is too small; `BATV_RESULT_BUFFER_TOO_SMALL` only comes with a valid tag. Never
/// allocates memory. Buffer protocol and other errors: see `batv_sign`.
///
/// # Safety
/// As `batv_sign`.
#[no_mangle]
pub unsafe extern "C" fn batv_verify(
    keyring: *const batv_keyring,
    address: *const c_char,
    now: i64,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> batv_result {
    ffi_boundary! {
        // SAFETY: the caller's contract covers every pointer.
        let (keyring, (address, mut out)) =
            unsafe { (try_ref(keyring)?, address_and_output(address, buf, buf_len, out_len)?) };
        match keyring.keyring.verify_at(address, resolve(now)) {
            Ok(original) => match original.copy_to(out.room()) {
                Ok(n) => out.written(n),
                Err(needed) => out.too_small(needed),
            },
            Err(e) => out.fail(outcome_result(e.outcome())),
        }
    }
}

/// The address without its tags, unverified (for allow-lists and logs): the tags of both wire
/// forms, nested ones too, and the shapes other implementations write (docs/scheme.md,
/// "Strip"). Anything else comes back as it is. Needs no keyring.
///
/// Returns `BATV_RESULT_OK`. The output is never longer than the input, so a buffer one octet
/// longer than the input always suffices. Buffer protocol and other errors: see `batv_sign`.
///
/// # Safety
/// `address` is NULL or NUL-terminated; `buf` is NULL or `buf_len` writable octets; `out_len`
/// is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn batv_strip(
    address: *const c_char,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> batv_result {
    ffi_boundary! {
        // SAFETY: the caller's contract covers every pointer.
        let (address, mut out) = unsafe { address_and_output(address, buf, buf_len, out_len) }?;
        out.copy(&batv_core::strip(address))
    }
}

/// Decides one recipient of one SMTP transaction with the default bounce policy
/// (docs/scheme.md, "Bounce policy"): no exemptions, the null sender and `mailer-daemon@`
/// senders are bounces, no monitor mode. Use a `batv_policy` and `batv_policy_check` for exemptions or monitor mode.
///
/// `sender` is the envelope sender (`MAIL FROM`), `""` or `"<>"` for the null sender;
/// `recipient` is the envelope recipient (`RCPT TO`) without angle brackets.
///
/// - `BATV_RESULT_OK`: accept. `buf` holds the address to deliver to: the original address
///   when the recipient carries a valid tag, else the recipient itself.
/// - `BATV_RESULT_UNTAGGED` (a bounce to an untagged address), `BATV_RESULT_MALFORMED` (a bad
///   tag, or a recipient that is not an address, whatever the sender),
///   `BATV_RESULT_UNKNOWN_KEY`, `BATV_RESULT_BAD_SIGNATURE`, `BATV_RESULT_EXPIRED`: reject.
///   `buf` holds the SMTP reply to send, for example
///   `550 5.7.1 Bounce rejected: invalid BATV signature` (no CRLF).
///   A tagged recipient is checked whatever the sender: a tag that does not verify is rejected
///   even on ordinary mail.
/// - `BATV_RESULT_BUFFER_TOO_SMALL`: nothing was decided for you; call again with
///   `BATV_ADDRESS_MAX` octets. Other errors (`NULL_ARGUMENT`, `PANIC`) mean no decision
///   either: tempfail (451) rather than reject.
///
/// Buffer protocol: see `batv_sign`.
///
/// # Safety
/// `keyring` is NULL or a live keyring; `sender` and `recipient` are NULL or NUL-terminated;
/// `buf` is NULL or `buf_len` writable octets; `out_len` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn batv_check_bounce(
    keyring: *const batv_keyring,
    sender: *const c_char,
    recipient: *const c_char,
    now: i64,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> batv_result {
    // A constant: no set-up, no lock, nothing shared but read-only memory.
    static DEFAULT: batv_policy = batv_policy { policy: Policy::DEFAULT };
    // SAFETY: forwarded under the same contract; the policy is static.
    unsafe {
        batv_policy_check(
            &DEFAULT,
            keyring,
            sender,
            recipient,
            now,
            core::ptr::null_mut(),
            buf,
            buf_len,
            out_len,
        )
    }
}

/// Makes a bounce policy with the defaults: no exemptions, the null sender and `mailer-daemon`
/// senders are bounces, monitor mode off. The caller owns `*policy_out` and releases it with
/// `batv_policy_free`.
///
/// Returns `BATV_RESULT_OK` or `BATV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `policy_out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn batv_policy_new(policy_out: *mut *mut batv_policy) -> batv_result {
    ffi_boundary! {
        // SAFETY: the caller's contract.
        let out = unsafe { try_mut(policy_out) }?;
        *out = Box::into_raw(Box::new(batv_policy { policy: Policy::DEFAULT }));
        BATV_RESULT_OK
    }
}

/// Adds an exemption: untagged bounces to matching recipients are accepted. `pattern` is
/// `user@domain` (one address), `@domain` (a whole domain) or `user@` (a local part in every
/// domain), compared ASCII case-insensitively. Patterns are literal: there are no wildcards.
/// Use it for VERP list returns, DMARC report addresses and systems whose mail does not pass
/// this signer. Adding and checking stay fast with tens of thousands of exemptions: they are
/// kept in an ordered set, not scanned one by one.
///
/// Returns `BATV_RESULT_OK`, `BATV_RESULT_BAD_PATTERN` (the policy is unchanged: not one of
/// the three forms, a control character, a `*` such as `*@lists.example.com` (write
/// `@lists.example.com`) or `bounces@*` (write `bounces@`), or longer than 254 octets),
/// `BATV_RESULT_NULL_ARGUMENT` or `BATV_RESULT_NOT_UTF8`.
///
/// # Safety
/// `policy` is NULL or a live policy that no other thread uses meanwhile; `pattern` is NULL or
/// NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn batv_policy_add_exempt(
    policy: *mut batv_policy,
    pattern: *const c_char,
) -> batv_result {
    ffi_boundary! {
        // SAFETY: the caller's contract.
        let (policy, pattern) = unsafe { (try_mut(policy)?, try_str(pattern)?) };
        policy.policy.add_exempt(pattern).map_err(|_| BATV_RESULT_BAD_PATTERN)?;
        BATV_RESULT_OK
    }
}

/// Replaces the local parts whose senders count as bounces (besides the null sender, which
/// always does): `count` NUL-terminated strings at `local_parts`, compared ASCII
/// case-insensitively at any domain. The default is `mailer-daemon`. `count` 0 (with
/// `local_parts` NULL or not) leaves only the null sender. The strings are copied.
///
/// Returns `BATV_RESULT_OK`, `BATV_RESULT_BAD_PATTERN` (one is empty or contains `@`; the policy
/// is unchanged), `BATV_RESULT_NULL_ARGUMENT` (also for a NULL element) or
/// `BATV_RESULT_NOT_UTF8`.
///
/// # Safety
/// `policy` is NULL or a live policy that no other thread uses meanwhile; `local_parts` is NULL
/// or points to `count` pointers, each NULL or NUL-terminated.
#[no_mangle]
pub unsafe extern "C" fn batv_policy_set_bounce_local_parts(
    policy: *mut batv_policy,
    local_parts: *const *const c_char,
    count: usize,
) -> batv_result {
    ffi_boundary! {
        // SAFETY: the caller's contract.
        let policy = unsafe { try_mut(policy) }?;
        let pointers: &[*const c_char] = if count == 0 {
            &[]
        } else if local_parts.is_null() {
            return Err(BATV_RESULT_NULL_ARGUMENT);
        } else {
            // SAFETY: non-NULL and `count` readable pointers by the caller's contract.
            unsafe { core::slice::from_raw_parts(local_parts, count) }
        };
        let mut parts = Vec::with_capacity(count);
        for &p in pointers {
            // SAFETY: each element is NULL or NUL-terminated by the caller's contract.
            parts.push(unsafe { try_str(p) }?);
        }
        policy.policy.set_bounce_local_parts(parts).map_err(|_| BATV_RESULT_BAD_PATTERN)?;
        BATV_RESULT_OK
    }
}

/// Turns monitor mode on (`true`) or off: in monitor mode every reject becomes an accept, and
/// the verdict keeps the reason (`monitored` is true), for a trial period.
///
/// Returns `BATV_RESULT_OK` or `BATV_RESULT_NULL_ARGUMENT`.
///
/// # Safety
/// `policy` is NULL or a live policy that no other thread uses meanwhile.
#[no_mangle]
pub unsafe extern "C" fn batv_policy_set_monitor(
    policy: *mut batv_policy,
    on: bool,
) -> batv_result {
    ffi_boundary! {
        // SAFETY: the caller's contract.
        let policy = unsafe { try_mut(policy) }?;
        policy.policy.set_monitor(on);
        BATV_RESULT_OK
    }
}

/// Releases a policy. NULL is allowed and does nothing.
///
/// # Safety
/// `policy` is NULL or a policy from `batv_policy_new`, not yet freed, that no thread uses.
#[no_mangle]
pub unsafe extern "C" fn batv_policy_free(policy: *mut batv_policy) {
    // SAFETY: the caller's contract; policies are made by Box::into_raw in batv_policy_new.
    unsafe { release(policy) }
}

/// Drops a handle made by `Box::into_raw`; NULL does nothing. Inside the boundary, because
/// dropping runs code (the keyring wipes its secrets).
///
/// # Safety
/// `handle` is NULL or came from `Box::into_raw` and has not been released.
unsafe fn release<T>(handle: *mut T) {
    crate::boundary::guard((), || {
        if !handle.is_null() {
            // SAFETY: the caller's contract.
            drop(unsafe { Box::from_raw(handle) });
        }
    })
}

/// Decides one recipient of one SMTP transaction with `policy` (docs/scheme.md, "Bounce
/// policy"), as of `now` (`BATV_NOW` for the system clock).
///
/// Results and `buf` as for `batv_check_bounce`: `BATV_RESULT_OK` to accept (the address to
/// deliver to in `buf`), a verification outcome code to reject (the SMTP reply in `buf`). In
/// monitor mode every decision is `BATV_RESULT_OK`; `verdict_out->monitored` tells which would
/// have been rejected, and `buf` holds the recipient with its tag stripped (the empty string for
/// a recipient that is not an address).
///
/// `verdict_out` may be NULL. Otherwise it is filled in whenever a decision was made: on OK, on
/// a reject, and also on `BATV_RESULT_BUFFER_TOO_SMALL`. Like `buf` and `*out_len`, it must not
/// overlap `sender`, `recipient` or another output (`BATV_RESULT_BUFFER_OVERLAP`).
///
/// # Safety
/// `policy` is NULL or a live policy; `verdict_out` is NULL or writable; the other arguments as
/// for `batv_check_bounce`.
#[no_mangle]
pub unsafe extern "C" fn batv_policy_check(
    policy: *const batv_policy,
    keyring: *const batv_keyring,
    sender: *const c_char,
    recipient: *const c_char,
    now: i64,
    verdict_out: *mut batv_verdict,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> batv_result {
    ffi_boundary! {
        // SAFETY: the caller's contract covers every pointer; the strings are non-NULL when
        // read, and `verdict_out` is made a reference only after Output::new found it clear of
        // them and of the buffer.
        let (policy, keyring, sender, recipient, mut out, verdict_out) = unsafe {
            let (sender, recipient) = (present(sender)?, present(recipient)?);
            let (sender, recipient) = (octets(sender), octets(recipient));
            (
                try_ref(policy)?,
                try_ref(keyring)?,
                sender,
                recipient,
                Output::new(buf, buf_len, out_len, &[sender, recipient], Span::of(verdict_out))?,
                verdict_out.as_mut(),
            )
        };
        let v = policy.policy.check(&keyring.keyring, sender, recipient, resolve(now));
        if let Some(slot) = verdict_out {
            *slot = batv_verdict {
                accepted: v.accepted,
                monitored: v.monitored,
                reason: reason_code(v.reason),
                reason_word: reason_word(v.reason),
                smtp_reply: if v.accepted { core::ptr::null() } else { smtp_reply(v.reason) },
            };
        }
        let (code, text) = if v.accepted {
            (BATV_RESULT_OK, v.deliver_to.as_deref().unwrap_or_default())
        } else {
            (reject_result(v.reason), v.smtp_reply.unwrap_or_default())
        };
        match out.copy(text.as_bytes()) {
            BATV_RESULT_OK => code,
            other => other,
        }
    }
}

/// The caller's `buf, buf_len, out_len` triple, enforcing the buffer protocol of `batv_sign`.
struct Output<'a> {
    buf: &'a mut [u8],
    out_len: &'a mut usize,
}

impl<'a> Output<'a> {
    /// Checks the pointers, and that `buf`, `*out_len` and the call's `other_output` overlap
    /// neither the `inputs` (the octets of the call's strings, at most two, each followed by
    /// its NUL) nor each other, and starts from "nothing written": `*out_len` 0 and `buf`
    /// empty. Allocates nothing.
    ///
    /// # Safety
    /// `buf` is NULL or `buf_len` writable octets; `out_len` is NULL or writable; both as long
    /// as `'a`.
    unsafe fn new(
        buf: *mut c_char,
        buf_len: usize,
        out_len: *mut usize,
        inputs: &[&[u8]],
        other_output: Span,
    ) -> Result<Output<'a>, batv_result> {
        let mut spans = [Span::EMPTY; 2];
        for (span, s) in spans.iter_mut().zip(inputs) {
            *span = Span::c_string_octets(s);
        }
        let outputs = [Span::octets(buf, buf_len), Span::of(out_len), other_output];
        try_disjoint(&spans, &outputs)?;
        // SAFETY: forwarded caller contract; neither overlaps an input (checked above).
        let (out_len, buf) = unsafe { (try_mut(out_len)?, try_buf(buf, buf_len)?) };
        *out_len = 0;
        if let Some(first) = buf.first_mut() {
            *first = 0;
        }
        Ok(Output { buf, out_len })
    }

    /// The octets a string may use: all but the one kept for the NUL.
    fn room(&mut self) -> &mut [u8] {
        let n = self.buf.len().saturating_sub(1);
        &mut self.buf[..n]
    }

    /// `n` octets were written into `room()`: terminate them.
    fn written(&mut self, n: usize) -> batv_result {
        self.buf[n] = 0;
        *self.out_len = n;
        BATV_RESULT_OK
    }

    fn copy(&mut self, s: &[u8]) -> batv_result {
        // `s` and its NUL must fit: with `buf_len` 0 not even "" does.
        if s.len() >= self.buf.len() {
            return self.too_small(s.len());
        }
        self.buf[..s.len()].copy_from_slice(s);
        self.written(s.len())
    }

    fn too_small(&mut self, needed: usize) -> batv_result {
        if let Some(first) = self.buf.first_mut() {
            *first = 0;
        }
        *self.out_len = needed;
        BATV_RESULT_BUFFER_TOO_SMALL
    }

    fn fail(&mut self, code: batv_result) -> batv_result {
        if let Some(first) = self.buf.first_mut() {
            *first = 0;
        }
        *self.out_len = 0;
        code
    }
}

/// The start of every call that reads one address and answers in `buf`, in the order the buffer
/// protocol needs: the NULL checks first (`address`, then `out_len` and `buf`), so that
/// NULL_ARGUMENT writes nothing; then `buf` and `*out_len` are set to "nothing written". The caller checks its own handle
/// (the keyring) before this.
///
/// # Safety
/// `address` is NULL or NUL-terminated and outlives `'a`; `buf` is NULL or `buf_len` writable
/// octets; `out_len` is NULL or writable; all three as long as `'a`.
unsafe fn address_and_output<'a>(
    address: *const c_char,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> Result<(&'a [u8], Output<'a>), batv_result> {
    // SAFETY: non-NULL (checked first) and NUL-terminated by the caller's contract.
    let address = unsafe { octets(present(address)?) };
    // SAFETY: forwarded caller contract.
    let out = unsafe { Output::new(buf, buf_len, out_len, &[address], Span::EMPTY) }?;
    Ok((address, out))
}

/// The octets of a NUL-terminated string, without the NUL: the core admits them.
///
/// # Safety
/// `ptr` is non-NULL and NUL-terminated, and lives for `'a`.
unsafe fn octets<'a>(ptr: *const c_char) -> &'a [u8] {
    // SAFETY: the caller's contract.
    unsafe { CStr::from_ptr(ptr) }.to_bytes()
}

/// A string argument checked for NULL only, before anything is written (NULL_ARGUMENT does
/// nothing else).
fn present(ptr: *const c_char) -> Result<*const c_char, batv_result> {
    if ptr.is_null() {
        Err(BATV_RESULT_NULL_ARGUMENT)
    } else {
        Ok(ptr)
    }
}

fn resolve(now: i64) -> i64 {
    if now == BATV_NOW {
        batv_core::unix_now()
    } else {
        now
    }
}

fn outcome_result(o: Outcome) -> batv_result {
    match o {
        Outcome::Valid => BATV_RESULT_OK,
        Outcome::Untagged => BATV_RESULT_UNTAGGED,
        Outcome::Malformed => BATV_RESULT_MALFORMED,
        Outcome::UnknownKey => BATV_RESULT_UNKNOWN_KEY,
        Outcome::BadSignature => BATV_RESULT_BAD_SIGNATURE,
        Outcome::Expired => BATV_RESULT_EXPIRED,
    }
}

/// The result code of a rejecting reason (the accepting ones never reach here).
fn reject_result(r: Reason) -> batv_result {
    match r {
        Reason::Untagged => BATV_RESULT_UNTAGGED,
        Reason::Malformed => BATV_RESULT_MALFORMED,
        Reason::UnknownKey => BATV_RESULT_UNKNOWN_KEY,
        Reason::BadSignature => BATV_RESULT_BAD_SIGNATURE,
        Reason::Expired => BATV_RESULT_EXPIRED,
        Reason::Valid | Reason::Exempt | Reason::NotBounce => BATV_RESULT_OK,
    }
}

fn reason_code(r: Reason) -> batv_reason {
    use batv_reason::*;
    match r {
        Reason::Valid => BATV_REASON_VALID,
        Reason::Exempt => BATV_REASON_EXEMPT,
        Reason::NotBounce => BATV_REASON_NOT_BOUNCE,
        Reason::Untagged => BATV_REASON_UNTAGGED,
        Reason::Malformed => BATV_REASON_MALFORMED,
        Reason::UnknownKey => BATV_REASON_UNKNOWN_KEY,
        Reason::BadSignature => BATV_REASON_BAD_SIGNATURE,
        Reason::Expired => BATV_REASON_EXPIRED,
    }
}

/// The core's outcome word, for C and for Exim.
pub(crate) fn outcome_word(o: Outcome) -> &'static CStr {
    match o {
        Outcome::Valid => c_text!(Outcome::Valid.as_str()),
        Outcome::Untagged => c_text!(Outcome::Untagged.as_str()),
        Outcome::Malformed => c_text!(Outcome::Malformed.as_str()),
        Outcome::UnknownKey => c_text!(Outcome::UnknownKey.as_str()),
        Outcome::BadSignature => c_text!(Outcome::BadSignature.as_str()),
        Outcome::Expired => c_text!(Outcome::Expired.as_str()),
    }
}

fn reason_word(r: Reason) -> *const c_char {
    let word: &'static CStr = match r {
        Reason::Valid => c_text!(Reason::Valid.as_str()),
        Reason::Exempt => c_text!(Reason::Exempt.as_str()),
        Reason::NotBounce => c_text!(Reason::NotBounce.as_str()),
        Reason::Untagged => c_text!(Reason::Untagged.as_str()),
        Reason::Malformed => c_text!(Reason::Malformed.as_str()),
        Reason::UnknownKey => c_text!(Reason::UnknownKey.as_str()),
        Reason::BadSignature => c_text!(Reason::BadSignature.as_str()),
        Reason::Expired => c_text!(Reason::Expired.as_str()),
    };
    word.as_ptr()
}

/// The core's SMTP reply for a rejecting reason; NULL for the others.
fn smtp_reply(r: Reason) -> *const c_char {
    /// The reply of a reason that has one (checked at compile time).
    macro_rules! reply {
        ($r:expr) => {
            c_text!(match $r.smtp_reply() {
                Some(reply) => reply,
                None => panic!("this reason has no reply"),
            })
            .as_ptr()
        };
    }
    match r {
        Reason::Valid | Reason::Exempt | Reason::NotBounce => core::ptr::null(),
        Reason::Untagged => reply!(Reason::Untagged),
        Reason::Malformed => reply!(Reason::Malformed),
        Reason::UnknownKey => reply!(Reason::UnknownKey),
        Reason::BadSignature => reply!(Reason::BadSignature),
        Reason::Expired => reply!(Reason::Expired),
    }
}

/// Boxes a loaded keyring for C, or maps the error to its code and message.
fn new_keyring(
    loaded: Result<Keyring, KeyringError>,
    err: &mut ErrorText,
) -> Result<*mut batv_keyring, batv_result> {
    match loaded {
        Ok(keyring) => Ok(Box::into_raw(Box::new(batv_keyring { keyring }))),
        Err(e) => {
            err.message = Some(e.to_string());
            Err(keyring_result(&e.kind))
        }
    }
}

fn keyring_result(kind: &KeyringErrorKind) -> batv_result {
    use KeyringErrorKind::*;
    match kind {
        Io(_) | NotAFile | NoRandomness | ChangedWhileRead => BATV_RESULT_KEYRING_IO,
        InsecurePermissions { .. } | ForeignOwner { .. } | AclGrant(_) => BATV_RESULT_KEYRING_INSECURE,
        // Syntax errors and unusable contents (no key, no sign-key): the administrator edits
        // the file in both cases, so one code serves; the message says which.
        _ => BATV_RESULT_KEYRING_INVALID,
    }
}

/// The 1-based line holding octet `offset`.
fn line_of_offset(bytes: &[u8], offset: usize) -> usize {
    bytes[..offset].iter().filter(|&&b| b == b'\n').count() + 1
}

/// The message a keyring call leaves for its `errbuf`.
#[derive(Default)]
struct ErrorText {
    message: Option<String>,
}

/// Runs a keyring call and writes its message into the caller's optional `errbuf`: the keyring
/// error, the `batv_strerror` text for other failures, the empty string on success.
///
/// # Safety
/// `errbuf` is NULL or points to `errbuf_len` writable octets.
unsafe fn with_errbuf(
    errbuf: *mut c_char,
    errbuf_len: usize,
    call: impl FnOnce(&mut ErrorText) -> batv_result,
) -> batv_result {
    let mut err = ErrorText::default();
    let code = call(&mut err);
    crate::boundary::guard((), || {
        // SAFETY: the caller's contract; NULL means no message is wanted.
        let Ok(buf) = (unsafe { try_buf(errbuf, errbuf_len) }) else {
            return;
        };
        let Some(last) = buf.len().checked_sub(1) else {
            return;
        };
        let text: &str = match (&err.message, code) {
            (_, BATV_RESULT_OK) => "",
            (Some(m), _) => m,
            (None, c) => message(c as u32).to_str().unwrap_or_default(),
        };
        let mut n = text.len().min(last);
        while !text.is_char_boundary(n) {
            n -= 1;
        }
        buf[..n].copy_from_slice(&text.as_bytes()[..n]);
        buf[n] = 0;
    });
    code
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_reason_gets_its_own_word_and_reply_from_the_core() {
        for (i, r) in Reason::ALL.into_iter().enumerate() {
            assert_eq!(reason_code(r) as usize, i, "batv_reason is in the core's order");
            // SAFETY: reason_word returns a static NUL-terminated string.
            let word = unsafe { core::ffi::CStr::from_ptr(reason_word(r)) };
            assert_eq!(word.to_str().ok(), Some(r.as_str()));
            let reply = smtp_reply(r);
            match r.smtp_reply() {
                None => assert!(reply.is_null(), "{r}"),
                Some(s) => {
                    // SAFETY: non-NULL replies are static NUL-terminated strings.
                    let c = unsafe { core::ffi::CStr::from_ptr(reply) };
                    assert_eq!(c.to_str().ok(), Some(s));
                    assert!(
                        s.len() < BATV_ADDRESS_MAX,
                        "reply fits BATV_ADDRESS_MAX: {s}"
                    );
                }
            }
        }
    }

    #[test]
    fn each_outcome_gets_its_own_word_and_message() {
        for o in Outcome::ALL {
            assert_eq!(outcome_word(o).to_str().ok(), Some(o.as_str()));
            if o != Outcome::Valid {
                assert_eq!(message(outcome_result(o) as u32).to_str().ok(), Some(o.message()));
            }
        }
    }

    #[test]
    fn every_code_has_its_own_message() {
        let mut seen = std::collections::HashSet::new();
        for c in batv_result::ALL.map(|r| r as u32) {
            let m = message(c);
            assert_ne!(m, c"unknown batv_result code", "code {c}");
            assert!(seen.insert(m), "code {c} shares its message");
        }
        assert_eq!(message(6), c"unknown batv_result code");
        assert_eq!(message(u32::MAX), c"unknown batv_result code");
    }
}
