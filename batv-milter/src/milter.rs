//! The milter: which sessions are ours, and the milter events turned into calls of the core
//! (signing at end of message, the bounce rule at RCPT) and into SMTP replies.

use crate::batv::{self, Decision, Keys, Signing};
use crate::config::Settings;
use crate::log::Log;
use batv_core::Policy;
use indymilter::{
    Actions, Callbacks, Context, ContextActions, EomContext, MacroStage, NegotiateContext, ProtoOpts, SetErrorReply,
    SocketInfo, Status,
};
use std::ffi::{CStr, CString};
use std::net::IpAddr;
use std::sync::{Arc, RwLock};

/// The header monitor mode adds (and whose earlier copies it removes).
pub const MONITOR_HEADER: &str = "X-BATV";

/// What the daemon runs with; replaced as a whole on SIGHUP.
pub struct Runtime {
    pub settings: Settings,
    pub policy: Policy,
    pub keys: Arc<Keys>,
}

pub struct Shared {
    pub runtime: RwLock<Arc<Runtime>>,
    pub log: Arc<Log>,
}

impl Shared {
    pub fn runtime(&self) -> Arc<Runtime> {
        self.runtime.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// One SMTP session as the milter follows it.
#[derive(Default)]
pub struct Session {
    /// Trusted network or configured daemon name (known at connect).
    ours_by_connection: bool,
    /// ... or an authenticated sender (known at MAIL).
    ours: bool,
    sender: String,
    mail_args: Vec<String>,
    /// Monitor mode: what would have been rejected, one entry per recipient.
    monitored: Vec<String>,
    /// Copies of the monitor header already in the message.
    old_headers: i32,
    /// The stages the MTA expects no reply to (negotiated: one round trip less each).
    quiet: ProtoOpts,
}

impl Session {
    /// The status for a stage that always continues: no reply at all when negotiated.
    fn carry_on(&self, stage: ProtoOpts) -> Status {
        if self.quiet.contains(stage) {
            Status::Noreply
        } else {
            Status::Continue
        }
    }
}

fn macro_str<'a>(macros: &'a indymilter::Macros, name: &CStr) -> Option<&'a str> {
    macros.get(name).and_then(|v| v.to_str().ok()).filter(|v| !v.is_empty())
}

/// A client address as an MTA's macro writes it: Postfix `2001:db8::1`, Sendmail
/// `IPv6:2001:db8:0:0:0:0:0:1` (its address-literal form).
fn client_ip(macro_value: &str) -> Option<IpAddr> {
    let v = macro_value.trim();
    let v = match v.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("IPv6:") => &v[5..],
        _ => v,
    };
    v.parse().ok()
}

fn lossy(c: &CStr) -> String {
    c.to_string_lossy().into_owned()
}

/// Splits a core reply such as `550 5.7.1 Bounce rejected: ...` into its three parts.
fn split_reply(reply: &str) -> (&str, Option<&str>, &str) {
    let (code, rest) = reply.split_once(' ').unwrap_or((reply, ""));
    match rest.split_once(' ') {
        Some((x, text)) if x.split('.').count() == 3 && x.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
            (code, Some(x), text)
        }
        _ => (code, None, rest),
    }
}

fn set_reply<T: SetErrorReply>(reply: &mut T, full: &str) {
    let (code, x, text) = split_reply(full);
    // Only the core's fixed replies and our own reach this; a failure keeps the MTA's default.
    let _ = reply.set_error_reply(code, x, [text]);
}

const KEYRING_TEMPFAIL: &str = "451 4.3.0 BATV keyring unavailable, try again later";
const SIGN_TEMPFAIL: &str = "451 4.3.0 BATV signing unavailable, try again later";

async fn negotiate(sh: &Shared, cx: &mut NegotiateContext<Session>, mta_actions: Actions, mta_opts: ProtoOpts) -> Status {
    let rt = sh.runtime();
    let needed = Actions::CHANGE_SENDER | Actions::ADD_HEADER | Actions::CHANGE_HEADER;
    if !mta_actions.contains(needed) {
        sh.log.error("the MTA does not offer the milter actions batv-milter needs (change sender, add and change headers); closing");
    }
    cx.requested_actions = needed;
    let mut opts = ProtoOpts::NO_HELO | ProtoOpts::NO_BODY | ProtoOpts::NO_UNKNOWN | ProtoOpts::NO_DATA;
    // Headers are only looked at in monitor mode (to remove earlier copies of its header).
    if !rt.settings.monitor {
        opts |= ProtoOpts::NO_HEADER | ProtoOpts::NO_EOH;
    }
    // Connect, MAIL and headers always continue: where the MTA allows it, without a reply.
    let quiet = (ProtoOpts::NOREPLY_CONNECT | ProtoOpts::NOREPLY_MAIL | ProtoOpts::NOREPLY_HEADER) & mta_opts;
    cx.requested_opts = (opts & mta_opts) | quiet;
    let want = [
        (MacroStage::Connect, "{daemon_name} {client_addr}"),
        (MacroStage::Mail, "{auth_authen}"),
        (MacroStage::Rcpt, "i"),
        (MacroStage::Eom, "i"),
    ];
    for (stage, names) in want {
        if let Ok(c) = CString::new(names) {
            cx.requested_macros.insert(stage, c);
        }
    }
    cx.data = Some(Session { quiet, ..Session::default() });
    Status::Continue
}

async fn connect(sh: &Shared, cx: &mut Context<Session>, info: SocketInfo) -> Status {
    let rt = sh.runtime();
    let addr = match info {
        SocketInfo::Inet(a) => Some(a.ip()),
        _ => macro_str(&cx.macros, c"{client_addr}").and_then(client_ip),
    };
    let trusted = addr.is_some_and(|a| rt.settings.is_trusted(a));
    let daemon = macro_str(&cx.macros, c"{daemon_name}")
        .is_some_and(|d| rt.settings.trusted_daemon_names.iter().any(|n| n == d));
    let s = cx.data.get_or_insert_with(Session::default);
    s.ours_by_connection = trusted || daemon;
    s.carry_on(ProtoOpts::NOREPLY_CONNECT)
}

async fn mail(sh: &Shared, cx: &mut Context<Session>, args: Vec<CString>) -> Status {
    let rt = sh.runtime();
    let authenticated = rt.settings.sign_authenticated && macro_str(&cx.macros, c"{auth_authen}").is_some();
    let s = cx.data.get_or_insert_with(Session::default);
    let path = args.first().map(|a| lossy(a)).unwrap_or_default();
    s.ours = s.ours_by_connection || authenticated;
    s.mail_args = args.iter().skip(1).map(|a| lossy(a)).collect();
    s.monitored.clear();
    s.old_headers = 0;
    s.sender = batv::smtp_path_address(&path).to_owned();
    s.carry_on(ProtoOpts::NOREPLY_MAIL)
}

async fn rcpt(sh: &Shared, cx: &mut Context<Session>, args: Vec<CString>) -> Status {
    let Some(s) = cx.data.as_mut() else { return Status::Continue };
    // Mail from our own users and systems (including sendmail(1), which presents a localhost
    // client) is never rejected or tempfailed here.
    if s.ours {
        return Status::Continue;
    }
    let rt = sh.runtime();
    let path = args.first().map(|a| lossy(a)).unwrap_or_default();
    let rcpt = batv::smtp_path_address(&path);
    if !batv::domain_of(rcpt).is_some_and(|d| rt.settings.verify_domains.contains(d)) {
        return Status::Continue;
    }
    let queue = macro_str(&cx.macros, c"i").map(str::to_owned);
    let decision = rt.keys.decide(&rt.policy, &s.sender, rcpt, batv::now());
    let log = |action: &str, reason: &str| sh.log.decision(queue.as_deref(), &s.sender, rcpt, action, reason);
    match decision {
        Decision::Accept { reason } => {
            log("accept", reason);
            Status::Continue
        }
        Decision::Monitored { reason } => {
            log("monitor", &format!("{reason} (would reject)"));
            s.monitored.push(format!("would reject <{rcpt}>: {reason}"));
            Status::Continue
        }
        Decision::Reject { reason, reply } => {
            log("reject", reason);
            set_reply(&mut cx.reply, reply);
            Status::Reject
        }
        Decision::KeyringError(e) => {
            log("tempfail", &e);
            set_reply(&mut cx.reply, KEYRING_TEMPFAIL);
            Status::Tempfail
        }
    }
}

async fn header(cx: &mut Context<Session>, name: CString) -> Status {
    let Some(s) = cx.data.as_mut() else { return Status::Continue };
    if name.to_bytes().eq_ignore_ascii_case(MONITOR_HEADER.as_bytes()) {
        s.old_headers = s.old_headers.saturating_add(1);
    }
    s.carry_on(ProtoOpts::NOREPLY_HEADER)
}

async fn eom(sh: &Shared, cx: &mut EomContext<Session>) -> Status {
    let Some(s) = cx.data.as_mut() else { return Status::Continue };
    let queue = macro_str(&cx.macros, c"i").map(str::to_owned);
    if !s.monitored.is_empty() {
        // Earlier copies, last first, so that the indexes of the others stay put.
        for i in (1..=s.old_headers).rev() {
            if let Err(e) = cx.actions.change_header(MONITOR_HEADER, i, None::<CString>).await {
                sh.log.warn(&format!("cannot remove an earlier {MONITOR_HEADER} header: {e}"));
            }
        }
        let value = s.monitored.join("; ");
        if let Err(e) = cx.actions.add_header(MONITOR_HEADER, value.as_str()).await {
            sh.log.warn(&format!("cannot add the {MONITOR_HEADER} header: {e}"));
        }
    }
    if !s.ours {
        return Status::Continue;
    }
    let rt = sh.runtime();
    if !batv::domain_of(&s.sender).is_some_and(|d| rt.settings.sign_domains.contains(d)) {
        return Status::Continue;
    }
    let log = |action: &str, reason: &str| sh.log.decision(queue.as_deref(), &s.sender, "-", action, reason);
    match rt.keys.sign(&s.sender, batv::now()) {
        Signing::Signed(tagged) => {
            let args = (!s.mail_args.is_empty()).then(|| s.mail_args.join(" "));
            match cx.actions.change_sender(format!("<{tagged}>"), args).await {
                Ok(()) => {
                    log("sign", &format!("sent as <{tagged}>"));
                    Status::Continue
                }
                Err(e) => {
                    // The bounces of an untagged message would be rejected: keep it queued
                    // at the client instead.
                    log("tempfail", &format!("cannot change the sender: {e}"));
                    set_reply(&mut cx.reply, SIGN_TEMPFAIL);
                    Status::Tempfail
                }
            }
        }
        Signing::Unchanged => Status::Continue,
        Signing::Unsignable(why) => {
            log("unsigned", &why);
            Status::Continue
        }
        Signing::KeyringError(e) => {
            log("tempfail", &e);
            set_reply(&mut cx.reply, SIGN_TEMPFAIL);
            Status::Tempfail
        }
    }
}

fn reset(cx: &mut Context<Session>) {
    if let Some(s) = cx.data.as_mut() {
        s.monitored.clear();
        s.old_headers = 0;
        s.ours = s.ours_by_connection;
    }
}

pub fn callbacks(sh: Arc<Shared>) -> Callbacks<Session> {
    let (a, b, c, d, e) = (sh.clone(), sh.clone(), sh.clone(), sh.clone(), sh);
    Callbacks::new()
        .on_negotiate(move |cx, acts, opts| {
            let sh = a.clone();
            Box::pin(async move { negotiate(&sh, cx, acts, opts).await })
        })
        .on_connect(move |cx, _host, info| {
            let sh = b.clone();
            Box::pin(async move { connect(&sh, cx, info).await })
        })
        .on_mail(move |cx, args| {
            let sh = c.clone();
            Box::pin(async move { mail(&sh, cx, args).await })
        })
        .on_rcpt(move |cx, args| {
            let sh = d.clone();
            Box::pin(async move { rcpt(&sh, cx, args).await })
        })
        .on_header(|cx, name, _value| Box::pin(header(cx, name)))
        .on_eom(move |cx| {
            let sh = e.clone();
            Box::pin(async move { eom(&sh, cx).await })
        })
        .on_abort(|cx| {
            reset(cx);
            Box::pin(async { Status::Continue })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LogTarget;
    use indymilter_test::{any, TestConnection};
    use std::os::unix::fs::PermissionsExt;
    use std::path::{Path, PathBuf};

    struct Milter {
        dir: PathBuf,
        sock: PathBuf,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
    }

    impl Drop for Milter {
        fn drop(&mut self) {
            if let Some(s) = self.stop.take() {
                let _ = s.send(());
            }
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// A milter on a unix socket in a fresh directory, with a keyring unless `keyring` is false.
    async fn milter(name: &str, extra: &str, keyring: bool) -> Milter {
        let dir = std::env::temp_dir().join(format!("batv-milter-mt-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let keys = dir.join("keys");
        if keyring {
            std::fs::write(&keys, "key 1 hmac-sha256 text:milter unit test key\n").unwrap();
            std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let sock = dir.join("milter.sock");
        let nets = if extra.contains("trusted_networks") { "" } else { "trusted_networks = [\"127.0.0.1/32\"]\n" };
        let toml = format!(
            "keyring = \"{}\"\nmilter_socket = \"unix:{}\"\nsign_domains = [\"example.test\"]\n\
             {nets}trusted_daemon_names = [\"ORIGINATING\"]\n\
             exempt = [\"carol@example.test\"]\nlog = \"stderr\"\n{extra}",
            keys.display(),
            sock.display()
        );
        let settings = Settings::parse(&toml).unwrap();
        let policy = crate::batv::policy(&settings.exempt, settings.bounce_local_parts.as_deref(), settings.monitor).unwrap();
        let (listener, file) = crate::listen::bind(&settings.milter_socket, 0o600, None).await.unwrap();
        let rt = Runtime { keys: Arc::new(Keys::new(&settings.keyring)), settings, policy };
        let shared = Arc::new(Shared { runtime: RwLock::new(Arc::new(rt)), log: Arc::new(Log::new(LogTarget::Stderr)) });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            let _file = file;
            // The framing the daemon serves with (main.rs), so that these tests go through it too.
            let _ = indymilter::run(listener.milter_packets(), callbacks(shared), Default::default(), rx).await;
        });
        Milter { dir, sock, stop: Some(tx) }
    }

    async fn open(path: &Path) -> TestConnection {
        TestConnection::configure().open_unix(path).await.unwrap()
    }

    fn reject_text(st: &indymilter_test::Status) -> String {
        match st {
            indymilter_test::Status::Reject { message: Some(m) } | indymilter_test::Status::Tempfail { message: Some(m) } => {
                m.to_string_lossy().into_owned()
            }
            other => format!("{other:?}"),
        }
    }

    use indymilter_test::Status as T;

    #[tokio::test]
    async fn bounce_rule_at_rcpt_for_outside_clients() {
        let m = milter("rcpt", "", true).await;
        let mut c = open(&m.sock).await;
        assert_eq!(c.connect("outside.example", [192, 0, 2, 7]).await.unwrap(), T::Noreply);
        assert_eq!(c.mail(["<>"]).await.unwrap(), T::Noreply);
        let st = c.rcpt(["<alice@example.test>"]).await.unwrap();
        assert!(reject_text(&st).starts_with("550 5.7.1 Bounce rejected"), "{st:?}");
        assert_eq!(c.rcpt(["<carol@example.test>"]).await.unwrap(), T::Continue, "exempt");
        assert_eq!(c.rcpt(["<bob@remote.example>"]).await.unwrap(), T::Continue, "not a verify domain");
        let st = c.rcpt(["<prvs=1000000000=alice@example.test>"]).await.unwrap();
        assert!(reject_text(&st).contains("invalid BATV signature"), "{st:?}");
        c.abort().await.unwrap();
        assert_eq!(c.mail(["<MAILER-DAEMON@remote.example>"]).await.unwrap(), T::Noreply);
        assert!(matches!(c.rcpt(["<alice@example.test>"]).await.unwrap(), T::Reject { .. }));
        c.abort().await.unwrap();
        assert_eq!(c.mail(["<someone@remote.example>"]).await.unwrap(), T::Noreply);
        assert_eq!(c.rcpt(["<alice@example.test>"]).await.unwrap(), T::Continue, "ordinary mail");
        let (actions, st) = c.eom().await.unwrap();
        assert_eq!(st, T::Continue);
        assert!(!actions.has_change_sender(any(), any()), "outside mail is never signed");
        c.close().await.unwrap();
    }

    async fn signed_sender(m: &Milter, addr: [u8; 4], connect_macros: &[(&str, &str)], mail_macros: &[(&str, &str)]) -> Option<(String, Option<String>)> {
        let mut c = open(&m.sock).await;
        if !connect_macros.is_empty() {
            c.macros(MacroStage::Connect, connect_macros.iter().copied()).await.unwrap();
        }
        assert_eq!(c.connect("client.example", addr).await.unwrap(), T::Noreply);
        if !mail_macros.is_empty() {
            c.macros(MacroStage::Mail, mail_macros.iter().copied()).await.unwrap();
        }
        assert_eq!(c.mail(["<alice@example.test>", "SIZE=120", "BODY=8BITMIME"]).await.unwrap(), T::Noreply);
        assert_eq!(c.rcpt(["<bob@remote.example>"]).await.unwrap(), T::Continue);
        // Headers are not asked for outside monitor mode.
        let (actions, st) = c.eom().await.unwrap();
        assert_eq!(st, T::Continue);
        c.close().await.unwrap();
        actions.actions.iter().find_map(|a| match a {
            indymilter_test::EomAction::ChangeSender { mail, args } => Some((
                mail.to_string_lossy().into_owned(),
                args.as_ref().map(|a| a.to_string_lossy().into_owned()),
            )),
            _ => None,
        })
    }

    fn is_tag_of_alice(s: &str) -> bool {
        s.starts_with("<prvs=1") && s.ends_with("=alice@example.test>") && s.len() == "<prvs=1000000000=alice@example.test>".len()
    }

    #[tokio::test]
    async fn which_sessions_are_signed() {
        let m = milter("sign", "", true).await;
        let (mail, args) = signed_sender(&m, [127, 0, 0, 1], &[], &[]).await.expect("trusted network signs");
        assert!(is_tag_of_alice(&mail), "{mail}");
        assert_eq!(args.as_deref(), Some("SIZE=120 BODY=8BITMIME"), "the ESMTP arguments are kept");
        assert!(signed_sender(&m, [192, 0, 2, 7], &[], &[]).await.is_none(), "an outside client is not signed");
        let d = signed_sender(&m, [192, 0, 2, 7], &[("{daemon_name}", "ORIGINATING")], &[]).await;
        assert!(d.is_some_and(|(m, _)| is_tag_of_alice(&m)), "a trusted daemon name signs");
        assert!(signed_sender(&m, [192, 0, 2, 7], &[("{daemon_name}", "mx")], &[]).await.is_none());
        let a = signed_sender(&m, [192, 0, 2, 7], &[], &[("{auth_authen}", "alice")]).await;
        assert!(a.is_some_and(|(m, _)| is_tag_of_alice(&m)), "an authenticated session signs");
        let m2 = milter("noauth", "sign_authenticated = false\n", true).await;
        assert!(signed_sender(&m2, [192, 0, 2, 7], &[], &[("{auth_authen}", "alice")]).await.is_none());
    }

    #[tokio::test]
    async fn unusable_keyring_tempfails_and_ours_is_never_rejected() {
        let m = milter("nokeys", "", false).await;
        let mut c = open(&m.sock).await;
        assert_eq!(c.connect("localhost", [127, 0, 0, 1]).await.unwrap(), T::Noreply);
        assert_eq!(c.mail(["<>"]).await.unwrap(), T::Noreply);
        assert_eq!(c.rcpt(["<alice@example.test>"]).await.unwrap(), T::Continue, "sendmail(1)/trusted: never rejected");
        c.abort().await.unwrap();
        assert_eq!(c.mail(["<alice@example.test>"]).await.unwrap(), T::Noreply);
        assert_eq!(c.rcpt(["<bob@remote.example>"]).await.unwrap(), T::Continue);
        let (actions, st) = c.eom().await.unwrap();
        assert!(reject_text(&st).starts_with("451 4.3.0"), "{st:?}");
        assert!(!actions.has_change_sender(any(), any()));
        c.close().await.unwrap();
        let mut c = open(&m.sock).await;
        c.connect("outside.example", [192, 0, 2, 7]).await.unwrap();
        c.mail(["<>"]).await.unwrap();
        let st = c.rcpt(["<alice@example.test>"]).await.unwrap();
        assert!(reject_text(&st).starts_with("451 4.3.0"), "an unusable keyring is 451, never 550: {st:?}");
        c.close().await.unwrap();
    }

    #[tokio::test]
    async fn monitor_mode_adds_one_header_and_removes_copies() {
        let m = milter("monitor", "monitor = true\n", true).await;
        let mut c = open(&m.sock).await;
        c.connect("outside.example", [192, 0, 2, 7]).await.unwrap();
        c.mail(["<>"]).await.unwrap();
        assert_eq!(c.rcpt(["<alice@example.test>"]).await.unwrap(), T::Continue);
        c.header("X-BATV", "forged one").await.unwrap();
        c.header("Subject", "hello").await.unwrap();
        c.header("x-batv", "forged two").await.unwrap();
        c.eoh().await.unwrap();
        let (actions, st) = c.eom().await.unwrap();
        assert_eq!(st, T::Continue);
        assert!(actions.has_delete_header("X-BATV", 1) && actions.has_delete_header("X-BATV", 2), "{actions:?}");
        assert!(actions.has_add_header("X-BATV", "would reject <alice@example.test>: untagged"), "{actions:?}");
        c.close().await.unwrap();
    }

    #[tokio::test]
    async fn hostile_packets_close_one_connection_only() {
        use tokio::io::AsyncWriteExt;
        let m = milter("hostile", "", true).await;
        for junk in [&b"\xff\xff\xff\xff"[..], b"\x00\x00\x00\x05Oabc", b"\x00\x00\x00\x00", b"\x00\x00\x00\x02Z\x00"] {
            let mut s = tokio::net::UnixStream::connect(&m.sock).await.unwrap();
            let _ = s.write_all(junk).await;
            drop(s);
        }
        // The daemon still serves.
        let mut c = open(&m.sock).await;
        c.connect("outside.example", [192, 0, 2, 7]).await.unwrap();
        c.mail(["<>"]).await.unwrap();
        assert!(matches!(c.rcpt(["<alice@example.test>"]).await.unwrap(), T::Reject { .. }));
        c.close().await.unwrap();
    }

    /// A unix socket in front of the milter that writes an IPv6 client's address in the
    /// connect packet the way Sendmail does (`IPv6:0:0:0:0:0:0:0:1`); everything else passes.
    async fn sendmail_form(m: &Milter) -> PathBuf {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let path = m.dir.join("sendmail-form.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let milter = m.sock.clone();
        tokio::spawn(async move {
            while let Ok((mta, _)) = listener.accept().await {
                let to_milter = tokio::net::UnixStream::connect(&milter).await.unwrap();
                let (mut mta_rd, mut mta_wr) = mta.into_split();
                let (mut m_rd, mut m_wr) = to_milter.into_split();
                tokio::spawn(async move { tokio::io::copy(&mut m_rd, &mut mta_wr).await });
                tokio::spawn(async move {
                    loop {
                        let mut len = [0u8; 4];
                        if mta_rd.read_exact(&mut len).await.is_err() {
                            return;
                        }
                        let mut body = vec![0u8; u32::from_be_bytes(len) as usize];
                        if mta_rd.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        if body.first() == Some(&b'C') {
                            let host_end = body.iter().position(|&b| b == 0).unwrap();
                            if body[host_end + 1] == b'6' {
                                let at = host_end + 4;
                                let addr: std::net::Ipv6Addr = std::str::from_utf8(&body[at..body.len() - 1]).unwrap().parse().unwrap();
                                // Sendmail's uncompressed form, after its literal prefix.
                                let s = addr.segments().map(|g| format!("{g:x}")).join(":");
                                body.truncate(at);
                                body.extend_from_slice(format!("IPv6:{s}\0").as_bytes());
                            }
                        }
                        let mut out = (body.len() as u32).to_be_bytes().to_vec();
                        out.extend_from_slice(&body);
                        if m_wr.write_all(&out).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        path
    }

    /// Sendmail's IPv6 clients: the connect packet and `{client_addr}` say `IPv6:...`.
    #[tokio::test]
    async fn sendmail_ipv6_clients() {
        let m = milter("ipv6", "trusted_networks = [\"::1/128\", \"2001:db8:1::/48\"]\n", true).await;
        let front = sendmail_form(&m).await;
        for (addr, trusted) in [([0, 0, 0, 0, 0, 0, 0, 1], true), ([0x2001, 0xdb8, 1, 0, 0, 0, 0, 7], true), ([0x2001, 0xdb8, 2, 0, 0, 0, 0, 7], false)] {
            let mut c = open(&front).await;
            assert_eq!(c.connect("[IPv6:...]", addr).await.unwrap(), T::Noreply, "{addr:x?}");
            c.mail(["<alice@example.test>"]).await.unwrap();
            assert_eq!(c.rcpt(["<bob@remote.example>"]).await.unwrap(), T::Continue);
            let (actions, st) = c.eom().await.unwrap();
            assert_eq!(st, T::Continue);
            assert_eq!(actions.has_change_sender(any(), any()), trusted, "{addr:x?}: signed only when trusted");
            c.close().await.unwrap();
        }
        // And the session goes on: an outside IPv6 client's bounce is judged, not tempfailed.
        let mut c = open(&front).await;
        c.connect("[IPv6:...]", [0x2001, 0xdb8, 2, 0, 0, 0, 0, 7]).await.unwrap();
        c.mail(["<>"]).await.unwrap();
        let st = c.rcpt(["<alice@example.test>"]).await.unwrap();
        assert!(reject_text(&st).starts_with("550 5.7.1"), "{st:?}");
        c.close().await.unwrap();
        // With no address in the connect packet, the {client_addr} macro in Sendmail's form.
        for (value, trusted) in [("IPv6:0:0:0:0:0:0:0:1", true), ("ipv6:2001:db8:1::9", true), ("IPv6:2001:db8:2::9", false), ("IPv6:", false)] {
            let mut c = open(&m.sock).await;
            c.macros(MacroStage::Connect, [("{client_addr}", value)]).await.unwrap();
            c.connect("localhost", SocketInfo::Unknown).await.unwrap();
            c.mail(["<alice@example.test>"]).await.unwrap();
            c.rcpt(["<bob@remote.example>"]).await.unwrap();
            let (actions, _) = c.eom().await.unwrap();
            assert_eq!(actions.has_change_sender(any(), any()), trusted, "{value}");
            c.close().await.unwrap();
        }
    }

    /// Sendmail's `{rcpt_addr}` is the address after its rules (the socket map took the tag
    /// off): the bounce rule judges the RCPT argument, as the client wrote it.
    #[tokio::test]
    async fn the_rcpt_argument_not_rcpt_addr() {
        let m = milter("rcptaddr", "verify_domains = [\"example.test\", \"relay.example\"]\n", true).await;
        let mut c = open(&m.sock).await;
        c.connect("outside.example", [192, 0, 2, 7]).await.unwrap();
        c.mail(["<>"]).await.unwrap();
        c.macros(MacroStage::Rcpt, [("{rcpt_addr}", "alice@relay.example"), ("{rcpt_mailer}", "relay")]).await.unwrap();
        let st = c.rcpt(["<prvs=1000000000=alice@relay.example>"]).await.unwrap();
        assert!(reject_text(&st).contains("invalid BATV signature"), "{st:?}");
        c.close().await.unwrap();
    }

    #[test]
    fn client_addresses() {
        assert_eq!(client_ip("127.0.0.1"), Some([127, 0, 0, 1].into()));
        assert_eq!(client_ip("IPv6:0:0:0:0:0:0:0:1"), Some("::1".parse().unwrap()));
        assert_eq!(client_ip("IPV6:::ffff:192.0.2.1"), Some("::ffff:192.0.2.1".parse().unwrap()));
        assert_eq!(client_ip("2001:db8::1"), Some("2001:db8::1".parse().unwrap()));
        for bad in ["", "IPv6:", "IPv6:127.0.0.1x", "[127.0.0.1]", "localhost", "IPv6"] {
            assert_eq!(client_ip(bad), None, "{bad}");
        }
    }

    #[test]
    fn replies_split() {
        assert_eq!(
            split_reply("550 5.7.1 Bounce rejected: invalid BATV signature"),
            ("550", Some("5.7.1"), "Bounce rejected: invalid BATV signature")
        );
        assert_eq!(split_reply(KEYRING_TEMPFAIL).1, Some("4.3.0"));
        assert_eq!(split_reply("451 try later"), ("451", None, "try later"));
    }
}
