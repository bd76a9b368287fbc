//! The functions Exim loads with `${dlfunc}` (docs/exim.md): `batv_exim_sign`,
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
//! | `batv_exim_sign{address}{keyring}` | the signed address; the address itself when it is the null sender, already tagged, or cannot be signed (docs/scheme.md, "Signing"): Exim sends it untagged | keyring unusable | wrong arguments |
//! | `batv_exim_verify{address}{keyring}` | the original address when the tag is valid, else the empty string | keyring unusable | wrong arguments |
//! | `batv_exim_status{address}{keyring}` | the outcome word of docs/scheme.md | keyring unusable | wrong arguments |
//! | `batv_exim_check{sender}{recipient}{keyring}{exempt}{bounce local parts}{monitor}` | the bounce verdict: `accept REASON`, `reject REASON REPLY` or `monitor REASON REPLY` | keyring unusable, or a bad setting | wrong arguments |
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
use batv_core::{Admission, Keyring, KeyringCache, KeyringError, Policy, Signed, SIGNED_MAX};
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
#[derive(Clone, Copy)]
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

/// Most arguments a function here takes (Exim 4.96 crashes on a `${dlfunc}` with 8).
const MAX_ARGS: usize = 6;

/// The arguments of one call: NUL-terminated strings that live for the call.
struct Args<'a> {
    all: [&'a CStr; MAX_ARGS],
    count: usize,
}

impl<'a> Args<'a> {
    /// Argument `i` (0-based); the empty string when it was not given.
    fn get(&self, i: usize) -> &'a CStr {
        if i < self.count {
            self.all[i]
        } else {
            c""
        }
    }

    /// The keyring named by argument `i` as of `now` (the clock read once per call serves
    /// the keyring's check and the tag's day): ERROR when the path is unusable as one, DEFER
    /// (with the core's message) when the keyring is.
    fn keyring(&self, i: usize, now: i64) -> Result<Arc<Keyring>, Answer> {
        let Some(path) = path_from_bytes(self.get(i).to_bytes()) else {
            return Err(Answer::Failed(ERROR, c"batv: the keyring path is not valid here"));
        };
        if !path.is_absolute() {
            return Err(Answer::Failed(ERROR, c"batv: the keyring path must be absolute (and not empty)"));
        }
        keyrings().get_at(path, now).map_err(|e| Answer::Failed(DEFER, keyring_message(&e)))
    }
}

/// Message for a panic inside libbatv (a bug): the call tempfails in an ACL.
const PANICKED: &CStr = c"batv: internal error in libbatv (a bug; please report it)";

/// Runs one dlfunc: checks `yield_` and the number of arguments, runs `body` inside the panic
/// boundary, and writes the answer to `*yield_`.
///
/// # Safety
/// `yield_` is NULL or writable; `argv` is NULL or holds `argc` pointers to NUL-terminated
/// strings that live for the call (Exim's contract).
unsafe fn run(
    yield_: *mut *mut c_uchar,
    argc: c_int,
    argv: *const *const c_uchar,
    counts: core::ops::RangeInclusive<usize>,
    usage: &'static CStr,
    body: fn(&Args<'_>) -> Answer,
) -> c_int {
    if yield_.is_null() {
        return ERROR;
    }
    // Set before the body runs, so that a panic leaves Exim a message to log.
    // SAFETY: checked non-NULL above; Exim passes a writable pointer.
    unsafe { *yield_ = PANICKED.as_ptr().cast_mut().cast() };
    guard(ERROR, || {
        // SAFETY: Exim's contract, passed on by our caller.
        let answer = match unsafe { read_args(argc, argv, counts) } {
            Some(args) => body(&args),
            None => Answer::Failed(ERROR, usage),
        };
        let (code, ptr) = match answer {
            Answer::Ok(ptr) => (OK, ptr),
            Answer::Failed(code, msg) => (code, msg.as_ptr()),
        };
        // SAFETY: checked non-NULL; the string lives until Exim copies it (OK) or forever.
        unsafe { *yield_ = ptr.cast_mut().cast() };
        code
    })
}

/// The arguments, or `None` when there are not `counts` of them.
///
/// # Safety
/// As for [`run`].
unsafe fn read_args<'a>(
    argc: c_int,
    argv: *const *const c_uchar,
    counts: core::ops::RangeInclusive<usize>,
) -> Option<Args<'a>> {
    let count = usize::try_from(argc).ok().filter(|n| counts.contains(n) && *n <= MAX_ARGS)?;
    if argv.is_null() {
        return None;
    }
    let mut args = Args { all: [c""; MAX_ARGS], count };
    for (i, slot) in args.all.iter_mut().take(count).enumerate() {
        // SAFETY: i < argc, and Exim's argv holds argc valid pointers.
        let p = unsafe { *argv.add(i) };
        if p.is_null() {
            return None;
        }
        // SAFETY: non-NULL and NUL-terminated (Exim's expanded argument).
        *slot = unsafe { CStr::from_ptr(p.cast()) };
    }
    Some(args)
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
/// At most [`MAX_MESSAGES`] different messages are kept; past that, a fixed one.
fn keyring_message(e: &KeyringError) -> &'static CStr {
    kept_message(
        format!("batv: {e}"),
        c"batv: the keyring cannot be used (see the earlier batv messages in the log)",
    )
}

/// `text` as a `'static` message, kept for the life of the process (at most [`MAX_MESSAGES`]
/// different ones; past that, or for a text with a NUL, `too_many`).
fn kept_message(text: String, too_many: &'static CStr) -> &'static CStr {
    static MESSAGES: Mutex<Vec<&'static CStr>> = Mutex::new(Vec::new());
    let Ok(text) = CString::new(text) else { return too_many };
    let mut kept = MESSAGES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(m) = kept.iter().find(|m| **m == text.as_c_str()) {
        return m;
    }
    if kept.len() >= MAX_MESSAGES {
        return too_many;
    }
    let m: &'static CStr = Box::leak(text.into_boxed_c_str());
    kept.push(m);
    m
}

/// Most distinct messages kept per process (each is a few dozen octets).
const MAX_MESSAGES: usize = 64;

/// Defines one `${dlfunc}` entry point: Exim's signature, the boundary of [`run`], a body.
macro_rules! dlfunc {
    ($(#[$doc:meta])* $name:ident($usage:literal, args: $counts:expr) => $body:path) => {
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
            unsafe { run(yield_, argc, argv.cast_const().cast(), $counts, $usage, $body) }
        }
    };
}

dlfunc! {
    /// Signs an envelope sender: `${dlfunc{LIB}{batv_exim_sign}{$return_path}{KEYRING}}`.
    ///
    /// OK with the signed address; OK with the address unchanged for the null sender, a tagged
    /// address, or one that cannot be signed (docs/scheme.md, "Signing"),
    /// which then goes out untagged. The keyring is not needed (not even read) for the null
    /// sender or a tagged address. DEFER when the keyring is unusable, ERROR for wrong arguments.
    batv_exim_sign(c"batv_exim_sign takes 2 arguments: {address}{/path/to/keyring}", args: 2..=2)
        => sign
}

dlfunc! {
    /// Verifies a tagged address: `${dlfunc{LIB}{batv_exim_verify}{ADDRESS}{KEYRING}}`.
    ///
    /// OK with the original address when the tag is valid, OK with the empty string for every
    /// other outcome (untagged too). DEFER when the keyring is unusable, ERROR for wrong
    /// arguments.
    batv_exim_verify(c"batv_exim_verify takes 2 arguments: {address}{/path/to/keyring}", args: 2..=2)
        => verify
}

dlfunc! {
    /// The outcome word for an address: `${dlfunc{LIB}{batv_exim_status}{ADDRESS}{KEYRING}}`
    /// yields `valid`, `untagged`, `malformed`, `unknown-key`, `bad-signature` or `expired`.
    ///
    /// The keyring is always loaded, even for an untagged address, so that with a broken
    /// keyring every bounce check tempfails (DEFER) rather than rejecting.
    batv_exim_status(c"batv_exim_status takes 2 arguments: {address}{/path/to/keyring}", args: 2..=2)
        => status
}

dlfunc! {
    /// The address without its tags, unverified: `${dlfunc{LIB}{batv_exim_strip}{ADDRESS}}`.
    ///
    /// For delivery after the ACL has verified the tag, for monitor mode and for logs. Needs no
    /// keyring. What it cannot strip comes back unchanged.
    batv_exim_strip(c"batv_exim_strip takes 1 argument: {address}", args: 1..=1) => strip
}

dlfunc! {
    /// The bounce policy for one recipient:
    /// `${dlfunc{LIB}{batv_exim_check}{SENDER}{RECIPIENT}{KEYRING}{EXEMPT}{BOUNCE_LOCAL_PARTS}{MONITOR}}`.
    ///
    /// OK with the verdict of docs/scheme.md as one line: `accept REASON` (`valid`, `exempt`,
    /// `not-bounce`), `reject REASON REPLY` with the `550 5.7.1 ...` reply, or, in monitor mode,
    /// `monitor REASON REPLY` for what would have been rejected. EXEMPT is a list of exemptions
    /// (`user@domain`, `@domain`, `user@`), one or more a line, separated by spaces or commas;
    /// lines starting with `#` are comments. BOUNCE_LOCAL_PARTS is such a list too (empty: the
    /// default, `mailer-daemon`). MONITOR is `1` for monitor mode, `0` or empty for enforcing.
    /// The last three may be left out. DEFER when the keyring is unusable or a setting is bad,
    /// ERROR for wrong arguments.
    batv_exim_check(c"batv_exim_check takes 3 to 6 arguments: {sender}{recipient}{/path/to/keyring}{exempt}{bounce local parts}{monitor}", args: 3..=6)
        => check
}

/// The items of a list argument: split on whitespace and commas, `#` comment lines left out.
fn list_items(list: &CStr) -> impl Iterator<Item = &[u8]> {
    list.to_bytes()
        .split(|&b| b == b'\n')
        .filter(|line| !line.trim_ascii_start().starts_with(b"#"))
        .flat_map(|line| line.split(|&b| b.is_ascii_whitespace() || b == b','))
        .filter(|item| !item.is_empty())
}

/// The policy the arguments describe, or the DEFER that names the bad setting.
fn policy(args: &Args<'_>) -> Result<Policy, Answer> {
    let bad = |msg| Err(Answer::Failed(DEFER, msg));
    let mut policy = Policy::DEFAULT;
    for item in list_items(args.get(3)) {
        let Ok(pattern) = std::str::from_utf8(item) else { return bad(c"batv: an exemption is not UTF-8") };
        if let Err(e) = policy.add_exempt(pattern) {
            // Patterns are configuration, never secrets: name the one that is wrong.
            let shown: String = pattern.chars().take(80).collect();
            let more = if shown.len() < pattern.len() { "..." } else { "" };
            let text = format!("batv: exemption '{}{more}': {e}", shown.escape_debug());
            return bad(kept_message(text, c"batv: an exemption cannot be used (see the earlier batv messages in the log)"));
        }
    }
    let parts: Vec<&[u8]> = list_items(args.get(4)).collect();
    if !parts.is_empty() {
        let Ok(parts) = parts.iter().map(|p| std::str::from_utf8(p)).collect::<Result<Vec<_>, _>>() else {
            return bad(c"batv: a bounce local part is not UTF-8");
        };
        if policy.set_bounce_local_parts(parts).is_err() {
            return bad(c"batv: a bounce local part is empty or holds '@'");
        }
    }
    match args.get(5).to_bytes() {
        b"" | b"0" => {}
        b"1" => policy.set_monitor(true),
        _ => return bad(c"batv: the monitor argument must be 1 or 0"),
    }
    Ok(policy)
}

fn check(args: &Args<'_>) -> Answer {
    let policy = match policy(args) {
        Ok(p) => p,
        Err(answer) => return answer,
    };
    // Ordinary mail is decided even with a broken keyring; what could reject tempfails.
    let now = batv_core::unix_now();
    let ring = args.keyring(2, now);
    let (sender, recipient) = (args.get(0).to_bytes(), args.get(1).to_bytes());
    let v = match policy.check_with(ring.as_deref(), sender, recipient, now) {
        Ok(v) => v,
        Err(answer) => return *answer,
    };
    let reason = v.reason.as_str();
    let line = match (v.accepted, v.monitored) {
        (true, false) => format!("accept {reason}"),
        (false, _) => format!("reject {reason} {}", v.smtp_reply.unwrap_or_default()),
        (true, true) => format!("monitor {reason} {}", v.reason.smtp_reply().unwrap_or_default()),
    };
    Answer::copied(line.as_bytes())
}

fn sign(args: &Args<'_>) -> Answer {
    let unchanged = Answer::borrowed(args.get(0));
    let address = args.get(0).to_bytes();
    // The null sender and a tagged address need no key, so not even a readable keyring.
    if matches!(batv_core::admit(address), Admission::Null | Admission::Tagged(_)) {
        return unchanged;
    }
    let now = batv_core::unix_now();
    let ring = match args.keyring(1, now) {
        Ok(ring) => ring,
        Err(answer) => return answer,
    };
    let mut buf = [0u8; SIGNED_MAX];
    match ring.sign_into(address, now, &mut buf) {
        Ok(Signed::Written(n)) => Answer::copied(&buf[..n]),
        Ok(Signed::Unchanged) => unchanged,
        // Cannot be signed: Exim sends it untagged (docs/scheme.md, "Where the faces differ").
        Err(batv_core::SignError::Address(_)) => unchanged,
        // SIGNED_MAX always suffices; this would be a bug.
        Err(batv_core::SignError::BufferTooSmall { .. }) => Answer::Failed(ERROR, PANICKED),
    }
}

fn verify(args: &Args<'_>) -> Answer {
    let now = batv_core::unix_now();
    let ring = match args.keyring(1, now) {
        Ok(ring) => ring,
        Err(answer) => return answer,
    };
    let Ok(original) = ring.verify_at(args.get(0).to_bytes(), now) else {
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
    let now = batv_core::unix_now();
    let ring = match args.keyring(1, now) {
        Ok(ring) => ring,
        Err(answer) => return answer,
    };
    let outcome = ring.status_at(args.get(0).to_bytes(), now);
    Answer::borrowed(crate::capi::outcome_word(outcome))
}

fn strip(args: &Args<'_>) -> Answer {
    let address = args.get(0);
    match batv_core::strip(address.to_bytes()) {
        std::borrow::Cow::Borrowed(s) if s.len() == address.to_bytes().len() => {
            Answer::borrowed(address)
        }
        stripped => Answer::copied(&stripped),
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

    #[test]
    fn check_gives_the_core_verdict_as_one_line() {
        let k = keys("check", SHA1, 0o600);
        let p = path_arg(&k);
        let ring = Keyring::parse(SHA1).unwrap();
        let tagged = ring.sign("user@example.com").unwrap();
        let reply = |r: batv_core::Reason| r.smtp_reply().unwrap();
        let untagged = format!("reject untagged {}", reply(batv_core::Reason::Untagged));
        let cases: Vec<(Vec<&[u8]>, String)> = vec![
            (vec![b"", b"user@example.com", &p], untagged.clone()),
            (vec![b"MAILER-DAEMON@mx.example.net", b"user@example.com", &p], untagged.clone()),
            (vec![b"friend@example.net", b"user@example.com", &p], "accept not-bounce".into()),
            (vec![b"", tagged.as_bytes(), &p], "accept valid".into()),
            (vec![b"", b"dmarc@example.com", &p, b"# comment line\n@lists.example.org, dmarc@example.com\n"], "accept exempt".into()),
            (vec![b"postmaster@x", b"user@example.com", &p, b"", b"postmaster"], untagged.clone()),
            (vec![b"mailer-daemon@x", b"user@example.com", &p, b"", b"postmaster"], "accept not-bounce".into()),
            (vec![b"", b"user@example.com", &p, b"", b"", b"1"], format!("monitor untagged {}", reply(batv_core::Reason::Untagged))),
            (vec![b"", b"prvs=1790zzzzzz=u@example.com", &p, b"", b"", b"0"], format!("reject malformed {}", reply(batv_core::Reason::Malformed))),
        ];
        for (args, want) in cases {
            assert_eq!(call(batv_exim_check, &args), (OK, want.into_bytes()), "{args:?}");
        }
        // A bad setting or an unusable keyring tempfails; wrong arguments are errors.
        for bad in [
            vec![&b""[..], b"u@example.com", &p, b"not-a-pattern"],
            vec![b"", b"u@example.com", &p, b"", b"a@b"],
            vec![b"", b"u@example.com", &p, b"", b"", b"yes"],
            vec![b"", b"u@example.com", b"/nonexistent/batv.keys"],
        ] {
            assert_eq!(call(batv_exim_check, &bad).0, DEFER, "{bad:?}");
        }
        // A glob or an oversized exemption tempfails, and the message names it and what works.
        let mega = format!("{}@example.com", "a".repeat(1 << 20));
        for (list, says) in [
            (&b"dmarc@example.com *@lists.example.com"[..], "exemption '*@lists.example.com': exemptions are literal"),
            (b"bounces@*", "write 'bounces@' for the local part at every domain"),
            (mega.as_bytes(), "at most 254 octets"),
        ] {
            let (code, text) = call(batv_exim_check, &[b"", b"u@example.com", &p, list]);
            let text = String::from_utf8(text).unwrap();
            assert_eq!(code, DEFER, "{text}");
            assert!(text.starts_with("batv: exemption '") && text.contains(says), "{text}");
            assert!(text.len() < 400, "the message quotes at most the start of a pattern");
        }
        // Ordinary mail needs no key: it is accepted with the keyring gone.
        let ordinary = [&b"friend@example.net"[..], b"u@example.com", b"/nonexistent/batv.keys"];
        assert_eq!(call(batv_exim_check, &ordinary), (OK, b"accept not-bounce".to_vec()));
        assert_eq!(call(batv_exim_check, &[b"", b"u@example.com"]).0, ERROR);
        assert_eq!(call(batv_exim_check, &[b"", b"u@example.com", b"relative.keys"]).0, ERROR);
    }
}
