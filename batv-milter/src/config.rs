//! The TOML configuration file, and which mail it makes "ours": the milter's own settings.

use ipnet::IpNet;
use serde::Deserialize;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The default configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/batv/milter.toml";

/// The file as written (all optional settings as options).
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
struct File {
    keyring: PathBuf,
    milter_socket: String,
    socketmap_socket: Option<String>,
    #[serde(default)]
    sign_domains: Vec<String>,
    verify_domains: Option<Vec<String>>,
    trusted_networks: Option<Vec<String>>,
    trusted_daemon_names: Option<Vec<String>>,
    sign_authenticated: Option<bool>,
    #[serde(default)]
    exempt: Vec<String>,
    bounce_local_parts: Option<Vec<String>>,
    monitor: Option<bool>,
    socket_mode: Option<String>,
    socket_group: Option<String>,
    log: Option<String>,
    max_connections: Option<usize>,
    idle_timeout_seconds: Option<u64>,
}

/// Where a daemon socket listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SocketSpec {
    Unix(PathBuf),
    Inet(String, u16),
}

impl fmt::Display for SocketSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SocketSpec::Unix(p) => write!(f, "unix:{}", p.display()),
            SocketSpec::Inet(h, p) if h.contains(':') => write!(f, "inet:[{h}]:{p}"),
            SocketSpec::Inet(h, p) => write!(f, "inet:{h}:{p}"),
        }
    }
}

/// Where log lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogTarget {
    Syslog,
    Stderr,
}

/// A list of domains; an entry with a leading `.` covers every subdomain (not the domain).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Domains(Vec<String>);

impl Domains {
    fn parse(setting: &str, entries: &[String]) -> Result<Domains, String> {
        let mut v = Vec::new();
        for e in entries {
            let d = e.trim_end_matches('.').to_ascii_lowercase();
            let bare = d.strip_prefix('.').unwrap_or(&d);
            if bare.is_empty() || bare.contains(['@', ' ', '\t']) || bare.starts_with('.') || bare.contains("..") {
                return Err(format!("{setting}: {e:?} is not a domain (or .domain for its subdomains)"));
            }
            v.push(d);
        }
        Ok(Domains(v))
    }

    /// Whether a domain (as written in an address, any case) is in the list.
    pub fn contains(&self, domain: &str) -> bool {
        let domain = domain.trim_end_matches('.');
        self.0.iter().any(|entry| {
            if entry.starts_with('.') {
                // ".example.com" covers "a.example.com": the domain ends with the entry.
                domain.len() > entry.len()
                    && domain.is_char_boundary(domain.len() - entry.len())
                    && domain[domain.len() - entry.len()..].eq_ignore_ascii_case(entry)
            } else {
                domain.eq_ignore_ascii_case(entry)
            }
        })
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Domains {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_list(f, self.0.iter())
    }
}

fn write_list<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: impl Iterator<Item = T>) -> fmt::Result {
    f.write_str("[")?;
    for (i, item) in items.enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "\"{item}\"")?;
    }
    f.write_str("]")
}

/// The effective settings.
#[derive(Clone, Debug)]
pub struct Settings {
    pub keyring: PathBuf,
    pub milter_socket: SocketSpec,
    pub socketmap_socket: Option<SocketSpec>,
    pub sign_domains: Domains,
    pub verify_domains: Domains,
    pub trusted_networks: Vec<IpNet>,
    pub trusted_daemon_names: Vec<String>,
    pub sign_authenticated: bool,
    pub exempt: Vec<String>,
    pub bounce_local_parts: Option<Vec<String>>,
    pub monitor: bool,
    pub socket_mode: u32,
    pub socket_group: Option<String>,
    pub log: LogTarget,
    pub max_connections: usize,
    pub idle_timeout_seconds: u64,
}

/// A configuration that cannot be used: the file and what is wrong.
#[derive(Debug)]
pub struct ConfigError {
    pub path: PathBuf,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Parses `unix:/path` or `inet:host:port` (`inet:[::1]:port` for IPv6).
pub fn parse_socket(setting: &str, s: &str) -> Result<SocketSpec, String> {
    let bad = |why: &str| format!("{setting}: {s:?} {why} (use unix:/absolute/path or inet:host:port)");
    if let Some(path) = s.strip_prefix("unix:") {
        let p = PathBuf::from(path);
        if !p.is_absolute() {
            return Err(bad("is not an absolute path"));
        }
        return Ok(SocketSpec::Unix(p));
    }
    let rest = s.strip_prefix("inet:").ok_or_else(|| bad("names no socket type"))?;
    let (host, port) = match rest.strip_prefix('[') {
        Some(v6) => {
            let (h, p) = v6.split_once("]:").ok_or_else(|| bad("has no port"))?;
            (h, p)
        }
        None => rest.rsplit_once(':').ok_or_else(|| bad("has no port"))?,
    };
    if host.is_empty() {
        return Err(bad("has no host"));
    }
    let port: u16 = port.parse().map_err(|_| bad("has a bad port"))?;
    Ok(SocketSpec::Inet(host.to_owned(), port))
}

impl Settings {
    /// Reads and validates a configuration file.
    pub fn load(path: &Path) -> Result<Settings, ConfigError> {
        let err = |message: String| ConfigError { path: path.to_owned(), message };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read the file: {e}")))?;
        Settings::parse(&text).map_err(err)
    }

    /// Validates the text of a configuration file.
    pub fn parse(text: &str) -> Result<Settings, String> {
        let f: File = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        if !f.keyring.is_absolute() {
            return Err(format!("keyring: {:?} is not an absolute path", f.keyring));
        }
        let sign_domains = Domains::parse("sign_domains", &f.sign_domains)?;
        let verify_domains = match &f.verify_domains {
            Some(v) => Domains::parse("verify_domains", v)?,
            None => sign_domains.clone(),
        };
        let trusted_networks = match &f.trusted_networks {
            None => vec!["127.0.0.0/8".parse().map_err(|_| "loopback")?, "::1/128".parse().map_err(|_| "loopback")?],
            Some(list) => list
                .iter()
                .map(|n| {
                    n.parse::<IpNet>()
                        .or_else(|_| n.parse::<IpAddr>().map(IpNet::from))
                        .map(|net| net.trunc())
                        .map_err(|_| format!("trusted_networks: {n:?} is not a CIDR network or address"))
                })
                .collect::<Result<_, _>>()?,
        };
        let socket_mode = match &f.socket_mode {
            None => 0o660,
            Some(m) => u32::from_str_radix(m.trim_start_matches("0o"), 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| format!("socket_mode: {m:?} is not an octal mode such as \"0660\""))?,
        };
        let log = match f.log.as_deref() {
            None | Some("syslog") => LogTarget::Syslog,
            Some("stderr") => LogTarget::Stderr,
            Some(other) => return Err(format!("log: {other:?} is neither \"syslog\" nor \"stderr\"")),
        };
        let max_connections = f.max_connections.unwrap_or(1024);
        if max_connections == 0 || max_connections > 100_000 {
            return Err(format!("max_connections: {max_connections} is not in 1..=100000"));
        }
        let idle_timeout_seconds = f.idle_timeout_seconds.unwrap_or(900);
        if idle_timeout_seconds == 0 {
            return Err("idle_timeout_seconds: must be at least 1".into());
        }
        let s = Settings {
            keyring: f.keyring,
            milter_socket: parse_socket("milter_socket", &f.milter_socket)?,
            socketmap_socket: f.socketmap_socket.as_deref().map(|s| parse_socket("socketmap_socket", s)).transpose()?,
            sign_domains,
            verify_domains,
            trusted_networks,
            trusted_daemon_names: f.trusted_daemon_names.unwrap_or_default(),
            sign_authenticated: f.sign_authenticated.unwrap_or(true),
            exempt: f.exempt,
            bounce_local_parts: f.bounce_local_parts,
            monitor: f.monitor.unwrap_or(false),
            socket_mode,
            socket_group: f.socket_group,
            log,
            max_connections,
            idle_timeout_seconds,
        };
        // The policy settings are the core's: let it validate them now.
        crate::batv::policy(&s.exempt, s.bounce_local_parts.as_deref(), s.monitor)?;
        if s.sign_domains.is_empty() && s.verify_domains.is_empty() {
            return Err("sign_domains: empty, and no verify_domains: the milter would do nothing".into());
        }
        Ok(s)
    }

    /// Whether a client address is in `trusted_networks`.
    pub fn is_trusted(&self, addr: IpAddr) -> bool {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
            v4 => v4,
        };
        self.trusted_networks.iter().any(|n| n.contains(&addr))
    }
}

/// The effective settings as TOML, for `--check-config`. The keyring's secrets are never
/// read into this, only its path.
impl fmt::Display for Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "keyring = \"{}\"", self.keyring.display())?;
        writeln!(f, "milter_socket = \"{}\"", self.milter_socket)?;
        match &self.socketmap_socket {
            Some(s) => writeln!(f, "socketmap_socket = \"{s}\"")?,
            None => writeln!(f, "# socketmap_socket: not set (no socketmap table)")?,
        }
        writeln!(f, "sign_domains = {}", self.sign_domains)?;
        writeln!(f, "verify_domains = {}", self.verify_domains)?;
        f.write_str("trusted_networks = ")?;
        write_list(f, self.trusted_networks.iter())?;
        f.write_str("\ntrusted_daemon_names = ")?;
        write_list(f, self.trusted_daemon_names.iter())?;
        writeln!(f, "\nsign_authenticated = {}", self.sign_authenticated)?;
        f.write_str("exempt = ")?;
        write_list(f, self.exempt.iter())?;
        f.write_str("\nbounce_local_parts = ")?;
        match &self.bounce_local_parts {
            Some(p) => write_list(f, p.iter())?,
            None => f.write_str("[\"mailer-daemon\"]")?,
        }
        writeln!(f, "\nmonitor = {}", self.monitor)?;
        writeln!(f, "socket_mode = \"{:04o}\"", self.socket_mode)?;
        match &self.socket_group {
            Some(g) => writeln!(f, "socket_group = \"{g}\"")?,
            None => writeln!(f, "# socket_group: not set (the daemon's own group)")?,
        }
        writeln!(f, "log = \"{}\"", if self.log == LogTarget::Syslog { "syslog" } else { "stderr" })?;
        writeln!(f, "max_connections = {}", self.max_connections)?;
        writeln!(f, "idle_timeout_seconds = {}", self.idle_timeout_seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "keyring = \"/etc/batv/batv.keys\"\nmilter_socket = \"unix:/run/batv/milter.sock\"\nsign_domains = [\"example.com\", \".example.org\"]\n";

    #[test]
    fn defaults() {
        let s = Settings::parse(MINIMAL).unwrap();
        assert_eq!(s.verify_domains, s.sign_domains);
        assert!(s.sign_authenticated && !s.monitor);
        assert!(s.is_trusted("127.0.0.1".parse().unwrap()));
        assert!(s.is_trusted("127.8.9.10".parse().unwrap()));
        assert!(s.is_trusted("::1".parse().unwrap()));
        assert!(s.is_trusted("::ffff:127.0.0.1".parse().unwrap()));
        assert!(!s.is_trusted("192.0.2.1".parse().unwrap()));
        assert_eq!(s.socket_mode, 0o660);
        assert_eq!(s.log, LogTarget::Syslog);
        assert_eq!(s.socketmap_socket, None);
    }

    #[test]
    fn domain_matching() {
        let s = Settings::parse(MINIMAL).unwrap();
        let d = &s.sign_domains;
        assert!(d.contains("example.com") && d.contains("EXAMPLE.Com") && d.contains("example.com."));
        assert!(!d.contains("mail.example.com"), "a plain entry does not cover subdomains");
        assert!(d.contains("mail.example.org") && d.contains("a.b.EXAMPLE.org"));
        assert!(!d.contains("example.org"), "a .domain entry covers subdomains only");
        assert!(!d.contains("badexample.org") && !d.contains("notexample.com"));
        assert!(!d.contains(""));
        // The entry's length ends inside the 'é': no match, and no panic slicing there.
        assert!(!d.contains("éexample.org"));
        assert!(d.contains("ü.example.org"));
    }

    #[test]
    fn sockets() {
        assert_eq!(parse_socket("s", "inet:127.0.0.1:8891").unwrap(), SocketSpec::Inet("127.0.0.1".into(), 8891));
        assert_eq!(parse_socket("s", "inet:[::1]:8891").unwrap(), SocketSpec::Inet("::1".into(), 8891));
        assert_eq!(parse_socket("s", "inet:[::1]:8891").unwrap().to_string(), "inet:[::1]:8891");
        assert_eq!(parse_socket("s", "unix:/run/x.sock").unwrap().to_string(), "unix:/run/x.sock");
        for bad in ["unix:relative.sock", "inet:host", "inet::25", "tcp:1.2.3.4:5", "inet:h:99999", "/run/x.sock"] {
            let e = parse_socket("milter_socket", bad).unwrap_err();
            assert!(e.starts_with("milter_socket:"), "{bad}: {e}");
        }
    }

    #[test]
    fn errors_name_the_setting() {
        let cases = [
            ("keyring = \"k\"\nmilter_socket = \"unix:/a\"\nsign_domains = [\"e.com\"]\n", "keyring"),
            (&format!("{MINIMAL}sign_domain = []\n"), "sign_domain"),
            (&format!("{MINIMAL}trusted_networks = [\"10.0.0.0/33\"]\n"), "trusted_networks"),
            (&format!("{MINIMAL}socket_mode = \"rw\"\n"), "socket_mode"),
            (&format!("{MINIMAL}log = \"file\"\n"), "log"),
            (&format!("{MINIMAL}exempt = [\"nobody\"]\n"), "exempt"),
            (&format!("{MINIMAL}verify_domains = [\"a@b\"]\n"), "verify_domains"),
            ("milter_socket = \"unix:/a\"\n", "keyring"),
            (&format!("{MINIMAL}max_connections = 0\n"), "max_connections"),
            ("keyring = \"/k\"\nmilter_socket = \"unix:/a\"\n", "sign_domains"),
        ];
        for (text, word) in cases {
            let e = Settings::parse(text).unwrap_err();
            assert!(e.contains(word), "{text:?}: {e}");
        }
    }

    #[test]
    fn glob_exemptions_are_refused_naming_them() {
        for (pattern, says) in [
            ("*@lists.example.com", "write '@lists.example.com' for every address of the domain"),
            ("bounces@*", "write 'bounces@' for the local part at every domain"),
        ] {
            let e = Settings::parse(&format!("{MINIMAL}exempt = [\"dmarc@example.com\", \"{pattern}\"]\n")).unwrap_err();
            assert!(e.contains(&format!("exempt entry \"{pattern}\"")) && e.contains(says), "{e}");
        }
    }

    #[test]
    fn networks_and_display() {
        let s = Settings::parse(&format!(
            "{MINIMAL}trusted_networks = [\"192.0.2.0/24\", \"2001:db8::/32\", \"198.51.100.7\"]\nverify_domains = [\"example.net\"]\nsocket_mode = \"0600\"\n"
        ))
        .unwrap();
        assert!(s.is_trusted("192.0.2.200".parse().unwrap()));
        assert!(s.is_trusted("198.51.100.7".parse().unwrap()));
        assert!(!s.is_trusted("198.51.100.8".parse().unwrap()));
        assert!(s.is_trusted("2001:db8::1".parse().unwrap()));
        assert!(!s.is_trusted("127.0.0.1".parse().unwrap()), "an explicit list replaces loopback");
        assert!(s.verify_domains.contains("example.net") && !s.verify_domains.contains("example.com"));
        let shown = s.to_string();
        // What --check-config prints parses back to the same settings.
        let again = Settings::parse(&shown).unwrap();
        assert_eq!(again.to_string(), shown);
        assert!(shown.contains("socket_mode = \"0600\""), "{shown}");
    }
}
