//! Log lines: one per decision, to syslog (facility `mail`) or to stderr. Never a secret: the
//! daemon only ever logs addresses, words of the core, and the core's keyring errors, which
//! name the file and line but not a key.

use crate::config::LogTarget;
use std::io::Write;
use std::sync::Mutex;
use syslog::{Facility, Formatter3164, Logger, LoggerBackend};

pub struct Log {
    target: LogTarget,
    syslog: Mutex<Option<Logger<LoggerBackend, Formatter3164>>>,
}

#[derive(Clone, Copy)]
enum Level {
    Info,
    Warn,
    Error,
}

/// Control characters in an address become `?`, so a line stays one line.
fn clean(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { '?' } else { c }).collect()
}

impl Log {
    pub fn new(target: LogTarget) -> Log {
        Log { target, syslog: Mutex::new(None) }
    }

    fn connect() -> Option<Logger<LoggerBackend, Formatter3164>> {
        let f = Formatter3164 {
            facility: Facility::LOG_MAIL,
            hostname: None,
            process: "batv-milter".into(),
            pid: std::process::id(),
        };
        syslog::unix(f).ok()
    }

    fn line(&self, level: Level, msg: &str) {
        let msg = clean(msg);
        if self.target == LogTarget::Syslog {
            let mut guard = self.syslog.lock().unwrap_or_else(|p| p.into_inner());
            // Reconnect once when syslogd went away (it may have been restarted).
            for _ in 0..2 {
                if guard.is_none() {
                    *guard = Log::connect();
                }
                let Some(logger) = guard.as_mut() else { break };
                let sent = match level {
                    Level::Info => logger.info(&msg),
                    Level::Warn => logger.warning(&msg),
                    Level::Error => logger.err(&msg),
                };
                if sent.is_ok() {
                    return;
                }
                *guard = None;
            }
            // No syslog to be had: stderr rather than nothing.
        }
        let word = match level {
            Level::Info => "info",
            Level::Warn => "warning",
            Level::Error => "error",
        };
        let _ = writeln!(std::io::stderr().lock(), "batv-milter: {word}: {msg}");
    }

    pub fn info(&self, msg: &str) {
        self.line(Level::Info, msg)
    }

    pub fn warn(&self, msg: &str) {
        self.line(Level::Warn, msg)
    }

    pub fn error(&self, msg: &str) {
        self.line(Level::Error, msg)
    }

    /// One decision: queue id (when known), sender, recipient, action, reason.
    pub fn decision(&self, queue_id: Option<&str>, sender: &str, recipient: &str, action: &str, reason: &str) {
        self.info(&decision_line(queue_id, sender, recipient, action, reason));
    }
}

pub fn decision_line(queue_id: Option<&str>, sender: &str, recipient: &str, action: &str, reason: &str) -> String {
    format!(
        "{}: from=<{}> to=<{}> action={} reason={}",
        queue_id.filter(|q| !q.is_empty()).unwrap_or("NOQUEUE"),
        sender,
        recipient,
        action,
        reason
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_decision() {
        let l = decision_line(Some("4XyZ1"), "", "alice@example.test", "reject", "untagged");
        assert_eq!(l, "4XyZ1: from=<> to=<alice@example.test> action=reject reason=untagged");
        let l = decision_line(None, "a@b", "c@d", "sign", "signed");
        assert!(l.starts_with("NOQUEUE: "), "{l}");
        assert_eq!(clean("a\r\nb"), "a??b");
    }
}
