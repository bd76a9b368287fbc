//! The keyring file (docs/scheme.md, "Keyring file"): parsing, writing and permissions.

use crate::days::{DEFAULT_LIFETIME_DAYS, DEFAULT_SKEW_DAYS};
use crate::error::{AclGrant, FileWord, KeyringError, KeyringErrorKind, WordKind};
use crate::keys::{valid_lifetime, valid_skew, Key, Keyring, SecretEncoding, KEY_SLOTS, MIN_ENCODED_SECRET_LEN};
use crate::mac::Scheme;
use base64ct::Encoding as _;
use std::path::Path;
use zeroize::Zeroizing;

impl Keyring {
    /// Parses keyring text. No permission check: that belongs to files.
    pub fn parse(text: &str) -> Result<Keyring, KeyringError> {
        parse_text(text)
    }

    /// Loads a keyring file: a regular file, owned by root or this user, that no one but its
    /// owner and group may use (by its mode or ACL) and its group may only read.
    pub fn load(path: impl AsRef<Path>) -> Result<Keyring, KeyringError> {
        let path = path.as_ref();
        let mut file = open(path).map_err(|kind| KeyringError::new(kind).in_file(path))?;
        Keyring::load_file(path, &mut file)
    }

    /// [`Keyring::load`] of a file already opened at `path` by [`open`].
    pub(crate) fn load_file(path: &Path, file: &mut std::fs::File) -> Result<Keyring, KeyringError> {
        let at = |kind| KeyringError::new(kind).in_file(path);
        // The open file is judged, not the path, which may meanwhile name another.
        let meta = file.metadata().map_err(|e| at(KeyringErrorKind::Io(e.kind())))?;
        if !meta.is_file() {
            return Err(at(KeyringErrorKind::NotAFile));
        }
        check_access(file, &meta).map_err(at)?;
        let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len().min(1 << 20) as usize + 1));
        std::io::Read::read_to_end(file, &mut bytes)
            .map_err(|e| at(KeyringErrorKind::Io(e.kind())))?;
        let text = match std::str::from_utf8(&bytes) {
            Ok(t) => t,
            Err(e) => {
                let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
                return Err(KeyringError::at_line(line, KeyringErrorKind::NotUtf8).in_file(path));
            }
        };
        parse_text(text).map_err(|e| e.in_file(path))
    }

    /// The keyring as file text, secrets included: write it only to a file of mode 0600.
    pub fn to_file_text(&self) -> Zeroizing<String> {
        // Sized up front (a secret encodes to at most 2n + 4 octets): a reallocation would free
        // a buffer with the secrets still in it.
        let size = 256 + self.keys().map(|k| 32 + 2 * k.secret.len() + 4).sum::<usize>();
        let mut s = Zeroizing::new(String::with_capacity(size));
        s.push_str("# batv keyring: keep this file secret (mode 0600). See docs/scheme.md.\n");
        s.push_str("# Rotate with batv keygen: --add, --promote N, --prune (or --rotate on one host).\n");
        s.push_str(&format!("lifetime-days {}\n", self.lifetime_days));
        s.push_str(&format!("skew-days {}\n", self.skew_days));
        s.push_str(&format!("sign-key {}\n", self.sign_key));
        for key in self.keys() {
            s.push_str(&format!("key {} {} ", key.number, key.scheme()));
            match key.encoding {
                SecretEncoding::Base64 => {
                    s.push_str("base64:");
                    s.push_str(&Zeroizing::new(base64ct::Base64::encode_string(&key.secret)));
                }
                SecretEncoding::Hex => {
                    s.push_str("hex:");
                    s.push_str(&Zeroizing::new(base16ct::lower::encode_string(&key.secret)));
                }
                SecretEncoding::Text => {
                    s.push_str("text:");
                    // Parsed from UTF-8 text, so this is UTF-8; a lossy copy would change the key.
                    s.push_str(std::str::from_utf8(&key.secret).unwrap_or_default());
                }
            }
            s.push('\n');
        }
        for key in self.keys() {
            if let Some(day) = key.stopped {
                s.push_str(&format!("retired {} {}\n", key.number, date_of_day(day)));
            }
        }
        s
    }
}

/// Opens a keyring file without ever waiting (a FIFO would hold a mail server for good): a device
/// or FIFO is refused before the open, and `O_NONBLOCK` covers one swapped in after the look.
pub(crate) fn open(path: &Path) -> Result<std::fs::File, KeyringErrorKind> {
    let io = |e: std::io::Error| KeyringErrorKind::Io(e.kind());
    if !std::fs::metadata(path).map_err(io)?.is_file() {
        return Err(KeyringErrorKind::NotAFile);
    }
    use std::os::unix::fs::OpenOptionsExt;
    // O_NOCTTY: a terminal swapped in does not become the process's controlling terminal.
    let flags = (rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY).bits() as i32;
    std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path).map_err(io)
}

/// Who besides the owner and group may use the file, and who owns it.
fn check_access(file: &std::fs::File, meta: &std::fs::Metadata) -> Result<(), KeyringErrorKind> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // Another owner could rewrite the keys whatever the mode; root and this user could anyway.
    let (uid, euid) = (meta.uid(), rustix::process::geteuid().as_raw());
    if uid != 0 && uid != euid {
        return Err(KeyringErrorKind::ForeignOwner { uid, euid });
    }
    // Before the mode: with an ACL the group bits are its mask, and the entry is what to name.
    check_acl(file)?;
    let mode = meta.permissions().mode() & 0o7777;
    // Group read lets an MTA's group (Debian-exim) read a root-owned file.
    if mode & 0o027 != 0 {
        return Err(KeyringErrorKind::InsecurePermissions { mode });
    }
    Ok(())
}

/// The extended attribute that holds a file's POSIX access ACL.
pub(crate) const ACCESS_ACL: &str = "system.posix_acl_access";

/// The file's access ACL as stored, if it has one; a file system without ACLs has none.
pub(crate) fn access_acl(file: impl std::os::fd::AsFd) -> std::io::Result<Option<Vec<u8>>> {
    use rustix::io::Errno;
    // XATTR_SIZE_MAX: no attribute is longer, so the read never fails for want of room.
    let mut buf = vec![0u8; 65_536];
    match rustix::fs::fgetxattr(file, ACCESS_ACL, &mut buf[..]) {
        Ok(n) => {
            buf.truncate(n);
            Ok(Some(buf))
        }
        Err(Errno::NODATA | Errno::OPNOTSUPP) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

#[cfg(target_os = "linux")]
fn check_acl(file: &std::fs::File) -> Result<(), KeyringErrorKind> {
    match access_acl(file) {
        Ok(Some(acl)) => judge_acl(&acl).map_err(KeyringErrorKind::AclGrant),
        Ok(None) => Ok(()),
        Err(e) => Err(KeyringErrorKind::Io(e.kind())),
    }
}

#[cfg(not(target_os = "linux"))]
fn check_acl(_file: &std::fs::File) -> Result<(), KeyringErrorKind> {
    Ok(())
}

/// The rule for ACL entries (docs/scheme.md, "Keyring file"): within the mask, a named user may
/// have no access, a named group only read. `xattr` is Linux's form (a u32 version 2, then u16
/// tag, u16 permissions, u32 id, little-endian); any other is refused.
pub fn judge_acl(xattr: &[u8]) -> Result<(), AclGrant> {
    const USER: u16 = 0x02;
    const GROUP: u16 = 0x08;
    const MASK: u16 = 0x10;
    const WRITE: u16 = 0o2;
    let Some((version, entries)) = xattr.split_at_checked(4) else { return Err(AclGrant::Unreadable) };
    if version != 2u32.to_le_bytes() || entries.len() % 8 != 0 {
        return Err(AclGrant::Unreadable);
    }
    let entries = entries.chunks_exact(8).map(|e| {
        (u16::from_le_bytes([e[0], e[1]]), u16::from_le_bytes([e[2], e[3]]), u32::from_le_bytes([e[4], e[5], e[6], e[7]]))
    });
    let mask = entries.clone().find(|e| e.0 == MASK).map_or(0o7, |e| e.1);
    for (tag, perm, id) in entries {
        let allowed = perm & mask & 0o7;
        match tag {
            USER if allowed != 0 => return Err(AclGrant::User { uid: id, perm: allowed as u8 }),
            GROUP if allowed & WRITE != 0 => return Err(AclGrant::GroupWrite { gid: id }),
            _ => {}
        }
    }
    Ok(())
}

/// Splits off the first whitespace-separated word.
fn next_word(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches([' ', '\t']);
    if s.is_empty() {
        return None;
    }
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    Some((&s[..end], &s[end..]))
}

fn parse_text(text: &str) -> Result<Keyring, KeyringError> {
    let mut keys: [Option<Key>; KEY_SLOTS] = Default::default();
    let mut sign_key: Option<(u8, usize)> = None;
    let mut lifetime: Option<u16> = None;
    let mut skew: Option<u16> = None;
    let mut last_key_line = 0;
    let mut key_count = 0;
    let mut retired: Vec<(u8, i64)> = Vec::new();

    for (index, raw) in text.split('\n').enumerate() {
        let n = index + 1;
        // Trailing CRs are line-end noise, never part of a `text:` secret (it could not be written back).
        let line = raw.trim_end_matches('\r');
        let err = |kind| KeyringError::at_line(n, kind);
        let Some((word, rest)) = next_word(line) else { continue };
        if word.starts_with('#') {
            continue;
        }
        match word {
            "key" => {
                let (number, rest) = next_word(rest).ok_or(err(KeyringErrorKind::MissingValue("the key number")))?;
                let number = parse_digit(number).ok_or(err(KeyringErrorKind::BadKeyNumber))?;
                let (scheme, rest) = next_word(rest).ok_or(err(KeyringErrorKind::MissingValue("the scheme")))?;
                let scheme = Scheme::from_name(scheme)
                    .ok_or_else(|| err(KeyringErrorKind::UnknownScheme(shown_word(scheme))))?;
                let secret = rest.trim_start_matches([' ', '\t']);
                if secret.is_empty() {
                    return Err(err(KeyringErrorKind::MissingValue("the secret")));
                }
                let (encoding, bytes) = decode_secret(secret).map_err(err)?;
                if keys[usize::from(number)].is_some() {
                    return Err(err(KeyringErrorKind::DuplicateKey(number)));
                }
                keys[usize::from(number)] =
                    Some(Key::with_encoding(number, scheme, encoding, &bytes).map_err(err)?);
                last_key_line = n;
                key_count += 1;
            }
            "sign-key" => {
                let v = single_value(rest, "the sign-key number").map_err(err)?;
                let k = parse_digit(v).ok_or(err(KeyringErrorKind::BadKeyNumber))?;
                if sign_key.replace((k, n)).is_some() {
                    return Err(err(KeyringErrorKind::DuplicateSetting("sign-key")));
                }
            }
            "lifetime-days" => set_days(&mut lifetime, rest, "lifetime-days", valid_lifetime).map_err(err)?,
            "skew-days" => set_days(&mut skew, rest, "skew-days", valid_skew).map_err(err)?,
            "retired" => {
                let (number, rest) = next_word(rest).ok_or(err(KeyringErrorKind::BadRetired))?;
                let date = single_value(rest, "the date").map_err(|_| err(KeyringErrorKind::BadRetired))?;
                let (Some(k), Some(day)) = (parse_digit(number), day_of_date(date)) else {
                    return Err(err(KeyringErrorKind::BadRetired));
                };
                if retired.iter().any(|r| r.0 == k) {
                    return Err(err(KeyringErrorKind::DuplicateSetting("retired for one key")));
                }
                retired.push((k, day));
            }
            other => return Err(err(KeyringErrorKind::UnknownDirective(shown_word(other)))),
        }
    }

    let lines = text.split('\n').count();
    let sign_key = match (sign_key, key_count) {
        (_, 0) => return Err(KeyringError::at_line(lines, KeyringErrorKind::NoKeys)),
        (Some((k, line)), _) => {
            if keys[usize::from(k)].is_none() {
                return Err(KeyringError::at_line(line, KeyringErrorKind::SignKeyNotDefined(k)));
            }
            k
        }
        (None, 1) => match keys.iter().flatten().next() {
            Some(k) => k.number,
            None => return Err(KeyringError::at_line(lines, KeyringErrorKind::NoKeys)),
        },
        (None, _) => {
            return Err(KeyringError::at_line(last_key_line, KeyringErrorKind::MissingSignKey))
        }
    };
    // A record of a key that signs again, or was deleted by hand, is stale, not an error.
    for (k, day) in retired {
        if let Some(key) = keys[usize::from(k)].as_mut().filter(|_| k != sign_key) {
            key.stopped = Some(day);
        }
    }
    Ok(Keyring {
        keys,
        sign_key,
        lifetime_days: lifetime.unwrap_or(DEFAULT_LIFETIME_DAYS),
        skew_days: skew.unwrap_or(DEFAULT_SKEW_DAYS),
    })
}

/// The directives of a keyring file.
const DIRECTIVES: [&str; 5] = ["key", "sign-key", "retired", "lifetime-days", "skew-days"];

/// A word from the file as every error shows it: a directive or scheme name as written; any
/// other may be a secret (`key 1 Hunter2`, half of a wrapped one), so only described.
fn shown_word(word: &str) -> FileWord {
    let known = |name: &str| name.eq_ignore_ascii_case(word);
    if DIRECTIVES.iter().any(|d| known(d)) || Scheme::from_name(word).is_some() {
        return FileWord::Known(word.to_owned());
    }
    let chars = word.chars().count();
    let all = |f: fn(&char) -> bool| word.chars().all(|c| f(&c));
    let prefixed = |p: &str| word.strip_prefix(p).is_some_and(|rest| rest.starts_with(':'));
    let kind = if let Some(p) = ["base64", "hex", "text"].into_iter().find(|p| prefixed(p)) {
        WordKind::Secret(p)
    } else if all(char::is_ascii_digit) {
        WordKind::Digits
    } else if all(char::is_ascii_alphabetic) {
        WordKind::Letters
    } else if all(char::is_ascii_alphanumeric) {
        WordKind::LettersAndDigits
    } else if all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '=')) {
        WordKind::Base64
    } else if word.chars().any(char::is_control) {
        WordKind::Control
    } else if !word.is_ascii() {
        WordKind::NonAscii
    } else {
        WordKind::Punctuation
    };
    FileWord::Unknown { chars, kind }
}

fn parse_digit(s: &str) -> Option<u8> {
    match s.as_bytes() {
        [d @ b'0'..=b'9'] => Some(d - b'0'),
        _ => None,
    }
}

/// A `lifetime-days` or `skew-days` line, checked by the keyring's rule for that setting.
fn set_days(
    slot: &mut Option<u16>,
    rest: &str,
    name: &'static str,
    valid: fn(u16) -> Result<u16, KeyringErrorKind>,
) -> Result<(), KeyringErrorKind> {
    // What is not a number gets the rule's out-of-range error: no rule allows 65535.
    let days = valid(single_value(rest, "the number of days")?.parse().unwrap_or(u16::MAX))?;
    match slot.replace(days) {
        Some(_) => Err(KeyringErrorKind::DuplicateSetting(name)),
        None => Ok(()),
    }
}

fn single_value<'a>(rest: &'a str, what: &'static str) -> Result<&'a str, KeyringErrorKind> {
    let (v, tail) = next_word(rest).ok_or(KeyringErrorKind::MissingValue(what))?;
    if next_word(tail).is_some_and(|(w, _)| !w.starts_with('#')) {
        return Err(KeyringErrorKind::TrailingText(what));
    }
    Ok(v)
}

fn decode_secret(s: &str) -> Result<(SecretEncoding, Zeroizing<Vec<u8>>), KeyringErrorKind> {
    let (encoding, bytes) = if let Some(t) = s.strip_prefix("text:") {
        (SecretEncoding::Text, Zeroizing::new(t.as_bytes().to_vec()))
    } else if let Some(b) = s.strip_prefix("base64:") {
        let b = b.trim_end_matches([' ', '\t']);
        let v = base64ct::Base64::decode_vec(b).map_err(|_| KeyringErrorKind::BadBase64)?;
        (SecretEncoding::Base64, Zeroizing::new(v))
    } else if let Some(h) = s.strip_prefix("hex:") {
        let h = h.trim_end_matches([' ', '\t']);
        let v = base16ct::mixed::decode_vec(h).map_err(|_| KeyringErrorKind::BadHex)?;
        (SecretEncoding::Hex, Zeroizing::new(v))
    } else {
        return Err(KeyringErrorKind::BadSecretPrefix);
    };
    if bytes.is_empty() {
        return Err(KeyringErrorKind::EmptySecret);
    }
    if encoding != SecretEncoding::Text && bytes.len() < MIN_ENCODED_SECRET_LEN {
        return Err(KeyringErrorKind::SecretTooShort { len: bytes.len() });
    }
    Ok((encoding, bytes))
}

/// `YYYY-MM-DD` for a UTC day number (days since 1970-01-01), civil calendar.
pub fn date_of_day(day: i64) -> String {
    // Howard Hinnant's civil-from-days.
    let z = day + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

/// The UTC day number of a `YYYY-MM-DD` date, if it is one.
pub fn day_of_date(date: &str) -> Option<i64> {
    let b = date.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    let num = |r: core::ops::Range<usize>| date.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    // Days from civil; a date that does not round-trip (2026-02-30) is no date.
    let yy = y - i64::from(m <= 2);
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let day = era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468;
    (date_of_day(day) == date).then_some(day)
}

#[cfg(test)]
mod tests {
    /// A FIFO swapped in after [`super::open`] looked is refused as the file that was opened.
    #[test]
    fn the_open_file_is_judged_not_the_path() {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = batv_test_support::TempDir::new("open-fifo");
        let path = dir.join("batv.keys");
        rustix::fs::mkfifoat(rustix::fs::CWD, &path, rustix::fs::Mode::from_raw_mode(0o600)).unwrap();
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
            .open(&path)
            .unwrap();
        let e = super::Keyring::load_file(&path, &mut file).unwrap_err();
        assert_eq!(e.kind, super::KeyringErrorKind::NotAFile);
    }
}
