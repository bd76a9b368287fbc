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
    /// Stands in for the keyring where the verdict cannot depend on a key (see `decide`).
    keyless: Option<batv_core::Keyring>,
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
        // Never used to sign or verify a tag: `decide` passes it only for untagged recipients.
        let keyless = batv_core::Keyring::parse("key 0 hmac-sha256 text:no key is needed for untagged recipients\n").ok();
        Keys { cache: CachedKeyring::new(path), keyless }
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
            Ok(Signed::Written(n)) => match std::str::from_utf8(&buf[..n]) {
                Ok(s) => Signing::Signed(s.to_owned()),
                Err(_) => Signing::Unsignable("the signed address is not UTF-8".into()),
            },
            Err(e) => Signing::Unsignable(e.to_string()),
        }
    }

    /// The bounce rule for one recipient of a transaction with this sender.
    ///
    /// Ordinary mail and exempt recipients need no key, so a broken keyring tempfails only
    /// the recipients whose verdict depends on it. This belongs in batv-core (for example a
    /// `Policy::needs_keyring(sender, recipient)`, or `check` taking the keyring's `Result`);
    /// until then the core's own predicates decide it here.
    pub fn decide(&self, policy: &Policy, sender: &str, recipient: &str, now: i64) -> Decision {
        let needs_keys =
            batv_core::is_tagged(recipient) || (policy.is_bounce(sender) && !policy.is_exempt(recipient));
        let loaded = self.get();
        let keys: &batv_core::Keyring = match (&loaded, &self.keyless) {
            (Ok(k), _) => k,
            (Err(_), Some(placeholder)) if !needs_keys => placeholder,
            (Err(e), _) => return Decision::KeyringError(e.clone()),
        };
        let v = policy.check(keys, sender, recipient, now);
        let reason = v.reason.as_str();
        match (v.accepted, v.monitored, v.smtp_reply) {
            (true, true, _) => Decision::Monitored { reason },
            (true, false, _) => Decision::Accept { reason },
            (false, _, Some(reply)) => Decision::Reject { reason, reply },
            // A reject always carries its reply; keep the mail rather than guess a reply.
            (false, _, None) => Decision::KeyringError(format!("the core rejected {reason} without a reply")),
        }
    }

    /// The socketmap answer: the original address of a validly tagged address.
    pub fn lookup(&self, key: &str, now: i64) -> Lookup {
        // An untagged key needs no keyring: it is never ours to rewrite, even while the
        // keyring is broken (a TEMP there would defer every recipient).
        if !batv_core::is_tagged(key) {
            return Lookup::NotFound;
        }
        let keys = match self.get() {
            Ok(k) => k,
            Err(e) => return Lookup::Temporary(e),
        };
        match keys.verify_at(key, now) {
            Ok(original) => Lookup::Found(original.into()),
            Err(_) => Lookup::NotFound,
        }
    }
}

/// The keyring error as logs show it (file, line, what is wrong; never a secret).
fn describe(e: KeyringError) -> String {
    e.to_string()
}

/// Builds the bounce policy from the configuration's settings.
pub fn policy(exempt: &[String], bounce_local_parts: Option<&[String]>, monitor: bool) -> Result<Policy, String> {
    let mut p = Policy::new();
    for e in exempt {
        p = p.exempt(e).map_err(|err| format!("exempt entry {e:?}: {err}"))?;
    }
    if let Some(parts) = bounce_local_parts {
        p = p.bounce_local_parts(parts).map_err(|err| format!("bounce_local_parts: {err}"))?;
    }
    Ok(p.monitor(monitor))
}

/// The current time for the core's `now` arguments.
pub fn now() -> i64 {
    batv_core::unix_now()
}

/// The address inside an SMTP path as a milter receives it (`<user@example.com>`, `<>`,
/// `<@relay.example:user@example.com>`, or bare), or `None` when the brackets do not match.
///
/// This belongs in batv-core (an "admission" of raw envelope octets): every face that reads
/// SMTP paths needs it, and the core already knows `<>` as the null sender.
pub fn smtp_path_address(path: &str) -> Option<&str> {
    let inner = match (path.strip_prefix('<'), path.ends_with('>')) {
        (Some(rest), true) => &rest[..rest.len() - 1],
        (None, false) => path,
        _ => return None,
    };
    // An RFC 5321 source route ends at the first ':' when the path starts with '@'.
    let inner = match inner.strip_prefix('@') {
        Some(route) => &route[route.find(':')? + 1..],
        None => inner,
    };
    Some(inner)
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
        assert_eq!(smtp_path_address("<user@example.com>"), Some("user@example.com"));
        assert_eq!(smtp_path_address("<>"), Some(""));
        assert_eq!(smtp_path_address("user@example.com"), Some("user@example.com"));
        assert_eq!(smtp_path_address("<@a.example,@b.example:user@example.com>"), Some("user@example.com"));
        assert_eq!(smtp_path_address("<user@example.com"), None);
        assert_eq!(smtp_path_address("user@example.com>"), None);
        assert_eq!(smtp_path_address("<@relay.example>"), None);
        assert_eq!(smtp_path_address("<\"john doe\"@example.com>"), Some("\"john doe\"@example.com"));
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
        assert_eq!(keys.lookup(&tagged, NOW), Lookup::Found("alice@example.test".into()));
        assert_eq!(keys.lookup("alice@example.test", NOW), Lookup::NotFound);
        assert_eq!(keys.lookup("", NOW), Lookup::NotFound);
        let forged = format!("{}000000{}", &tagged[..9], &tagged[15..]);
        assert_eq!(keys.lookup(&forged, NOW), Lookup::NotFound);
        // Expired: signed 10 days before.
        let Signing::Signed(old) = keys.sign("alice@example.test", NOW - 10 * 86400) else { panic!() };
        assert_eq!(keys.lookup(&old, NOW), Lookup::NotFound);
        let m = policy(&[], None, true).unwrap();
        assert_eq!(keys.decide(&m, "", "alice@example.test", NOW), Decision::Monitored { reason: "untagged" });
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
        assert!(matches!(keys.lookup("prvs=1000000000=alice@example.test", NOW), Lookup::Temporary(_)));
        // Untagged keys never need the keyring.
        assert_eq!(keys.lookup("alice@example.test", NOW), Lookup::NotFound);
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
