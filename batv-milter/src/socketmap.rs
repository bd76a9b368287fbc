//! The socketmap table `batv` (Postfix `socketmap:`, Sendmail `K batv socket`): netstring
//! requests `<name> <key>`, netstring replies.
//!
//! Postfix's socketmap_table(5) protocol: each request is a netstring
//! `LEN:name key,` and each reply one of `OK data`, `NOTFOUND `, `TEMP reason`,
//! `TIMEOUT reason` or `PERM reason`. Sendmail's `socket` map speaks the same protocol (it
//! was Sendmail's first). Nothing is ever answered with `PERM`: Postfix would defer every
//! mail for it as a server configuration error, and Sendmail takes it, like an empty `OK`,
//! for "not found", which rejects the recipient as an unknown user.

use crate::batv::{Keys, Lookup};
use crate::milter::Runtime;
use batv_core::Policy;
use crate::log::Log;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// The name of the map this daemon serves (`socketmap:...:batv`).
pub const MAP_NAME: &str = "batv";

/// The longest request accepted: a map name, a space and an address of at most 254 octets
/// fit many times over; anything longer is not a lookup this table answers.
pub const MAX_REQUEST: usize = 4096;

/// Why a request could not be read. The connection is closed after any of these.
#[derive(Debug, PartialEq, Eq)]
pub enum NetstringError {
    /// The length prefix is not decimal digits followed by `:`.
    BadLength,
    /// The announced length is over the limit.
    TooLong(usize),
    /// The connection ended inside a netstring.
    Truncated,
    /// The netstring does not end with `,`.
    MissingComma,
}

impl std::fmt::Display for NetstringError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetstringError::BadLength => f.write_str("bad netstring length"),
            NetstringError::TooLong(n) => write!(f, "netstring of {n} octets is over the {MAX_REQUEST}-octet limit"),
            NetstringError::Truncated => f.write_str("connection closed inside a netstring"),
            NetstringError::MissingComma => f.write_str("netstring does not end with ','"),
        }
    }
}

/// Reads one netstring of at most `max` octets. `Ok(None)` at a clean end of input.
pub async fn read_netstring<R: AsyncBufRead + Unpin>(r: &mut R, max: usize) -> Result<Option<Vec<u8>>, NetstringError> {
    let mut len: usize = 0;
    let mut digits = 0usize;
    loop {
        let mut b = [0u8; 1];
        match r.read(&mut b).await {
            Ok(0) if digits == 0 => return Ok(None),
            Ok(0) | Err(_) => return Err(NetstringError::Truncated),
            Ok(_) => {}
        }
        match b[0] {
            d @ b'0'..=b'9' => {
                // Leading zeros are allowed by the format but an overlong prefix is not.
                digits += 1;
                len = len.checked_mul(10).and_then(|l| l.checked_add(usize::from(d - b'0'))).ok_or(NetstringError::TooLong(usize::MAX))?;
                if len > max {
                    return Err(NetstringError::TooLong(len));
                }
                if digits > 10 {
                    return Err(NetstringError::BadLength);
                }
            }
            b':' if digits > 0 => break,
            _ => return Err(NetstringError::BadLength),
        }
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(|_| NetstringError::Truncated)?;
    let mut comma = [0u8; 1];
    r.read_exact(&mut comma).await.map_err(|_| NetstringError::Truncated)?;
    if comma[0] != b',' {
        return Err(NetstringError::MissingComma);
    }
    Ok(Some(body))
}

/// Encodes one netstring.
pub fn netstring(payload: &str) -> Vec<u8> {
    let mut v = format!("{}:", payload.len()).into_bytes();
    v.extend_from_slice(payload.as_bytes());
    v.push(b',');
    v
}

/// The reply to one request, and what it was for the log (`None`: nothing worth a line).
pub fn answer(keys: &Keys, policy: &Policy, request: &[u8], now: i64) -> (String, Option<(String, &'static str, String)>) {
    let Ok(text) = std::str::from_utf8(request) else {
        // Not an address this table could have written: not ours.
        return ("NOTFOUND ".into(), None);
    };
    let (name, key) = text.split_once(' ').unwrap_or((text, ""));
    if name != MAP_NAME {
        // A map name is configuration, not an address. TEMP, not PERM: Sendmail takes PERM
        // for "no such user" (550), and a misconfiguration must tempfail, never reject.
        let note = (name.to_owned(), "tempfail", format!("unknown map name (this table serves \"{MAP_NAME}\")"));
        return (format!("TEMP unknown map name (this table serves \"{MAP_NAME}\")"), Some(note));
    }
    match keys.lookup(policy, key, now) {
        // Sendmail takes an empty OK for "not found" (550 User unknown): a bug must tempfail.
        Lookup::Found(original) if original.is_empty() => {
            ("TEMP no address to answer with".into(), Some((key.to_owned(), "tempfail", "the core gave an empty address".into())))
        }
        Lookup::Found(original) => {
            let note = Some((key.to_owned(), "rewrite", format!("to <{original}>")));
            (format!("OK {original}"), note)
        }
        Lookup::NotFound => ("NOTFOUND ".into(), None),
        Lookup::Temporary(e) => ("TEMP keyring unusable".into(), Some((key.to_owned(), "tempfail", e))),
    }
}

/// Serves one client connection until it closes, errs, or idles past `idle`.
pub async fn serve_connection<S, R>(stream: S, runtime: R, log: Arc<Log>, idle: Duration)
where
    S: tokio::io::AsyncRead + AsyncWrite + Unpin,
    R: Fn() -> Arc<Runtime>,
{
    let (rd, mut wr) = tokio::io::split(stream);
    let mut rd = BufReader::with_capacity(MAX_REQUEST + 16, rd);
    loop {
        let req = match tokio::time::timeout(idle, read_netstring(&mut rd, MAX_REQUEST)).await {
            Err(_) | Ok(Ok(None)) => return,
            Ok(Err(e)) => {
                log.warn(&format!("socketmap: closing a client connection: {e}"));
                return;
            }
            Ok(Ok(Some(req))) => req,
        };
        // The runtime of this request: a connection outlives reloads (Postfix keeps it open).
        let rt = runtime();
        let (reply, note) = answer(&rt.keys, &rt.policy, &req, crate::batv::now());
        if let Some((key, action, reason)) = note {
            log.decision(None, "-", &key, action, &reason);
        }
        if wr.write_all(&netstring(&reply)).await.is_err() || wr.flush().await.is_err() {
            return;
        }
    }
}

/// Accepts socketmap clients forever (the listener bounds how many are open), each served
/// by its own task.
pub async fn serve<R>(mut listener: crate::listen::AnyListener, runtime: R, log: Arc<Log>, idle: Duration)
where
    R: Fn() -> Arc<Runtime> + Clone + Send + 'static,
{
    use indymilter::Listener;
    loop {
        // The listener retries failed accepts itself; an error here cannot happen.
        let Ok(stream) = listener.accept().await else { continue };
        let (runtime, log) = (runtime.clone(), log.clone());
        tokio::spawn(async move { serve_connection(stream, runtime, log, idle).await });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn read(input: &[u8]) -> Result<Option<Vec<u8>>, NetstringError> {
        let mut r = BufReader::new(input);
        read_netstring(&mut r, MAX_REQUEST).await
    }

    #[tokio::test]
    async fn netstrings() {
        assert_eq!(read(b"8:batv a@b,").await, Ok(Some(b"batv a@b".to_vec())));
        assert_eq!(read(b"0:,").await, Ok(Some(vec![])));
        assert_eq!(read(b"").await, Ok(None));
        assert_eq!(read(b"9:batv").await, Err(NetstringError::Truncated));
        assert_eq!(read(b"12").await, Err(NetstringError::Truncated));
        assert_eq!(read(b"8:batv a@b;").await, Err(NetstringError::MissingComma));
        assert_eq!(read(b"8:batv a@b").await, Err(NetstringError::Truncated));
        assert_eq!(read(b":x,").await, Err(NetstringError::BadLength));
        assert_eq!(read(b"-1:x,").await, Err(NetstringError::BadLength));
        assert_eq!(read(b" 1:x,").await, Err(NetstringError::BadLength));
        assert_eq!(read(b"4097:").await, Err(NetstringError::TooLong(4097)));
        assert!(matches!(read(b"99999999999999999999999:").await, Err(NetstringError::TooLong(_))));
        assert_eq!(read(b"0000000000001:a,").await, Err(NetstringError::BadLength));
        // Two requests on one connection.
        let mut r = BufReader::new(&b"1:a,2:bc,"[..]);
        assert_eq!(read_netstring(&mut r, 10).await, Ok(Some(b"a".to_vec())));
        assert_eq!(read_netstring(&mut r, 10).await, Ok(Some(b"bc".to_vec())));
        assert_eq!(read_netstring(&mut r, 10).await, Ok(None));
        assert_eq!(netstring("NOTFOUND "), b"9:NOTFOUND ,".to_vec());
        assert_eq!(netstring(""), b"0:,".to_vec());
    }

    #[test]
    fn answers() {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("batv-milter-sm-{}", std::process::id()));
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("keys");
        std::fs::write(&p, "key 1 hmac-sha256 text:socketmap test\n").unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        let keys = Keys::new(&p);
        let policy = batv_core::Policy::default();
        let now = 1_795_700_000;
        let crate::batv::Signing::Signed(tagged) = keys.sign("bob@example.test", now) else { panic!() };
        let (r, note) = answer(&keys, &policy, format!("batv {tagged}").as_bytes(), now);
        assert_eq!(r, "OK bob@example.test");
        assert_eq!(note.unwrap().1, "rewrite");
        assert_eq!(answer(&keys, &policy, b"batv bob@example.test", now).0, "NOTFOUND ");
        assert_eq!(answer(&keys, &policy, b"batv ", now).0, "NOTFOUND ", "the empty key of the null sender");
        assert_eq!(answer(&keys, &policy, b"batv", now).0, "NOTFOUND ");
        assert_eq!(answer(&keys, &policy, b"batv prvs=1xyz=bob@example.test", now).0, "NOTFOUND ");
        assert_eq!(answer(&keys, &policy, b"batv \xff\xfe", now).0, "NOTFOUND ");
        assert!(answer(&keys, &policy, b"other bob@example.test", now).0.starts_with("TEMP "));
        std::fs::remove_file(&p).unwrap();
        let (r, note) = answer(&keys, &policy, format!("batv {tagged}").as_bytes(), now);
        // The cache looks at the file at most once a second; wait for it to notice.
        let r = if r.starts_with("OK") {
            std::thread::sleep(Duration::from_millis(1100));
            answer(&keys, &policy, format!("batv {tagged}").as_bytes(), now).0
        } else {
            assert_eq!(note.unwrap().1, "tempfail");
            r
        };
        assert_eq!(r, "TEMP keyring unusable");
        assert_eq!(answer(&keys, &policy, b"batv bob@example.test", now).0, "NOTFOUND ");
        std::fs::remove_dir_all(&d).unwrap();
    }

    fn keyring(name: &str, text: &str) -> (std::path::PathBuf, Keys) {
        use std::os::unix::fs::PermissionsExt;
        let d = std::env::temp_dir().join(format!("batv-milter-sm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        let p = d.join("keys");
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
        (d, Keys::new(&p))
    }

    /// Sendmail's `K batv socket -f -q` sends the key as the client wrote it: any case, and a
    /// quoted local part with its quotes.
    #[test]
    fn sendmail_keys_in_any_case_and_quoted() {
        let (d, keys) = keyring("case", "key 3 hmac-sha256 text:sendmail key forms\n");
        let policy = batv_core::Policy::default();
        let now = 1_795_700_000;
        let crate::batv::Signing::Signed(tagged) = keys.sign("Alice@Example.test", now) else { panic!() };
        // prvs=KDDDSSSSSS=: upper-case the word and the hex, as a remote MTA may.
        let shouted = format!("PRVS={}", tagged[5..15].to_ascii_uppercase()) + &tagged[15..];
        assert_ne!(shouted, tagged);
        for key in [&tagged, &shouted] {
            assert_eq!(answer(&keys, &policy, format!("batv {key}").as_bytes(), now).0, "OK Alice@Example.test", "{key}");
        }
        let crate::batv::Signing::Signed(quoted) = keys.sign("\"john doe\"@example.test", now) else { panic!() };
        assert!(quoted.starts_with("\"prvs=3"), "{quoted}");
        assert_eq!(answer(&keys, &policy, format!("batv {quoted}").as_bytes(), now).0, "OK \"john doe\"@example.test");
        // Without -q Sendmail would strip the quotes: that is not the tag that was signed.
        let unquoted = quoted.replace('"', "");
        assert_eq!(answer(&keys, &policy, format!("batv {unquoted}").as_bytes(), now).0, "NOTFOUND ");
        std::fs::remove_dir_all(&d).unwrap();
    }

    /// Sendmail takes `PERM`, and an `OK` with nothing after it, for "not found", which
    /// rejects a recipient as an unknown user: no request, however odd, gets either.
    #[test]
    fn never_perm_nor_an_empty_ok() {
        let (d, keys) = keyring("perm", "key 1 hmac-sha256 text:no perm here\n");
        let now = 1_795_700_000;
        let crate::batv::Signing::Signed(tagged) = keys.sign("bob@example.test", now) else { panic!() };
        let forged = format!("{}000000{}", &tagged[..9], &tagged[15..]);
        let mut requests: Vec<Vec<u8>> = [
            "batv", "batv ", "batv  ", "batv prvs=", "batv prvs==@", "batv prvs=1000000000=@", "batv prvs=1000000000=a@",
            "batv <prvs=1000000000=a@b>", "batv prvs=1000000000=a@b.", "BATV x@y", "batv\tx@y", "", " ", "x",
            "batv \"prvs=1000000000=a\"@b", "batv prvs=a/1000000000@b", "batv @", "batv a b c",
        ]
        .iter()
        .map(|r| r.as_bytes().to_vec())
        .collect();
        requests.push(format!("batv {tagged}").into_bytes());
        requests.push(format!("batv {forged}").into_bytes());
        requests.push(format!("batv {tagged} trailing").into_bytes());
        requests.push(b"batv \x00".to_vec());
        requests.push(b"batv prvs=1000000000=a@\xff".to_vec());
        requests.push([b"batv ".as_slice(), &[b'a'; 3000], b"@b"].concat());
        let monitor = {
            let mut p = batv_core::Policy::default();
            p.set_monitor(true);
            p
        };
        let missing = Keys::new(&d.join("missing"));
        for keys in [&keys, &missing] {
            for policy in [&batv_core::Policy::default(), &monitor] {
                for r in &requests {
                    let reply = answer(keys, policy, r, now).0;
                    let ok = reply == "NOTFOUND "
                        || reply.starts_with("TEMP ")
                        || reply.strip_prefix("OK ").is_some_and(|a| !a.trim().is_empty());
                    assert!(ok, "{:?} -> {reply:?}", String::from_utf8_lossy(r));
                }
            }
        }
        std::fs::remove_dir_all(&d).unwrap();
    }
}
