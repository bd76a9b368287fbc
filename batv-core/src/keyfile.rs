//! The keyring file (docs/scheme.md, "Keyring file"): parsing, writing and permissions.

use crate::days::{DEFAULT_LIFETIME_DAYS, DEFAULT_SKEW_DAYS, MAX_LIFETIME_DAYS, MAX_SKEW_DAYS};
use crate::error::{AclGrant, CharKinds, FileWord, KeyringError, KeyringErrorKind, WordKind};
use crate::keys::{Key, Keyring, SecretEncoding, KEY_SLOTS, MIN_ENCODED_SECRET_LEN};
use crate::mac::Scheme;
use base64ct::Encoding as _;
use std::path::Path;
use zeroize::Zeroizing;

impl Keyring {
    /// Parses keyring text. No permission check: that belongs to files.
    pub fn parse(text: &str) -> Result<Keyring, KeyringError> {
        parse_text(text)
    }

    /// Loads a keyring file, refusing what is not a regular file, and a file that users other
    /// than its owner and group could read or write (by its mode or its ACL) or whose owner is
    /// neither root nor the user of this process.
    pub fn load(path: impl AsRef<Path>) -> Result<Keyring, KeyringError> {
        let path = path.as_ref();
        let mut file = open(path).map_err(|kind| KeyringError::new(kind).in_file(path))?;
        Keyring::load_file(path, &mut file)
    }

    /// [`Keyring::load`] from a file already opened at `path` by [`open`] (the cached loader
    /// checks the open file, not the path, for changes during the read).
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
        // Sized for the whole text up front (an encoded secret is at most 2n + 4 octets): a
        // String that grows by reallocation frees its old buffer with the secrets still in it.
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

/// Opens a keyring file to read, never waiting: opening a FIFO blocks until a writer comes,
/// and a mail server would wait with it for good. What the path names is looked at first, so
/// that a device (some act when opened) is not opened; `O_NONBLOCK` covers a FIFO put there
/// after that look, which [`Keyring::load_file`] then refuses as the file it opened.
pub(crate) fn open(path: &Path) -> Result<std::fs::File, KeyringErrorKind> {
    let io = |e: std::io::Error| KeyringErrorKind::Io(e.kind());
    if !std::fs::metadata(path).map_err(io)?.is_file() {
        return Err(KeyringErrorKind::NotAFile);
    }
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use rustix::fs::OFlags;
        use std::os::unix::fs::OpenOptionsExt;
        // O_NOCTTY: a terminal swapped in does not become the process's controlling terminal.
        options.custom_flags((OFlags::NONBLOCK | OFlags::NOCTTY).bits() as i32);
    }
    options.open(path).map_err(io)
}

/// Who besides the owner and group may use the file, and who owns it.
#[cfg(unix)]
fn check_access(file: &std::fs::File, meta: &std::fs::Metadata) -> Result<(), KeyringErrorKind> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    // Another user who owns the file can rewrite the keys, whatever its mode; root and the user
    // of this process could anyway.
    let (uid, euid) = (meta.uid(), rustix::process::geteuid().as_raw());
    if uid != 0 && uid != euid {
        return Err(KeyringErrorKind::ForeignOwner { uid, euid });
    }
    // Before the mode: with an ACL the mode's group bits are its mask, and the entry is what to
    // name.
    check_acl(file)?;
    let mode = meta.permissions().mode() & 0o7777;
    // Group read is allowed so that an MTA's group (Debian-exim) can read a root-owned file;
    // any access by others, or group write, is refused.
    if mode & 0o027 != 0 {
        return Err(KeyringErrorKind::InsecurePermissions { mode });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_access(_file: &std::fs::File, _meta: &std::fs::Metadata) -> Result<(), KeyringErrorKind> {
    Ok(())
}

/// The file's access ACL, judged by [`judge_acl`]. No ACL, or a file system without them, is
/// no grant.
#[cfg(target_os = "linux")]
fn check_acl(file: &std::fs::File) -> Result<(), KeyringErrorKind> {
    use rustix::io::Errno;
    // XATTR_SIZE_MAX: no attribute is longer, so the read never fails for want of room.
    let mut buf = vec![0u8; 65_536];
    match rustix::fs::fgetxattr(file, "system.posix_acl_access", &mut buf[..]) {
        Ok(n) => judge_acl(buf.get(..n).unwrap_or_default()).map_err(KeyringErrorKind::AclGrant),
        Err(Errno::NODATA | Errno::OPNOTSUPP) => Ok(()),
        Err(e) => Err(KeyringErrorKind::Io(std::io::Error::from(e).kind())),
    }
}

#[cfg(all(unix, not(target_os = "linux")))]
fn check_acl(_file: &std::fs::File) -> Result<(), KeyringErrorKind> {
    Ok(())
}

/// The rule for ACL entries (docs/scheme.md, "Keyring file"): a named user may have no access
/// at all, and a named group may read, as the file's own group may, but not write. What an
/// entry allows is its permission within the mask. `xattr` is Linux's `system.posix_acl_access`:
/// a little-endian u32 version (2), then entries of u16 tag, u16 permission bits, u32 uid or gid.
/// One that is not in that form cannot be judged, and is refused.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
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
        // Every trailing CR is line-end noise (CRLF, or CR CR LF from a twice-converted file),
        // never part of a `text:` secret: to_file_text could not write such a secret back.
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
            "lifetime-days" => {
                let v = single_value(rest, "the number of days").map_err(err)?;
                let d = v
                    .parse::<u16>()
                    .ok()
                    .filter(|d| (1..=MAX_LIFETIME_DAYS).contains(d))
                    .ok_or(err(KeyringErrorKind::LifetimeOutOfRange))?;
                if lifetime.replace(d).is_some() {
                    return Err(err(KeyringErrorKind::DuplicateSetting("lifetime-days")));
                }
            }
            "skew-days" => {
                let v = single_value(rest, "the number of days").map_err(err)?;
                let d = v
                    .parse::<u16>()
                    .ok()
                    .filter(|d| *d <= MAX_SKEW_DAYS)
                    .ok_or(err(KeyringErrorKind::SkewOutOfRange))?;
                if skew.replace(d).is_some() {
                    return Err(err(KeyringErrorKind::DuplicateSetting("skew-days")));
                }
            }
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
    // A record for a key that signs again, or whose line was deleted by hand (a leaked key),
    // is out of date, not an error: the keyring must keep working.
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

/// A word from the file as an error shows it: a directive or scheme name (in any case) as
/// written; any other word may be a secret, short or long (`key 1 Hunter2`, the second half of
/// a wrapped base64 secret), so only its length and kind are shown. Every message that names
/// a word from the file takes it from here.
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
    } else {
        let any = |f: fn(&char) -> bool| word.chars().any(|c| f(&c));
        WordKind::Mixed(CharKinds {
            letters: any(char::is_ascii_alphabetic),
            digits: any(char::is_ascii_digit),
            punctuation: any(char::is_ascii_punctuation),
            non_ascii: any(|c| !c.is_ascii()),
            control: any(|c| c.is_control()),
        })
    };
    FileWord::Unknown { chars, kind }
}

fn parse_digit(s: &str) -> Option<u8> {
    match s.as_bytes() {
        [d @ b'0'..=b'9'] => Some(d - b'0'),
        _ => None,
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
    /// A FIFO put at the path after [`super::open`] looked at it is opened without waiting
    /// (as `open` opens) and refused as the file that was opened.
    #[cfg(unix)]
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
