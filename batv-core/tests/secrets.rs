//! Secret hygiene of the core: secrets are wiped before their memory is freed, and no `Debug`,
//! `Display` or error text shows one.
//!
//! Zeroization is checked with a global allocator that, armed, scans every heap block as it is
//! freed (or moved by a `realloc`) for the test's secrets; a block freed with a secret still in
//! it is a failure. It sees every heap copy the library makes and drops, not stack copies (the
//! keyed HMAC states, which RustCrypto wipes itself: `mac.rs` fails to compile without that),
//! nor copies still alive at the end (a keyring in use holds its secret, by design).
//!
//! Assertion messages never print a secret: they print the text with the secret replaced.

use batv_core::{Key, Keyring, Policy, Scheme};
use batv_test_support::{set_mode, write_private, TempDir};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

// ---------------------------------------------------------------------------------------------
// The scanning allocator.

struct ScanOnFree;

thread_local! {
    // Armed per thread: the other tests in this binary run on other threads at the same time
    // and free their own copies of these secrets.
    static ARMED: Cell<bool> = const { Cell::new(false) };
}
static HITS: AtomicUsize = AtomicUsize::new(0);
static LAST_HIT_SIZE: AtomicUsize = AtomicUsize::new(0);
static NEEDLES: Mutex<Vec<Vec<u8>>> = Mutex::new(Vec::new());

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

unsafe impl GlobalAlloc for ScanOnFree {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // Zeroed, so a block never starts out with what another test left in freed memory:
        // every secret found at the free was written during the block's own life.
        // SAFETY: forwarded to the system allocator with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if ARMED.try_with(Cell::get).unwrap_or(false) {
            // try_lock: the needle list itself is being replaced (and freed) under the lock.
            if let Ok(needles) = NEEDLES.try_lock() {
                // SAFETY: the block is still allocated and `layout.size()` bytes long; it was
                // handed out by `alloc` above, and we only read it before giving it back.
                let block = unsafe { std::slice::from_raw_parts(ptr, layout.size()) };
                if needles.iter().any(|n| contains(block, n)) {
                    HITS.fetch_add(1, Ordering::SeqCst);
                    LAST_HIT_SIZE.store(layout.size(), Ordering::SeqCst);
                }
            }
        }
        // SAFETY: forwarded unchanged to the system allocator.
        unsafe { System.dealloc(ptr, layout) }
    }
    // realloc is left to the default, which is alloc + copy + dealloc above: a block moved by
    // a growing String is scanned like any other freed block.
}

#[global_allocator]
static ALLOCATOR: ScanOnFree = ScanOnFree;

/// Runs `f` with the allocator armed for `needles` and returns how many freed blocks held one.
fn freed_blocks_with_secrets(needles: &[&[u8]], f: impl FnOnce()) -> usize {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    *NEEDLES.lock().unwrap() = needles.iter().map(|n| n.to_vec()).collect();
    HITS.store(0, Ordering::SeqCst);
    ARMED.with(|a| a.set(true));
    f();
    ARMED.with(|a| a.set(false));
    HITS.load(Ordering::SeqCst)
}

// Distinctive secrets, unlike anything else the tests handle.
const TEXT_SECRET: &str = "zq7-Distinctive-Text-Secret-Xk9Pw2";
// 32 bytes; base64 below.
const RAW_SECRET: [u8; 32] = *b"RAW:8c1f4e77a9d03b5e61f2c8d7e0b9";
const B64_SECRET: &str = "UkFXOjhjMWY0ZTc3YTlkMDNiNWU2MWYyYzhkN2UwYjk=";
const HEX_SECRET: &str = "5a51372d48455853454352455421212121deadbeefcafe";

/// Concatenates into a buffer allocated once at its final size: `format!` grows its String by
/// reallocation, which would leave copies of the secret in freed blocks that the test itself
/// made.
fn secret_text(parts: &[&str]) -> zeroize::Zeroizing<String> {
    let mut s = zeroize::Zeroizing::new(String::with_capacity(parts.iter().map(|p| p.len()).sum()));
    for p in parts {
        s.push_str(p);
    }
    s
}

fn keyring_text() -> zeroize::Zeroizing<String> {
    secret_text(&[
        "lifetime-days 7\nsign-key 1\nkey 1 hmac-sha256 base64:",
        B64_SECRET,
        "\nkey 0 hmac-sha1 text:",
        TEXT_SECRET,
        "\nkey 5 hmac-sha256 hex:",
        HEX_SECRET,
        "\n",
    ])
}

fn hex_bytes() -> Vec<u8> {
    (0..HEX_SECRET.len()).step_by(2).map(|i| u8::from_str_radix(&HEX_SECRET[i..i + 2], 16).unwrap()).collect()
}

#[test]
fn the_scanner_sees_a_secret_left_in_freed_memory() {
    // The control: without this, a scanner that never fires would pass everything below.
    let hits = freed_blocks_with_secrets(&[TEXT_SECRET.as_bytes()], || {
        let leaked = String::from(TEXT_SECRET);
        drop(std::hint::black_box(leaked));
    });
    assert_eq!(hits, 1, "the scanning allocator must flag a plain String");
    let hits = freed_blocks_with_secrets(&[TEXT_SECRET.as_bytes()], || {
        let wiped = secret_text(&["a Zeroizing String holding ", TEXT_SECRET]);
        drop(std::hint::black_box(wiped));
    });
    assert_eq!(hits, 0, "Zeroizing must wipe before the free");
}

#[test]
fn secrets_are_wiped_before_their_memory_is_freed() {
    let hex = hex_bytes();
    let needles: [&[u8]; 5] =
        [TEXT_SECRET.as_bytes(), &RAW_SECRET, B64_SECRET.as_bytes(), HEX_SECRET.as_bytes(), &hex];
    let dir = tempdir("zeroize");
    let path = dir.join("batv.keys");
    type Scenario = Box<dyn Fn()>;
    let scenarios: Vec<(&str, Scenario)> = vec![
        ("parse and drop", Box::new(|| drop(Keyring::parse(&keyring_text()).unwrap()))),
        ("clone and rotate", Box::new(|| {
            let ring = Keyring::parse(&keyring_text()).unwrap();
            let copy = ring.clone();
            let rotated = ring.rotated(1_795_700_000).unwrap();
            drop((ring, copy, rotated));
        })),
        ("sign and verify", Box::new(|| {
            let ring = Keyring::parse(&keyring_text()).unwrap();
            let signed = ring.sign_at("user@example.com", 1_795_700_000).unwrap();
            assert!(ring.verify_at(&signed, 1_795_700_000).is_ok());
            let mut buf = [0u8; 254];
            ring.sign_into("a@b.c", 0, &mut buf).unwrap();
        })),
        ("to_file_text and parse it back", Box::new(|| {
            let ring = Keyring::parse(&keyring_text()).unwrap();
            let out = ring.to_file_text();
            drop(Keyring::parse(&out).unwrap());
        })),
        ("Key::new from raw bytes, and Debug", Box::new(|| {
            let key = Key::new(3, Scheme::HmacSha1, &RAW_SECRET).unwrap();
            let one = Keyring::with_key(key.clone());
            let _ = format!("{key:?} {one:?}");
        })),
        ("Keyring::load", Box::new({
            let path = path.clone();
            move || drop(Keyring::load(&path).unwrap())
        })),
        ("errors on lines with secrets", Box::new(|| {
            for bad in [
                secret_text(&["key 1 base64:", B64_SECRET, "\n"]),
                secret_text(&["key 1 hmac-sha1 text:", TEXT_SECRET, "\nkey 1 hmac-sha1 text:", TEXT_SECRET]),
                secret_text(&["key 1 hmac-sha1 hex:", HEX_SECRET, "0\n"]),
                secret_text(&["key 1 hmac-sha1 base64:", B64_SECRET, "=\n"]),
            ] {
                let e = Keyring::parse(&bad).unwrap_err();
                let _ = (e.to_string(), format!("{e:?}"));
            }
        })),
    ];
    write_private(&path, &keyring_text());
    let mut leaks = Vec::new();
    for (name, run) in &scenarios {
        let hits = freed_blocks_with_secrets(&needles, run);
        if hits > 0 {
            leaks.push(format!("{name}: {hits} blocks (last {} bytes)", LAST_HIT_SIZE.load(Ordering::SeqCst)));
        }
    }
    assert!(leaks.is_empty(), "freed heap blocks still held a secret:\n{}", leaks.join("\n"));
}

#[test]
fn a_large_keyring_written_out_leaves_no_copy_behind() {
    // Ten keys with long text secrets: the file text outgrows any small first buffer, so a
    // String that grew by reallocation would free a block full of secrets.
    let secret = |n: usize| format!("{TEXT_SECRET}-{n}-{}", "p".repeat(150));
    let mut text = String::from("sign-key 0\n");
    for n in 0..10 {
        text.push_str(&format!("key {n} hmac-sha1 text:{}\n", secret(n)));
    }
    let text = zeroize::Zeroizing::new(text);
    let ring = Keyring::parse(&text).unwrap();
    let hits = freed_blocks_with_secrets(&[TEXT_SECRET.as_bytes()], || {
        let out = ring.to_file_text();
        assert!(out.len() > 1600);
        drop(out);
    });
    assert_eq!(hits, 0, "to_file_text freed {hits} blocks holding secrets (last {} bytes)", LAST_HIT_SIZE.load(Ordering::SeqCst));
}

// ---------------------------------------------------------------------------------------------
// Nothing shows a secret.

fn redacted(s: &str) -> String {
    s.replace(TEXT_SECRET, "<TEXT_SECRET>")
        .replace(B64_SECRET, "<B64_SECRET>")
        .replace(HEX_SECRET, "<HEX_SECRET>")
}

fn assert_secret_free(what: &str, shown: &str) {
    for needle in [TEXT_SECRET, B64_SECRET, HEX_SECRET, &B64_SECRET[..12], &HEX_SECRET[..12], &TEXT_SECRET[..12]] {
        assert!(!shown.contains(needle), "{what} shows a secret: {}", redacted(shown));
    }
    // Nor the raw bytes, lossily decoded.
    assert!(!shown.contains("RAW:8c1f4e77"), "{what} shows raw secret bytes: {}", redacted(shown));
}

#[test]
fn debug_of_keys_and_keyrings_redacts_secrets() {
    let ring = Keyring::parse(&keyring_text()).unwrap();
    assert_secret_free("Keyring Debug", &format!("{ring:?}"));
    assert_secret_free("Keyring Debug (pretty)", &format!("{ring:#?}"));
    for key in ring.keys() {
        assert_secret_free("Key Debug", &format!("{key:?}"));
    }
    let raw = Key::new(2, Scheme::HmacSha256, &RAW_SECRET).unwrap();
    assert_secret_free("Key::new Debug", &format!("{raw:?}"));
    assert!(format!("{raw:?}").contains("<redacted>"));
    let rotated = ring.rotated(1_795_700_000).unwrap();
    assert_secret_free("rotated Keyring Debug", &format!("{rotated:?}"));
    let policy = Policy::default();
    let v = policy.check(&ring, "", "user@example.com", 0);
    assert_secret_free("Verdict Debug", &format!("{v:?} {policy:?}"));
}

/// Every keyring error of docs/scheme.md ("Keyring file"), each on a line that carries a distinctive secret
/// somewhere: neither `Display` nor `Debug` of the error may show it.
#[test]
fn keyring_errors_never_show_the_secret() {
    let t = TEXT_SECRET;
    let b = B64_SECRET;
    let h = HEX_SECRET;
    let cases: Vec<(&str, String)> = vec![
        // The scheme forgotten: the secret sits where the scheme belongs.
        ("secret in place of the scheme (base64)", format!("key 1 base64:{b}\n")),
        ("secret in place of the scheme (text)", format!("key 1 text:{t}\n")),
        ("secret in place of the scheme (hex)", format!("key 1 hex:{h}\n")),
        // The directive forgotten: the secret starts the line.
        ("secret alone on a line", format!("{b}\n")),
        ("text secret alone on a line", format!("text:{t}\n")),
        ("secret as the key number", format!("key {b} hmac-sha1 text:x\n")),
        ("bad base64", format!("key 1 hmac-sha256 base64:{b}!\n")),
        ("bad hex", format!("key 1 hmac-sha256 hex:{h}z\n")),
        ("short secret", "key 1 hmac-sha256 hex:0011223344\n".to_string()),
        ("unknown scheme", format!("key 1 hmac-md5 text:{t}\n")),
        ("unknown secret prefix", format!("key 1 hmac-sha1 plain:{t}\n")),
        ("duplicate key", format!("key 1 hmac-sha1 text:{t}\nkey 1 hmac-sha1 text:{t}\n")),
        ("missing sign-key", format!("key 1 hmac-sha1 text:{t}\nkey 2 hmac-sha256 base64:{b}\n")),
        ("sign-key naming no key", format!("sign-key 4\nkey 1 hmac-sha1 text:{t}\n")),
        ("lifetime out of range", format!("lifetime-days 366\nkey 1 hmac-sha1 text:{t}\n")),
        ("skew out of range", format!("skew-days 8\nkey 1 hmac-sha1 text:{t}\n")),
        ("unknown directive", format!("key 1 hmac-sha1 text:{t}\nfrobnicate {t}\n")),
        ("trailing text", format!("sign-key 1 {t}\nkey 1 hmac-sha1 text:{t}\n")),
        ("no keys", "# nothing\n".to_string()),
        ("sign-key set twice", format!("sign-key 1\nsign-key 1\nkey 1 hmac-sha1 text:{t}\n")),
    ];
    for (what, text) in &cases {
        let e = match Keyring::parse(text) {
            Ok(_) => panic!("{what}: parsed, but it is an error"),
            Err(e) => e,
        };
        assert_secret_free(what, &e.to_string());
        assert_secret_free(what, &format!("{e:?}"));
        assert!(e.line.is_some(), "{what}: the error names a line: {}", redacted(&e.to_string()));
    }
}

#[test]
fn a_load_error_names_the_file_but_not_the_secret() {
    let dir = tempdir("load-errors");
    let path = dir.join("batv.keys");
    std::fs::write(&path, format!("key 1 base64:{B64_SECRET}\n")).unwrap();
    set_mode(&path, 0o644);
    let e = Keyring::load(&path).unwrap_err();
    assert!(e.to_string().contains("chmod 600"), "{e}");
    set_mode(&path, 0o600);
    let e = Keyring::load(&path).unwrap_err();
    assert!(e.to_string().contains(&*path.to_string_lossy()));
    assert_secret_free("load error", &e.to_string());
    assert_secret_free("load error Debug", &format!("{e:?}"));
}

// ---------------------------------------------------------------------------------------------
// Helpers.

fn tempdir(name: &str) -> TempDir {
    TempDir::new(&format!("secrets-{name}"))
}
