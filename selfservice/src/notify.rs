//! Optional e-mail to the user after a create or delete, through `sendmail -t -oi`.
//!
//! Sent from a background thread so that a slow mail system never holds up the page; a
//! failure is logged, never shown to the user.

use crate::strings::{Strings, fill};
use crate::webconfig::Notify;
use std::io::Write;
use std::process::{Command, Stdio};

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// An app password was created.
    Created,
    /// An app password was deleted.
    Deleted,
}

/// A recipient address is used only if it is plainly an address (the user name is put into
/// the configured template, and must not add recipients or headers).
fn plain_address(addr: &str) -> bool {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b"._%+-@".contains(&b);
    addr.len() <= 254 && addr.bytes().all(ok) && addr.bytes().filter(|&b| b == b'@').count() == 1
}

/// The message text (headers and body), or `None` if the address is unusable.
#[must_use]
pub fn message(
    n: &Notify,
    s: &Strings,
    change: Change,
    user: &str,
    label: &str,
    time: &str,
    ip: &str,
) -> Option<String> {
    let to = n.to.replace("{user}", user);
    if !plain_address(&to) {
        return None;
    }
    let (subject, body) = match change {
        Change::Created => (s.mail_created_subject, s.mail_created_body),
        Change::Deleted => (s.mail_deleted_subject, s.mail_deleted_body),
    };
    // Labels have no control characters (checked at creation), so they cannot break out of
    // the body; the subject is a fixed text.
    let body = fill(
        body,
        &[("user", user), ("label", label), ("time", time), ("ip", ip)],
    );
    Some(format!(
        "From: {}\nTo: {to}\nSubject: {subject}\nMIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\
         Auto-Submitted: auto-generated\n\n{body}",
        n.from
    ))
}

/// Sends `text` with the configured sendmail, in the background.
pub fn send(n: &Notify, text: String, user: String) {
    let sendmail = n.sendmail.clone();
    let spawned = std::thread::Builder::new()
        .name("sendmail".into())
        .spawn(move || {
            let result = Command::new(&sendmail)
                .args(["-t", "-oi"])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .and_then(|mut child| {
                    if let Some(mut stdin) = child.stdin.take() {
                        stdin.write_all(text.as_bytes())?;
                    }
                    child.wait_with_output()
                });
            let problem = match result {
                Ok(out) if out.status.success() => None,
                Ok(out) => Some(format!(
                    "{} exited with {}: {}",
                    sendmail.display(),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                )),
                Err(e) => Some(format!("cannot run {}: {e}", sendmail.display())),
            };
            if let Some(p) = problem {
                crate::audit::problem(&format!("notification to {user} not sent: {p}"));
            }
        });
    if spawned.is_err() {
        crate::audit::problem("cannot start the notification thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn notify() -> Notify {
        Notify {
            sendmail: PathBuf::from("/usr/sbin/sendmail"),
            from: "App passwords <noreply@example.org>".into(),
            to: "{user}@example.org".into(),
        }
    }

    #[test]
    fn message_has_headers_and_the_label() {
        let m = message(
            &notify(),
            &crate::strings::EN,
            Change::Created,
            "alice",
            "iPhone",
            "2026-01-01T00:00:00Z",
            "203.0.113.9",
        )
        .unwrap();
        assert!(
            m.starts_with("From: App passwords <noreply@example.org>\nTo: alice@example.org\n")
        );
        assert!(m.contains("\n\nHello alice,"));
        assert!(m.contains("\"iPhone\""));
    }

    #[test]
    fn user_names_cannot_add_recipients() {
        for user in ["a,b", "a b", "a\nBcc: x", "a@b"] {
            assert!(
                message(
                    &notify(),
                    &crate::strings::EN,
                    Change::Deleted,
                    user,
                    "x",
                    "t",
                    "ip"
                )
                .is_none(),
                "{user}"
            );
        }
    }
}
