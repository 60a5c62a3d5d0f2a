//! Optional e-mail to the user after a create or delete, submitted over SMTP to the local MTA
//! (or a relay) with `lettre`.
//!
//! SMTP rather than `sendmail`: Postfix's `sendmail` needs the setgid `postdrop` helper, which
//! the hardened unit (`NoNewPrivileges`) cannot run. lettre writes the headers as mail needs
//! them: a non-ASCII display name or subject as RFC 2047 encoded words, `Date`, and the
//! `Message-ID` set here (msmtp and nullmailer add neither).
//!
//! The texts are the catalogue's `mail-*` messages in the language of the page the change was
//! made on, with the time in the site's zone; an administrator changes them like any text
//! (`[site] locales`). Sent from a background thread so that a slow mail system never holds up
//! the page; a failure is logged by class, never shown to the user.

use crate::i18n::Tr;
use crate::webconfig::Notify;
use fluent_templates::fluent_bundle::FluentValue;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::{SmtpTransport, Transport};
use std::time::Duration;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// An app password was created.
    Created,
    /// An app password was deleted.
    Deleted,
}

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

/// A recipient address is used only if it is plainly an address (the user name is put into
/// the configured template, and must not add recipients or headers).
fn plain_address(addr: &str) -> bool {
    let ok = |b: u8| b.is_ascii_alphanumeric() || b"._%+-@".contains(&b);
    addr.len() <= 254 && addr.bytes().all(ok) && addr.bytes().filter(|&b| b == b'@').count() == 1
}

/// A fresh `Message-ID` in the sender's domain.
fn message_id(from: &Mailbox) -> Option<String> {
    let token = crate::session::random_token()?;
    Some(format!(
        "<{}.apppw-web@{}>",
        &token[..32],
        from.email.domain()
    ))
}

/// The message, or `None` if the recipient is not a plain address (or no random numbers).
#[must_use]
pub fn message(
    n: &Notify,
    tr: &Tr<'_>,
    change: Change,
    user: &str,
    label: &str,
    at: i64,
    ip: &str,
) -> Option<Message> {
    let to = n.to.replace("{user}", user);
    if !plain_address(&to) {
        return None;
    }
    let to: Mailbox = to.parse().ok()?;
    let (subject, body) = match change {
        Change::Created => ("mail-created-subject", "mail-created-body"),
        Change::Deleted => ("mail-deleted-subject", "mail-deleted-body"),
    };
    let time = tr.when(at);
    let args = [
        ("user", FluentValue::from(user)),
        ("label", FluentValue::from(label)),
        ("time", FluentValue::from(time.as_str())),
        ("ip", FluentValue::from(ip)),
    ];
    let mut text = tr.ta(body, &args);
    if !text.ends_with('\n') {
        text.push('\n');
    }
    Message::builder()
        .from(n.from.clone())
        .to(to)
        .subject(tr.ta(subject, &args))
        .date_now()
        .message_id(Some(message_id(&n.from)?))
        .header(ContentType::TEXT_PLAIN)
        .header(AutoSubmitted)
        .body(text)
        .ok()
}

/// `Auto-Submitted: auto-generated` (RFC 3834): no vacation replies to a notification.
#[derive(Clone)]
struct AutoSubmitted;

impl lettre::message::header::Header for AutoSubmitted {
    fn name() -> lettre::message::header::HeaderName {
        lettre::message::header::HeaderName::new_from_ascii_str("Auto-Submitted")
    }

    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(AutoSubmitted)
    }

    fn display(&self) -> lettre::message::header::HeaderValue {
        lettre::message::header::HeaderValue::new(Self::name(), "auto-generated".to_owned())
    }
}

/// What kind of failure, for the log line (vaultwarden logs SMTP failures by class too).
fn class(e: &lettre::transport::smtp::Error) -> &'static str {
    if e.is_permanent() {
        "refused by the server (permanent)"
    } else if e.is_transient() {
        "refused by the server for now (transient)"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_client() {
        "not understood by the server"
    } else {
        "connection failed"
    }
}

/// Sends `message` in the background.
pub fn send(n: &Notify, message: Message, user: String) {
    let host = n.smtp_host.clone();
    let port = n.smtp_port;
    let spawned = std::thread::Builder::new()
        .name("mail".into())
        .spawn(move || {
            // Plain SMTP to the MTA: it does the onward delivery (and TLS to other hosts).
            let transport = SmtpTransport::builder_dangerous(host.as_str())
                .port(port)
                .timeout(Some(SMTP_TIMEOUT))
                .build();
            if let Err(e) = transport.send(&message) {
                crate::audit::problem(&format!(
                    "notification to user {} not sent: SMTP {host}:{port} {}: {e}",
                    apppw::audit::escape(&user),
                    class(&e)
                ));
            }
        });
    if spawned.is_err() {
        crate::audit::problem("cannot start the notification thread");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::i18n::Catalogue;

    fn notify(from: &str) -> Notify {
        Notify {
            smtp_host: "localhost".into(),
            smtp_port: 25,
            from: from.parse().unwrap(),
            to: "{user}@example.org".into(),
        }
    }

    fn text(n: &Notify, lang: &str, change: Change, user: &str) -> Option<String> {
        let c = Catalogue::load(None, "en").unwrap();
        let lang = lang.parse().unwrap();
        let tz = jiff::tz::TimeZone::get("Asia/Tokyo").unwrap();
        let tr = Tr::new(&c, &lang, &tz);
        let m = message(n, &tr, change, user, "iPhone", 1_796_132_340, "203.0.113.9")?;
        Some(String::from_utf8(m.formatted()).unwrap())
    }

    #[test]
    fn japanese_mail_has_encoded_headers_date_message_id_and_local_time() {
        let m = text(
            &notify("アプリパスワード <noreply@example.org>"),
            "ja",
            Change::Created,
            "alice",
        )
        .unwrap();
        let (headers, body) = m.split_once("\r\n\r\n").unwrap();
        assert!(headers.is_ascii(), "{headers}");
        assert!(headers.contains("From: =?utf-8?b?"), "{headers}");
        assert!(headers.contains("Subject: =?utf-8?b?"), "{headers}");
        assert!(headers.contains("\r\nDate: "), "{headers}");
        assert!(
            headers.contains("\r\nMessage-ID: <") && headers.contains(".apppw-web@example.org>"),
            "{headers}"
        );
        assert!(
            headers.contains("Auto-Submitted: auto-generated"),
            "{headers}"
        );
        assert!(headers.contains("To: alice@example.org"), "{headers}");
        assert!(
            headers.contains("Content-Type: text/plain; charset=utf-8"),
            "{headers}"
        );
        // The body may be base64 or quoted-printable: decode through lettre's own view.
        let body = decoded(body, headers);
        assert!(body.contains("2026年12月1日 22:39 JST"), "{body}");
        assert!(body.contains("「iPhone」"), "{body}");
        assert!(!body.contains('Z'), "no raw RFC 3339 time: {body}");
    }

    fn decoded(body: &str, headers: &str) -> String {
        use base64ct::{Base64, Encoding};
        if headers.contains("Content-Transfer-Encoding: base64") {
            let clean: String = body.split_whitespace().collect();
            String::from_utf8(Base64::decode_vec(&clean).unwrap()).unwrap()
        } else if headers.contains("Content-Transfer-Encoding: quoted-printable") {
            let joined = body.replace("=\r\n", "").replace("\r\n", "\n");
            let mut out = Vec::new();
            let b = joined.as_bytes();
            let mut i = 0;
            while i < b.len() {
                if b[i] == b'=' {
                    out.push(u8::from_str_radix(&joined[i + 1..i + 3], 16).unwrap());
                    i += 3;
                } else {
                    out.push(b[i]);
                    i += 1;
                }
            }
            String::from_utf8(out).unwrap()
        } else {
            body.to_owned()
        }
    }

    #[test]
    fn english_mail_names_the_label_and_time() {
        let m = text(
            &notify("noreply@example.org"),
            "en",
            Change::Deleted,
            "alice",
        )
        .unwrap();
        let (headers, body) = m.split_once("\r\n\r\n").unwrap();
        let body = decoded(body, headers);
        assert!(
            headers.contains("Subject: App password deleted"),
            "{headers}"
        );
        assert!(
            body.starts_with("Hello alice,\n\nthe app password named “iPhone”"),
            "{body}"
        );
        assert!(
            body.contains("1 December 2026, 22:39 JST (from 203.0.113.9)"),
            "{body}"
        );
    }

    #[test]
    fn user_names_cannot_add_recipients() {
        for user in ["a,b", "a b", "a\nBcc: x", "a@b", "a>b"] {
            assert!(
                text(&notify("noreply@example.org"), "en", Change::Deleted, user).is_none(),
                "{user}"
            );
        }
    }
}
