//! `batv-milter`: BATV for Postfix (and Sendmail) as a milter plus a socketmap table, a thin
//! face on batv-core. See docs/postfix.md and docs/scheme.md.

#![forbid(unsafe_code)]

mod batv;
mod config;
mod listen;
mod log;
mod milter;
mod socketmap;

use clap::{CommandFactory, Parser};
use config::Settings;
use log::Log;
use milter::{Runtime, Shared};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::signal::unix::{signal, SignalKind};

/// BATV (prvs=) bounce address tags for Postfix and Sendmail: signs the envelope sender of
/// outgoing mail, rejects bounces to untagged or forged addresses at RCPT, and serves a
/// socketmap table that maps tagged addresses to their mailbox.
#[derive(Parser, Debug)]
#[command(name = "batv-milter", version, about, long_about = None, after_help = "\
The configuration is a TOML file; docs/postfix.md in the batv sources describes every setting \
and a complete Postfix configuration. SIGHUP reloads the file (the sockets and the log target \
are kept); a changed keyring file is picked up by itself within a second.")]
struct Cli {
    /// The configuration file.
    #[arg(long, short = 'c', value_name = "FILE", default_value = config::DEFAULT_CONFIG)]
    config: PathBuf,

    /// Validate the configuration and the keyring, print the effective settings (never a
    /// secret) and exit: 0 when usable, 78 when not.
    #[arg(long)]
    check_config: bool,

    /// Print the batv-milter(8) man page (roff) and exit.
    #[arg(long, hide = true)]
    print_man: bool,
}

/// sysexits' EX_CONFIG: the configuration cannot be used.
const EX_CONFIG: u8 = 78;

fn runtime_from(settings: Settings, keys: Option<Arc<batv::Keys>>) -> Result<Runtime, String> {
    let policy = batv::policy(&settings.exempt, settings.bounce_local_parts.as_deref(), settings.monitor)?;
    let keys = match keys {
        Some(k) if k.path() == settings.keyring => k,
        _ => Arc::new(batv::Keys::new(&settings.keyring)),
    };
    Ok(Runtime { settings, policy, keys })
}

fn check_config(path: &Path) -> ExitCode {
    let settings = match Settings::load(path) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("batv-milter: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    print!("# batv-milter: effective settings from {}\n{settings}", path.display());
    let keys = batv::Keys::new(&settings.keyring);
    match keys.check() {
        Ok(()) => {
            println!("# the keyring loads");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("batv-milter: {e}");
            ExitCode::from(EX_CONFIG)
        }
    }
}

fn print_man() -> ExitCode {
    let man = clap_mangen::Man::new(Cli::command()).section("8");
    let mut out = Vec::new();
    if let Err(e) = man.render(&mut out) {
        eprintln!("batv-milter: cannot render the man page: {e}");
        return ExitCode::FAILURE;
    }
    use std::io::Write;
    let _ = std::io::stdout().write_all(&out);
    ExitCode::SUCCESS
}

/// Raises the soft file-descriptor limit to the hard one: every milter and socketmap client
/// holds one, and running out would refuse Postfix's connections.
fn raise_fd_limit(log: &Log, wanted: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) => {
            if soft < hard {
                let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
            }
            let now = getrlimit(Resource::RLIMIT_NOFILE).map(|l| l.0).unwrap_or(soft);
            if now < wanted {
                log.warn(&format!(
                    "the open-file limit is {now}, below the {wanted} that max_connections needs; raise LimitNOFILE"
                ));
            }
        }
        Err(e) => log.warn(&format!("cannot read the open-file limit: {e}")),
    }
}

async fn run(cli: Cli) -> ExitCode {
    let settings = match Settings::load(&cli.config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("batv-milter: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let log = Arc::new(Log::new(settings.log));
    let rt = match runtime_from(settings, None) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("batv-milter: {}: {e}", cli.config.display());
            return ExitCode::from(EX_CONFIG);
        }
    };
    // A broken keyring does not stop the daemon: it tempfails what needs keys until fixed.
    if let Err(e) = rt.keys.check() {
        log.error(&format!("{e}; mail that needs the keyring is tempfailed until it is fixed"));
    }
    let s = rt.settings.clone();
    raise_fd_limit(&log, (2 * s.max_connections + 64) as u64);
    let group = match s.socket_group.as_deref().map(listen::group_id).transpose() {
        Ok(g) => g,
        Err(e) => {
            eprintln!("batv-milter: {}: {e}", cli.config.display());
            return ExitCode::from(EX_CONFIG);
        }
    };
    let (milter_listener, _milter_file) = match listen::bind(&s.milter_socket, s.socket_mode, group).await {
        Ok(l) => l,
        Err(e) => {
            log.error(&e);
            return ExitCode::FAILURE;
        }
    };
    let shared = Arc::new(Shared { runtime: RwLock::new(Arc::new(rt)), log: log.clone() });
    let idle = Duration::from_secs(s.idle_timeout_seconds);
    let mut _socketmap_file = None;
    if let Some(spec) = &s.socketmap_socket {
        match listen::bind(spec, s.socket_mode, group).await {
            Ok((l, file)) => {
                _socketmap_file = file;
                let sh = shared.clone();
                // The socketmap follows the keyring and policy of the current runtime.
                let keys_now = move || sh.runtime();
                let l = l.with_log(log.clone()).with_limit(s.max_connections, listen::FIRST_BYTE_DEADLINE);
                tokio::spawn(socketmap::serve(l, keys_now, log.clone(), idle));
            }
            Err(e) => {
                log.error(&e);
                return ExitCode::FAILURE;
            }
        }
    }
    tokio::spawn(reload_on_hup(cli.config.clone(), shared.clone()));
    let config = indymilter::Config {
        // The listener enforces max_connections (closing what is over it at once); this
        // limit only stops indymilter from waiting on its own.
        max_connections: s.max_connections + 1,
        connection_timeout: idle,
        ..Default::default()
    };
    log.info(&format!(
        "started: milter on {}, socketmap on {}",
        s.milter_socket,
        s.socketmap_socket.as_ref().map_or("(none)".to_string(), |m| m.to_string())
    ));
    let shutdown = async {
        let mut term = signal(SignalKind::terminate()).ok();
        let mut int = signal(SignalKind::interrupt()).ok();
        tokio::select! {
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
            _ = async { match int.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
        }
    };
    let result = indymilter::run(
        milter_listener
            .with_log(log.clone())
            .with_limit(s.max_connections, listen::FIRST_BYTE_DEADLINE)
            .milter_packets(), milter::callbacks(shared), config, shutdown).await;
    match result {
        Ok(()) => {
            log.info("stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            log.error(&format!("the milter stopped: {e}"));
            ExitCode::FAILURE
        }
    }
}

/// SIGHUP: read the file again. The sockets and the log target cannot change without a
/// restart; a change there is warned about and the old value kept.
async fn reload_on_hup(path: PathBuf, shared: Arc<Shared>) {
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        shared.log.warn("cannot catch SIGHUP; reloading is not available");
        return;
    };
    while hup.recv().await.is_some() {
        let old = shared.runtime();
        let mut new = match Settings::load(&path) {
            Ok(s) => s,
            Err(e) => {
                shared.log.error(&format!("reload: {e}; keeping the running configuration"));
                continue;
            }
        };
        let o = &old.settings;
        let fixed = [
            ("milter_socket", new.milter_socket != o.milter_socket),
            ("socketmap_socket", new.socketmap_socket != o.socketmap_socket),
            ("socket_mode", new.socket_mode != o.socket_mode),
            ("socket_group", new.socket_group != o.socket_group),
            ("log", new.log != o.log),
            ("max_connections", new.max_connections != o.max_connections),
            ("idle_timeout_seconds", new.idle_timeout_seconds != o.idle_timeout_seconds),
        ];
        for (name, changed) in fixed {
            if changed {
                shared.log.warn(&format!("reload: {name} changes only with a restart; keeping the old value"));
            }
        }
        new.milter_socket = o.milter_socket.clone();
        new.socketmap_socket = o.socketmap_socket.clone();
        new.socket_mode = o.socket_mode;
        new.socket_group = o.socket_group.clone();
        new.log = o.log;
        new.max_connections = o.max_connections;
        new.idle_timeout_seconds = o.idle_timeout_seconds;
        match runtime_from(new, Some(old.keys.clone())) {
            Ok(rt) => {
                if let Err(e) = rt.keys.check() {
                    shared.log.error(&format!("reload: {e}"));
                }
                *shared.runtime.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rt);
                shared.log.info(&format!("reloaded {}", path.display()));
            }
            Err(e) => shared.log.error(&format!("reload: {e}; keeping the running configuration")),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.print_man {
        return print_man();
    }
    if cli.check_config {
        return check_config(&cli.config);
    }
    match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt.block_on(run(cli)),
        Err(e) => {
            eprintln!("batv-milter: cannot start the runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_is_consistent_and_has_a_man_page() {
        Cli::command().debug_assert();
        let mut out = Vec::new();
        clap_mangen::Man::new(Cli::command()).section("8").render(&mut out).unwrap();
        let man = String::from_utf8(out).unwrap();
        assert!(man.contains(".TH batv-milter 8") && man.contains("check\\-config"), "{man}");
        assert!(!man.contains("print\\-man"), "the hidden flag stays out of the page");
    }
}
