//! The functions Exim loads with `${dlfunc}` (SPEC sections 9 and 10): `batv_exim_sign`,
//! `batv_exim_verify`, `batv_exim_status` and `batv_exim_strip`.
//!
//! ```text
//! ${dlfunc{/usr/local/lib/libbatv.so}{batv_exim_sign}{$sender_address}{/etc/exim4/batv.keys}}
//! ```
//!
//! Exim's calling convention (`local_scan.h`, `expand.c`): `int fn(uschar **yield, int argc,
//! uschar *argv[])`, where `argc` counts the arguments after the library and function names and
//! `argv[argc]` is NULL. The return codes are OK, DEFER, FAIL, ERROR. On OK, Exim copies
//! `*yield` at once, so a thread-local buffer serves. On any other code Exim keeps `*yield` as
//! the error message, so that is always a string with a `'static` lifetime.
//!
//! What comes back:
//!
//! | function | OK yields | DEFER | ERROR |
//! | --- | --- | --- | --- |
//! | `batv_exim_sign{address}{keyring}` | the signed address; the address itself when it is the null sender, already tagged, or cannot be signed (unqualified, too long, angle brackets or unquoted whitespace, not UTF-8: sent untagged, SPEC section 5) | keyring unusable | wrong arguments |
//! | `batv_exim_verify{address}{keyring}` | the original address when the tag is valid, else the empty string | keyring unusable | wrong arguments |
//! | `batv_exim_status{address}{keyring}` | the outcome word of SPEC section 6 | keyring unusable | wrong arguments |
//! | `batv_exim_strip{address}` | the address without its tags (no verification: for delivery once the ACL has checked the tag, and for logs) | - | wrong arguments |
//!
//! A missing, unreadable, insecure or broken keyring is DEFER: in an ACL that is `451`, in a
//! router or transport the delivery is deferred, so mail waits until the administrator fixes
//! the file and nothing is rejected or lost. Exim logs DEFER and ERROR messages to `mainlog`
//! and `paniclog`. The keyring is cached per process and path
//! ([`batv_core::KeyringCache`]): the file is looked at no more than once a second and reloaded
//! when it changes.
//!
//! The clock is the system clock ([`batv_core::unix_now`], `clock_gettime`), so Exim run under
//! `faketime` signs and verifies at the faked time.

use crate::boundary::guard;
use batv_core::{KeyringCache, KeyringError, KeyringErrorKind, Keyring, Signed, SIGNED_MAX};
use core::ffi::{c_char, c_int, c_uchar, CStr};
use std::cell::RefCell;
use std::ffi::CString;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

/// Exim's `OK`: `*yield` holds the result.
pub const OK: c_int = 0;
/// Exim's `DEFER`: a temporary problem (the keyring); `*yield` is the message.
pub const DEFER: c_int = 1;
/// Exim's `FAIL` (not used: nothing here is a permanent failure of the expansion).
pub const FAIL: c_int = 2;
/// Exim's `ERROR`: the call itself is wrong (arguments); `*yield` is the message.
pub const ERROR: c_int = 3;

/// Keyrings by path for this process: Exim forks a process per connection and per delivery,
/// and each loads the file at most once, then checks it at most once a second.
fn keyrings() -> &'static KeyringCache {
    static CACHE: OnceLock<KeyringCache> = OnceLock::new();
    CACHE.get_or_init(KeyringCache::new)
}

/// One result buffer per thread: a signed or original address is at most 254 octets, plus NUL.
const RESULT_LEN: usize = SIGNED_MAX + 1;

thread_local! {
    static RESULT: RefCell<[u8; RESULT_LEN]> = const { RefCell::new([0; RESULT_LEN]) };
}

/// What a dlfunc body answers: OK with a string for `*yield`, or a code and a message.
enum Answer {
    /// OK with a NUL-terminated string that lives until Exim copies it: an argument of this
    /// call, a static string, or this thread's result buffer.
    Ok(*const c_char),
    /// DEFER or ERROR with a message.
    Failed(c_int, &'static CStr),
}

impl Answer {
    /// OK with a string that outlives the call's use of it (an argument, or static).
    fn borrowed(s: &CStr) -> Answer {
        Answer::Ok(s.as_ptr())
    }

    /// OK with these octets, copied into this thread's result buffer.
    fn copied(bytes: &[u8]) -> Answer {
        Answer::Ok(copy_to_result(bytes))
    }
}

/// The arguments of one call, checked.
struct Args<'a> {
    address: &'a CStr,
    /// `Some` for the functions that take a keyring (checked: absolute, not empty).
    keyring: Option<&'a Path>,
}

impl Args<'_> {
    /// The keyring named by the second argument, or the DEFER answer that names what is wrong
    /// with it.
    fn keyring(&self) -> Result<Arc<Keyring>, Answer> {
        let Some(path) = self.keyring else { return Err(Answer::Failed(ERROR, PANICKED)) };
        keyrings().get(path).map_err(|e| Answer::Failed(DEFER, keyring_message(&e)))
    }

    /// The address as UTF-8 text, if it is.
    fn address(&self) -> Option<&str> {
        self.address.to_str().ok()
    }
}

/// Message for a panic inside libbatv (a bug): the call tempfails in an ACL.
const PANICKED: &CStr = c"batv: internal error in libbatv (a bug; please report it)";

/// Runs one dlfunc: checks `yield_`, runs `body` inside the panic boundary, and writes the
/// answer to `*yield_`.
///
/// # Safety
/// `yield_` is NULL or writable; `argv` is NULL or holds `argc` pointers to NUL-terminated
/// strings that live for the call (Exim's contract).
unsafe fn run(
    yield_: *mut *mut c_uchar,
    argc: c_int,
    argv: *const *const c_uchar,
    wants_keyring: bool,
    usage: &'static CStr,
    body: fn(&Args<'_>) -> Answer,
) -> c_int {
    if yield_.is_null() {
        return ERROR;
    }
    // Set before the body runs, so that a panic leaves Exim a message to log.
    // SAFETY: checked non-NULL above; Exim passes a writable pointer.
    unsafe { *yield_ = PANICKED.as_ptr().cast_mut().cast() };
    guard(
        ERROR,
        || {
            // SAFETY: Exim's contract, passed on by our caller.
            let answer = match unsafe { read_args(argc, argv, wants_keyring) } {
                Ok(args) => body(&args),
                Err(None) => Answer::Failed(ERROR, usage),
                Err(Some(msg)) => Answer::Failed(ERROR, msg),
            };
            let (code, ptr) = match answer {
                Answer::Ok(ptr) => (OK, ptr),
                Answer::Failed(code, msg) => (code, msg.as_ptr()),
            };
            // SAFETY: checked non-NULL; the string lives until Exim copies it (OK) or forever.
            unsafe { *yield_ = ptr.cast_mut().cast() };
            code
        },
    )
}

/// The arguments as strings: `Err(None)` for the wrong number, `Err(Some(msg))` for a bad one.
///
/// # Safety
/// As for [`run`].
unsafe fn read_args<'a>(
    argc: c_int,
    argv: *const *const c_uchar,
    wants_keyring: bool,
) -> Result<Args<'a>, Option<&'static CStr>> {
    let expected = if wants_keyring { 2 } else { 1 };
    if argv.is_null() || argc != expected {
        return Err(None);
    }
    let arg = |i: usize| -> Result<&'a CStr, Option<&'static CStr>> {
        // SAFETY: i < argc, and Exim's argv holds argc valid pointers.
        let p = unsafe { *argv.add(i) };
        if p.is_null() {
            return Err(None);
        }
        // SAFETY: non-NULL and NUL-terminated (Exim's expanded argument).
        Ok(unsafe { CStr::from_ptr(p.cast()) })
    };
    let address = arg(0)?;
    let keyring = if wants_keyring {
        let Some(path) = path_from_bytes(arg(1)?.to_bytes()) else {
            return Err(Some(c"batv: the keyring path (second argument) is not valid here"));
        };
        if path.as_os_str().is_empty() {
            return Err(Some(c"batv: the keyring path (second argument) is empty"));
        }
        if !path.is_absolute() {
            return Err(Some(c"batv: the keyring path (second argument) must be absolute"));
        }
        Some(path)
    } else {
        None
    };
    Ok(Args { address, keyring })
}

/// A path from Exim's octets: any octets on Unix, UTF-8 elsewhere.
#[cfg(unix)]
fn path_from_bytes(bytes: &[u8]) -> Option<&Path> {
    use std::os::unix::ffi::OsStrExt;
    Some(Path::new(std::ffi::OsStr::from_bytes(bytes)))
}

#[cfg(not(unix))]
fn path_from_bytes(bytes: &[u8]) -> Option<&Path> {
    std::str::from_utf8(bytes).ok().map(Path::new)
}

/// Copies `bytes` and a NUL into this thread's result buffer and returns a pointer to it. The
/// pointer stays valid until the next call on this thread; Exim copies the string before that.
fn copy_to_result(bytes: &[u8]) -> *const c_char {
    RESULT.with(|cell| {
        let mut buf = cell.borrow_mut();
        // Callers hand at most SIGNED_MAX octets; cut defensively rather than overrun.
        let n = bytes.len().min(RESULT_LEN - 1);
        buf[..n].copy_from_slice(&bytes[..n]);
        buf[n] = 0;
        buf.as_ptr().cast()
    })
}

/// A `'static` message naming the keyring problem: the core's one-line message (file, line,
/// what is wrong; never a secret), kept for the life of the process so Exim may hold on to it.
/// At most [`MAX_MESSAGES`] different messages are kept; after that a fixed message per kind of
/// problem is used.
fn keyring_message(e: &KeyringError) -> &'static CStr {
    static MESSAGES: Mutex<Vec<&'static CStr>> = Mutex::new(Vec::new());
    let Ok(text) = CString::new(format!("batv: {e}")) else { return fixed_message(&e.kind) };
    let mut kept = MESSAGES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(m) = kept.iter().find(|m| **m == text.as_c_str()) {
        return m;
    }
    if kept.len() >= MAX_MESSAGES {
        return fixed_message(&e.kind);
    }
    let m: &'static CStr = Box::leak(text.into_boxed_c_str());
    kept.push(m);
    m
}

/// Most distinct keyring messages kept per process (each is a few dozen octets).
const MAX_MESSAGES: usize = 64;

fn fixed_message(kind: &KeyringErrorKind) -> &'static CStr {
    match kind {
        KeyringErrorKind::Io(std::io::ErrorKind::NotFound) => c"batv: keyring file not found",
        KeyringErrorKind::Io(std::io::ErrorKind::PermissionDenied) => {
            c"batv: keyring file not readable by the Exim user (chgrp Debian-exim; chmod 640)"
        }
        KeyringErrorKind::Io(_) => c"batv: keyring file cannot be read",
        KeyringErrorKind::NotAFile => c"batv: keyring path is not a regular file",
        KeyringErrorKind::ChangedWhileRead => {
            c"batv: keyring file changed while it was read (replace it by rename)"
        }
        KeyringErrorKind::InsecurePermissions { .. } => {
            c"batv: keyring file is readable or writable by other users (chmod 640)"
        }
        _ => c"batv: keyring file is not a valid keyring (load it with the batv command to see the line)",
    }
}

/// Defines one `${dlfunc}` entry point: Exim's signature, the boundary of [`run`], a body.
macro_rules! dlfunc {
    ($(#[$doc:meta])* $name:ident($usage:literal, keyring: $keyring:literal) => $body:path) => {
        $(#[$doc])*
        ///
        /// # Safety
        /// Exim's dlfunc contract: `yield_` is writable, `argv` holds `argc` NUL-terminated
        /// strings that live for the call.
        #[no_mangle]
        pub unsafe extern "C" fn $name(
            yield_: *mut *mut c_uchar,
            argc: c_int,
            argv: *mut *mut c_uchar,
        ) -> c_int {
            // SAFETY: Exim's contract, passed on.
            unsafe { run(yield_, argc, argv.cast_const().cast(), $keyring, $usage, $body) }
        }
    };
}

dlfunc! {
    /// Signs an envelope sender: `${dlfunc{LIB}{batv_exim_sign}{$return_path}{KEYRING}}`.
    ///
    /// OK with the signed address; OK with the address unchanged for the null sender, a tagged
    /// address, or one that cannot be signed (unqualified, over 254 octets signed, not UTF-8),
    /// which then goes out untagged. The keyring is not needed (not even read) for the null
    /// sender or a tagged address. DEFER when the keyring is unusable, ERROR for wrong arguments.
    batv_exim_sign(c"batv_exim_sign takes 2 arguments: {address}{/path/to/keyring}", keyring: true)
        => sign
}

dlfunc! {
    /// Verifies a tagged address: `${dlfunc{LIB}{batv_exim_verify}{ADDRESS}{KEYRING}}`.
    ///
    /// OK with the original address when the tag is valid, OK with the empty string for every
    /// other outcome (untagged too). DEFER when the keyring is unusable, ERROR for wrong
    /// arguments.
    batv_exim_verify(c"batv_exim_verify takes 2 arguments: {address}{/path/to/keyring}", keyring: true)
        => verify
}

dlfunc! {
    /// The outcome word for an address: `${dlfunc{LIB}{batv_exim_status}{ADDRESS}{KEYRING}}`
    /// yields `valid`, `untagged`, `malformed`, `unknown-key`, `bad-signature` or `expired`.
    ///
    /// The keyring is always loaded, even for an untagged address, so that with a broken
    /// keyring every bounce check tempfails (DEFER) rather than rejecting. An address that is
    /// not UTF-8 is `malformed` when it starts with `prvs=`, else `untagged`.
    batv_exim_status(c"batv_exim_status takes 2 arguments: {address}{/path/to/keyring}", keyring: true)
        => status
}

dlfunc! {
    /// The address without its tags, unverified: `${dlfunc{LIB}{batv_exim_strip}{ADDRESS}}`.
    ///
    /// For delivery after the ACL has verified the tag, for monitor mode and for logs. Needs no
    /// keyring. An address that is not UTF-8 comes back unchanged.
    batv_exim_strip(c"batv_exim_strip takes 1 argument: {address}", keyring: false) => strip
}

fn sign(args: &Args<'_>) -> Answer {
    let unchanged = Answer::borrowed(args.address);
    let Some(address) = args.address() else { return unchanged };
    if address.is_empty() || batv_core::is_tagged(address) {
        return unchanged;
    }
    let ring = match args.keyring() {
        Ok(ring) => ring,
        Err(answer) => return answer,
    };
    let mut buf = [0u8; SIGNED_MAX];
    match ring.sign_into(address, batv_core::unix_now(), &mut buf) {
        Ok(Signed::Written(n)) => Answer::copied(&buf[..n]),
        Ok(Signed::Unchanged) => unchanged,
        // Unqualified or too long: SPEC section 5 sends it untagged.
        Err(batv_core::SignError::Address(_)) => unchanged,
        // SIGNED_MAX always suffices; this would be a bug.
        Err(batv_core::SignError::BufferTooSmall { .. }) => Answer::Failed(ERROR, PANICKED),
    }
}

fn verify(args: &Args<'_>) -> Answer {
    let ring = match args.keyring() {
        Ok(ring) => ring,
        Err(answer) => return answer,
    };
    let Some(address) = args.address() else { return Answer::borrowed(c"") };
    let Ok(original) = ring.verify_at(address, batv_core::unix_now()) else {
        return Answer::borrowed(c"");
    };
    let mut buf = [0u8; SIGNED_MAX];
    match original.copy_to(&mut buf) {
        Ok(n) => Answer::copied(&buf[..n]),
        // The original is shorter than the address, which is at most 254 octets.
        Err(_) => Answer::Failed(ERROR, PANICKED),
    }
}

fn status(args: &Args<'_>) -> Answer {
    let ring = match args.keyring() {
        Ok(ring) => ring,
        Err(answer) => return answer,
    };
    let outcome = match args.address() {
        Some(address) => ring.status_at(address, batv_core::unix_now()),
        None if starts_like_tag(args.address.to_bytes()) => batv_core::Outcome::Malformed,
        None => batv_core::Outcome::Untagged,
    };
    Answer::borrowed(outcome_word(outcome))
}

fn strip(args: &Args<'_>) -> Answer {
    let Some(address) = args.address() else { return Answer::borrowed(args.address) };
    match batv_core::strip(address) {
        std::borrow::Cow::Borrowed(s) if s.len() == address.len() => Answer::borrowed(args.address),
        stripped => Answer::copied(stripped.as_bytes()),
    }
}

fn starts_like_tag(address: &[u8]) -> bool {
    address.len() >= 5 && address[..5].eq_ignore_ascii_case(b"prvs=")
}

fn outcome_word(outcome: batv_core::Outcome) -> &'static CStr {
    use batv_core::Outcome::*;
    match outcome {
        Valid => c"valid",
        Untagged => c"untagged",
        Malformed => c"malformed",
        UnknownKey => c"unknown-key",
        BadSignature => c"bad-signature",
        Expired => c"expired",
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::PermissionsExt;
    use std::path::PathBuf;

    type DlFunc = unsafe extern "C" fn(*mut *mut c_uchar, c_int, *mut *mut c_uchar) -> c_int;

    /// Calls a dlfunc the way Exim's expand.c does: argv NULL-terminated, argc without it.
    fn call(f: DlFunc, args: &[&[u8]]) -> (c_int, Vec<u8>) {
        let owned: Vec<CString> = args.iter().map(|a| CString::new(*a).unwrap()).collect();
        let mut argv: Vec<*mut c_uchar> = owned.iter().map(|c| c.as_ptr() as *mut c_uchar).collect();
        argv.push(core::ptr::null_mut());
        let mut out: *mut c_uchar = core::ptr::null_mut();
        // SAFETY: argv holds args.len() valid C strings and a NULL, `out` is writable.
        let code = unsafe { f(&mut out, args.len() as c_int, argv.as_mut_ptr()) };
        assert!(!out.is_null(), "every answer sets *yield");
        // SAFETY: the functions always leave a NUL-terminated string in *yield.
        let text = unsafe { CStr::from_ptr(out.cast()) }.to_bytes().to_vec();
        (code, text)
    }

    struct Keys(PathBuf);
    impl Drop for Keys {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(self.0.parent().unwrap());
        }
    }

    fn keys(name: &str, text: &str, mode: u32) -> Keys {
        let dir = std::env::temp_dir().join(format!("batv-exim-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("batv.keys");
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        Keys(path)
    }

    fn path_arg(k: &Keys) -> Vec<u8> {
        k.0.as_os_str().as_bytes().to_vec()
    }

    const SHA1: &str = "key 1 hmac-sha1 text:secret\n";

    #[test]
    fn sign_verify_status_round_trip() {
        let k = keys("round", SHA1, 0o600);
        let p = path_arg(&k);
        let (code, signed) = call(batv_exim_sign, &[b"user@example.com", &p]);
        assert_eq!(code, OK);
        let signed_str = String::from_utf8(signed.clone()).unwrap();
        let ring = Keyring::parse(SHA1).unwrap();
        assert_eq!(ring.sign("user@example.com").unwrap(), signed_str);
        assert_eq!(call(batv_exim_verify, &[&signed, &p]), (OK, b"user@example.com".to_vec()));
        assert_eq!(call(batv_exim_status, &[&signed, &p]), (OK, b"valid".to_vec()));
        assert_eq!(call(batv_exim_strip, &[&signed]), (OK, b"user@example.com".to_vec()));
        // Upper-case hex (Exim's ${prvscheck} refuses it) is valid here.
        let upper = signed_str.replacen(&signed_str[10..16], &signed_str[10..16].to_uppercase(), 1);
        assert_eq!(call(batv_exim_status, &[upper.as_bytes(), &p]).1, b"valid");
        let forged = format!("prvs=1{}000000=user@example.com", &signed_str[6..9]);
        assert_eq!(call(batv_exim_status, &[forged.as_bytes(), &p]).1, b"bad-signature");
        assert_eq!(call(batv_exim_verify, &[forged.as_bytes(), &p]), (OK, Vec::new()));
        assert_eq!(call(batv_exim_status, &[b"user@example.com", &p]).1, b"untagged");
        assert_eq!(call(batv_exim_status, &[b"prvs=x@example.com", &p]).1, b"malformed");
        assert_eq!(call(batv_exim_status, &[b"prvs=9123abcdef=u@example.com", &p]).1, b"unknown-key");
    }

    #[test]
    fn sign_leaves_null_tagged_and_unsignable_addresses_alone() {
        let k = keys("unchanged", SHA1, 0o600);
        let p = path_arg(&k);
        for a in [&b""[..], b"prvs=1790c1c5ba=user@example.com", b"unqualified", b"a@", b"\xff@example.com"] {
            assert_eq!(call(batv_exim_sign, &[a, &p]), (OK, a.to_vec()), "{a:?}");
        }
        let long = format!("{}@example.com", "a".repeat(240));
        assert_eq!(call(batv_exim_sign, &[long.as_bytes(), &p]), (OK, long.into_bytes()));
        // The null sender and tagged addresses need no keyring at all.
        assert_eq!(call(batv_exim_sign, &[b"", b"/nonexistent/batv.keys"]), (OK, Vec::new()));
    }

    #[test]
    fn a_missing_or_broken_keyring_defers_with_a_message_naming_it() {
        let (code, msg) = call(batv_exim_status, &[b"", b"/nonexistent/batv.keys"]);
        assert_eq!(code, DEFER);
        let msg = String::from_utf8(msg).unwrap();
        assert!(msg.starts_with("batv: keyring /nonexistent/batv.keys: cannot read"), "{msg}");
        let (code, _) = call(batv_exim_sign, &[b"u@example.com", b"/nonexistent/batv.keys"]);
        assert_eq!(code, DEFER);
        let (code, _) = call(batv_exim_verify, &[b"prvs=1790c1c5ba=u@example.com", b"/nonexistent/batv.keys"]);
        assert_eq!(code, DEFER);

        let k = keys("broken", "key 1 hmac-sha1 text:secret\nsign-key 7\n", 0o600);
        let (code, msg) = call(batv_exim_status, &[b"u@example.com", &path_arg(&k)]);
        assert_eq!(code, DEFER);
        let msg = String::from_utf8(msg).unwrap();
        assert!(msg.contains("line 2") && !msg.contains("secret"), "{msg}");

        let k = keys("insecure", SHA1, 0o644);
        let (code, msg) = call(batv_exim_sign, &[b"u@example.com", &path_arg(&k)]);
        assert_eq!(code, DEFER);
        assert!(String::from_utf8(msg).unwrap().contains("chmod"));
    }

    #[test]
    fn wrong_arguments_are_errors() {
        let k = keys("args", SHA1, 0o600);
        let p = path_arg(&k);
        let (code, msg) = call(batv_exim_sign, &[b"u@example.com"]);
        assert_eq!(code, ERROR);
        assert!(String::from_utf8(msg).unwrap().contains("takes 2 arguments"));
        assert_eq!(call(batv_exim_verify, &[b"u@example.com", &p, b"x"]).0, ERROR);
        assert_eq!(call(batv_exim_status, &[]).0, ERROR);
        assert_eq!(call(batv_exim_strip, &[b"a", b"b"]).0, ERROR);
        let (code, msg) = call(batv_exim_status, &[b"u@example.com", b"batv.keys"]);
        assert_eq!(code, ERROR);
        assert!(String::from_utf8(msg).unwrap().contains("absolute"));
        assert_eq!(call(batv_exim_status, &[b"u@example.com", b""]).0, ERROR);
        // A NULL yield pointer cannot carry a message, but must not crash.
        // SAFETY: a NULL yield and NULL argv are refused before any dereference.
        assert_eq!(unsafe { batv_exim_status(core::ptr::null_mut(), 0, core::ptr::null_mut()) }, ERROR);
    }

    #[test]
    fn strip_needs_no_keyring() {
        assert_eq!(call(batv_exim_strip, &[b"user@example.com"]), (OK, b"user@example.com".to_vec()));
        assert_eq!(
            call(batv_exim_strip, &[b"prvs=0790e9e584=prvs=1790c1c5ba=u@example.com"]),
            (OK, b"u@example.com".to_vec())
        );
        assert_eq!(call(batv_exim_strip, &[b"\"prvs=0790e9e584=john doe\"@example.com"]).1, b"\"john doe\"@example.com");
    }
}
