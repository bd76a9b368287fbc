//! Every call into batv-core, in one place: signing, the bounce verdict, the socketmap answer.
//!
//! The milter decides nothing about addresses, tags or policy; this module turns the core's
//! answers into the few shapes the milter and the socketmap need.

use batv_core::{CachedKeyring, KeyringError, Policy, Signed, SIGNED_MAX};
use std::path::Path;
use std::sync::Arc;

/// The keyring as the daemon sees it: the core's cached loader (a `stat` at most once a
/// second, a changed file reloaded, an error never answered with stale keys).
pub struct Keys {
    cache: CachedKeyring,
}

/// What signing an envelope sender came to.
#[derive(Debug, PartialEq, Eq)]
pub enum Signing {
    /// The signed sender.
    Signed(String),
    /// The core leaves it as it is (the null sender, or already tagged).
    Unchanged,
    /// The address cannot be signed (the core says why); the mail goes out untagged.
    Unsignable(String),
    /// The keyring is unusable: the message must be tempfailed.
    KeyringError(String),
}

/// The bounce rule's decision for one recipient, as the milter replies it.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Accept; `reason` is the core's word (`valid`, `exempt`, `not-bounce`).
    Accept { reason: &'static str },
    /// Reject with this SMTP reply (`550 5.7.1 ...`).
    Reject { reason: &'static str, reply: &'static str },
    /// Monitor mode accepted what would have been rejected.
    Monitored { reason: &'static str },
    /// The keyring is unusable: 451 4.3.0.
    KeyringError(String),
}

/// The socketmap answer for one key.
#[derive(Debug, PartialEq, Eq)]
pub enum Lookup {
    /// A validly tagged address: deliver to this original address.
    Found(String),
    /// Anything that is not a validly tagged address.
    NotFound,
    /// The keyring is unusable (the lookup must be retried later).
    Temporary(String),
}

impl Keys {
    pub fn new(path: &Path) -> Keys {
        Keys { cache: CachedKeyring::new(path) }
    }

    pub fn path(&self) -> &Path {
        self.cache.path()
    }

    /// Loads the keyring now, to report a broken one at start and on `--check-config`.
    pub fn check(&self) -> Result<(), String> {
        self.cache.get().map(|_| ()).map_err(describe)
    }

    fn get(&self) -> Result<Arc<batv_core::Keyring>, String> {
        self.cache.get().map_err(describe)
    }

    /// Signs an envelope sender as of `now`.
    pub fn sign(&self, sender: &str, now: i64) -> Signing {
        let keys = match self.get() {
            Ok(k) => k,
            Err(e) => return Signing::KeyringError(e),
        };
        let mut buf = [0u8; SIGNED_MAX];
        match keys.sign_into(sender, now, &mut buf) {
            Ok(Signed::Unchanged) => Signing::Unchanged,
            Ok(Signed::Written(n)) => match std::str::from_utf8(buf.get(..n).unwrap_or_default()) {
                Ok(s) => Signing::Signed(s.to_owned()),
                Err(_) => Signing::Unsignable("the signed address is not UTF-8".into()),
            },
            Err(e) => Signing::Unsignable(e.to_string()),
        }
    }

    /// The bounce rule for one recipient of a transaction with this sender. Ordinary mail and
    /// exempt recipients need no key, so a broken keyring tempfails only the recipients whose
    /// verdict depends on it (the core decides which).
    pub fn decide(&self, policy: &Policy, sender: &str, recipient: &str, now: i64) -> Decision {
        let loaded = self.cache.get();
        let keys = loaded.as_ref().map(|k| &**k).map_err(|e| describe(e.clone()));
        let v = match policy.check_with(keys, sender, recipient, now) {
            Ok(v) => v,
            Err(e) => return Decision::KeyringError(e),
        };
        let reason = v.reason.as_str();
        match (v.accepted, v.monitored, v.smtp_reply) {
            (true, true, _) => Decision::Monitored { reason },
            (true, false, _) => Decision::Accept { reason },
            (false, _, Some(reply)) => Decision::Reject { reason, reply },
            // A reject always carries its reply; keep the mail rather than guess a reply.
            (false, _, None) => Decision::KeyringError(format!("the core rejected {reason} without a reply")),
        }
    }

    /// The socketmap answer for a recipient: the address the core's bounce policy delivers a
    /// tagged recipient to (the original address of a valid tag; in monitor mode, also the
    /// address behind a tag that does not verify, since monitor mode must not reject), and
    /// nothing for every other key. A tagged recipient's verdict does not depend on the
    /// sender, which the table does not know.
    pub fn lookup(&self, policy: &Policy, key: &str, now: i64) -> Lookup {
        // An untagged key is never rewritten and needs no keyring, even a broken one (a TEMP
        // would defer every recipient).
        if matches!(batv_core::admit(key.as_bytes()), batv_core::Admission::Null | batv_core::Admission::Untagged(_)) {
            return Lookup::NotFound;
        }
        let loaded = self.cache.get();
        let keys = loaded.as_ref().map(|k| &**k).map_err(|e| describe(e.clone()));
        match policy.check_with(keys, "", key, now) {
            Ok(v) => match v.deliver_to {
                Some(to) if v.accepted && to != key => Lookup::Found(to),
                _ => Lookup::NotFound,
            },
            Err(e) => Lookup::Temporary(e),
        }
    }
}

/// The keyring error as logs show it (file, line, what is wrong; never a secret).
fn describe(e: KeyringError) -> String {
    e.to_string()
}

/// Builds the bounce policy from the configuration's settings.
pub fn policy(exempt: &[String], bounce_local_parts: Option<&[String]>, monitor: bool) -> Result<Policy, String> {
    let mut p = Policy::default();
    for e in exempt {
        p.add_exempt(e).map_err(|err| format!("exempt entry {e:?}: {err}"))?;
    }
    if let Some(parts) = bounce_local_parts {
        p.set_bounce_local_parts(parts).map_err(|err| format!("bounce_local_parts: {err}"))?;
    }
    p.set_monitor(monitor);
    Ok(p)
}

/// The current time for the core's `now` arguments.
pub fn now() -> i64 {
    batv_core::unix_now()
}

/// The address inside an SMTP path as a milter receives it (`<user@example.com>`, `<>`, a
/// source route, or bare): the core's `unbracket`. Octets that are not UTF-8 come back as
/// they are, for the core to judge.
pub fn smtp_path_address(path: &str) -> &str {
    std::str::from_utf8(batv_core::unbracket(path.as_bytes())).unwrap_or(path)
}

/// The domain of an address (after the last `@`), if it has one.
pub fn domain_of(address: &str) -> Option<&str> {
    address.rfind('@').map(|at| &address[at + 1..]).filter(|d| !d.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_paths() {
        assert_eq!(smtp_path_address("<user@example.com>"), "user@example.com");
        assert_eq!(smtp_path_address("<>"), "");
        assert_eq!(smtp_path_address("user@example.com"), "user@example.com");
        assert_eq!(smtp_path_address("<@a.example,@b.example:user@example.com>"), "user@example.com");
        // Unmatched brackets stay, and the core refuses them as not an address.
        assert_eq!(smtp_path_address("<user@example.com"), "<user@example.com");
        assert_eq!(smtp_path_address("<@relay.example>"), "@relay.example");
        assert_eq!(smtp_path_address("<\"john doe\"@example.com>"), "\"john doe\"@example.com");
    }

    #[test]
    fn domains() {
        assert_eq!(domain_of("a@Example.COM"), Some("Example.COM"));
        assert_eq!(domain_of("\"a@b\"@c.example"), Some("c.example"));
        assert_eq!(domain_of("a@"), None);
        assert_eq!(domain_of(""), None);
    }

    fn keys_file(dir: &Path, text: &str) -> std::path::PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("keys");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        p
    }

    fn tempdir(name: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("batv-milter-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    const NOW: i64 = 1_795_700_000;

    #[test]
    fn sign_decide_lookup_agree() {
        let d = tempdir("agree");
        let keys = Keys::new(&keys_file(&d, "key 1 hmac-sha256 text:a test secret\n"));
        let Signing::Signed(tagged) = keys.sign("alice@example.test", NOW) else { panic!("not signed") };
        assert!(tagged.starts_with("prvs=1") && tagged.ends_with("=alice@example.test"), "{tagged}");
        assert_eq!(keys.sign("", NOW), Signing::Unchanged);
        assert_eq!(keys.sign(&tagged, NOW), Signing::Unchanged);
        assert!(matches!(keys.sign("alice", NOW), Signing::Unsignable(_)));
        let p = policy(&[], None, false).unwrap();
        assert_eq!(keys.decide(&p, "", &tagged, NOW), Decision::Accept { reason: "valid" });
        assert!(matches!(keys.decide(&p, "", "alice@example.test", NOW), Decision::Reject { reason: "untagged", reply } if reply.starts_with("550 5.7.1")));
        assert_eq!(keys.lookup(&p, &tagged, NOW), Lookup::Found("alice@example.test".into()));
        assert_eq!(keys.lookup(&p, "alice@example.test", NOW), Lookup::NotFound);
        assert_eq!(keys.lookup(&p, "", NOW), Lookup::NotFound);
        let forged = format!("{}000000{}", &tagged[..9], &tagged[15..]);
        assert_eq!(keys.lookup(&p, &forged, NOW), Lookup::NotFound);
        // Expired: signed 10 days before.
        let Signing::Signed(old) = keys.sign("alice@example.test", NOW - 10 * 86400) else { panic!() };
        assert_eq!(keys.lookup(&p, &old, NOW), Lookup::NotFound);
        assert_eq!(keys.lookup(&p, "prvs=234d5777c=alice@example.test", NOW), Lookup::NotFound);
        let m = policy(&[], None, true).unwrap();
        assert_eq!(keys.decide(&m, "", "alice@example.test", NOW), Decision::Monitored { reason: "untagged" });
        // Monitor mode rejects nothing, so the table delivers what the milter would accept.
        for bad in [forged.as_str(), old.as_str(), "prvs=234d5777c=alice@example.test"] {
            assert_eq!(keys.lookup(&m, bad, NOW), Lookup::Found("alice@example.test".into()), "{bad}");
        }
        assert_eq!(keys.lookup(&m, "alice@example.test", NOW), Lookup::NotFound);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn unusable_keyring() {
        let d = tempdir("broken");
        let keys = Keys::new(&d.join("missing"));
        assert!(matches!(keys.sign("alice@example.test", NOW), Signing::KeyringError(_)));
        let p = policy(&[], None, false).unwrap();
        assert!(matches!(keys.decide(&p, "", "alice@example.test", NOW), Decision::KeyringError(_)));
        assert!(matches!(keys.decide(&p, "a@b.example", "prvs=1000000000=alice@example.test", NOW), Decision::KeyringError(_)));
        // Ordinary mail and exempt recipients do not depend on a key.
        assert_eq!(keys.decide(&p, "a@b.example", "alice@example.test", NOW), Decision::Accept { reason: "not-bounce" });
        let ex = policy(&["carol@example.test".into()], None, false).unwrap();
        assert_eq!(keys.decide(&ex, "", "carol@example.test", NOW), Decision::Accept { reason: "exempt" });
        assert!(matches!(keys.lookup(&p, "prvs=1000000000=alice@example.test", NOW), Lookup::Temporary(_)));
        // Untagged keys never need the keyring.
        assert_eq!(keys.lookup(&p, "alice@example.test", NOW), Lookup::NotFound);
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// A FIFO as the keyring is a keyring error (tempfail) at once. The call runs on a thread
    /// that the test gives up on if it blocks: opening a FIFO once waited for a writer for good.
    #[test]
    fn a_fifo_keyring_tempfails_at_once() {
        let d = tempdir("fifo");
        let path = d.join("batv.keys");
        assert!(std::process::Command::new("mkfifo").arg(&path).status().unwrap().success());
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            let p2 = policy(&[], None, false).unwrap();
            let _ = tx.send(Keys::new(&p).decide(&p2, "", "alice@example.test", NOW));
        });
        match rx.recv_timeout(std::time::Duration::from_secs(20)) {
            Ok(Decision::KeyringError(e)) => assert!(e.contains("not a regular file"), "{e}"),
            Ok(other) => panic!("a FIFO keyring gave {other:?}"),
            Err(_) => {
                let _ = std::fs::OpenOptions::new().write(true).open(&path);
                panic!("the milter blocked on a FIFO keyring");
            }
        }
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn errors_hide_the_secret() {
        let d = tempdir("secret");
        let keys = Keys::new(&keys_file(&d, "key 1 hmac-md5 text:do-not-print-me\n"));
        let Signing::KeyringError(e) = keys.sign("alice@example.test", NOW) else { panic!() };
        assert!(!e.contains("do-not-print-me") && e.contains("line 1"), "{e}");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn bad_policy_settings_are_named() {
        assert!(policy(&["nobody".into()], None, false).unwrap_err().contains("nobody"));
        assert!(policy(&[], Some(&["a@b".into()]), false).unwrap_err().contains("bounce_local_parts"));
    }
}
