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
    let subject = header_text(subject);
    Some(format!(
        "From: {}\nTo: {to}\nSubject: {subject}\nMIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\
         Auto-Submitted: auto-generated\n\n{body}",
        n.from
    ))
}

/// A header value as mail headers must carry it: ASCII as it is, anything else (a Japanese
/// subject) as RFC 2047 encoded words (`=?UTF-8?B?...?=`) of at most 75 characters each, cut
/// between characters and folded onto continuation lines.
fn header_text(text: &str) -> String {
    use base64ct::{Base64, Encoding};
    if text.is_ascii() {
        return text.to_owned();
    }
    // 45 bytes of UTF-8 are 60 of base64; with `=?UTF-8?B?` and `?=` a word is 72.
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    words.push(chunk);
    words
        .iter()
        .map(|w| format!("=?UTF-8?B?{}?=", Base64::encode_string(w.as_bytes())))
        .collect::<Vec<_>>()
        .join("\n ")
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
    fn non_ascii_subjects_are_encoded_words() {
        use base64ct::{Base64, Encoding};
        assert_eq!(header_text("App password deleted"), "App password deleted");
        let subject = crate::strings::JA.mail_created_subject;
        let encoded = header_text(subject);
        assert!(encoded.is_ascii(), "{encoded}");
        let mut decoded = Vec::new();
        for word in encoded.split("\n ") {
            assert!(word.len() <= 75, "{word}");
            let b64 = word
                .strip_prefix("=?UTF-8?B?")
                .and_then(|w| w.strip_suffix("?="))
                .unwrap();
            decoded.extend(Base64::decode_vec(b64).unwrap());
        }
        assert!(
            encoded.contains("\n "),
            "a long subject is folded: {encoded}"
        );
        assert_eq!(String::from_utf8(decoded).unwrap(), subject);
        let m = message(
            &notify(),
            &crate::strings::JA,
            Change::Deleted,
            "alice",
            "iPhone",
            "2026-01-01T00:00:00Z",
            "203.0.113.9",
        )
        .unwrap();
        let (headers, body) = m.split_once("\n\n").unwrap();
        assert!(headers.is_ascii(), "{headers}");
        assert!(body.contains("「iPhone」"), "{body}");
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
