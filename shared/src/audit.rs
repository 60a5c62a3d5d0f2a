//! One syslog line per decision, facility `authpriv`.
//!
//! ```text
//! pam_apppw(imap:auth): service=imap user=alice rhost=203.0.113.9 result=accepted reason=app-password label=phone
//! ```
//!
//! Fields are `key=value` with no spaces inside values: user names, addresses and labels are
//! escaped (`\xNN` for anything outside printable ASCII, and for space, `"`, `\` and `=`) and
//! bounded, so a user name cannot forge a second line or field. Passwords and hashes are never
//! passed here.
//!
//! The admin CLI writes one line per change, naming who made it ([`Admin`]):
//!
//! ```text
//! apppw(create): admin=carol uid=0 user=alice label=phone id=7 expires=- services=-
//! ```

use std::fmt::Write as _;

/// Longest escaped value written (longer ones end in `...`).
pub const MAX_FIELD: usize = 128;

/// Escapes and bounds one field value.
#[must_use]
pub fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len().min(MAX_FIELD));
    for b in value.bytes() {
        let piece_len = if b.is_ascii_graphic() && !b"\"\\=".contains(&b) {
            1
        } else {
            4
        };
        if out.len() + piece_len > MAX_FIELD {
            out.push_str("...");
            return out;
        }
        if piece_len == 1 {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    if out.is_empty() {
        out.push('-');
    }
    out
}

/// A decision to log.
#[derive(Debug, Clone, Copy)]
pub struct Event<'a> {
    /// Service (PAM service or Dovecot's SERVICE).
    pub service: Option<&'a str>,
    /// User as given.
    pub user: &'a str,
    /// Client address as given.
    pub rhost: Option<&'a str>,
    /// `accepted`, `refused`, `continue` (on campus, the normal password is tried next) or
    /// `tempfail`.
    pub result: &'a str,
    /// Why (e.g. `app-password`, `primary-on-campus`, `no-match`).
    pub reason: &'a str,
    /// Label of the app password that matched.
    pub label: Option<&'a str>,
    /// Extra detail (e.g. a database error), escaped like the rest.
    pub detail: Option<&'a str>,
}

impl Event<'_> {
    /// The line without the syslog header.
    #[must_use]
    pub fn line(&self) -> String {
        let mut s = format!(
            "service={} user={} rhost={} result={} reason={}",
            escape(self.service.unwrap_or("")),
            escape(self.user),
            escape(self.rhost.unwrap_or("")),
            escape(self.result),
            escape(self.reason),
        );
        if let Some(label) = self.label {
            let _ = write!(s, " label={}", escape(label));
        }
        if let Some(detail) = self.detail {
            let _ = write!(s, " detail={}", escape(detail));
        }
        s
    }
}

/// Sends `prefix: line` to syslog (authpriv, info for success, notice otherwise). Never fails
/// the caller: if syslog is unreachable the line is dropped.
pub fn log(prefix: &str, event: &Event<'_>) {
    let message = format!("{prefix}: {}", event.line());
    send(
        &message,
        event.result == "accepted" || event.result == "continue",
    );
}

/// Sends a free-form warning (configuration problems and the like) to syslog.
pub fn warn(prefix: &str, message: &str) {
    let mut bounded = String::new();
    for c in message.chars().take(512) {
        bounded.push(if c.is_control() { ' ' } else { c });
    }
    send(&format!("{prefix}: {bounded}"), false);
}

/// Who runs an admin command: the admin behind sudo (`SUDO_USER`), else the real user, and
/// always the real uid the kernel reports (so a `SUDO_USER` set by hand does not hide who it
/// was).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Admin {
    /// `SUDO_USER`, else the login name of `uid`, else `uid N`.
    pub name: String,
    /// The real user id of the process.
    pub uid: u32,
}

impl Admin {
    /// The admin running this process.
    #[must_use]
    pub fn current() -> Admin {
        let uid = crate::sys::uid();
        let sudo = std::env::var("SUDO_USER").ok().filter(|s| !s.is_empty());
        let name = sudo
            .or_else(|| crate::sys::user_name(uid))
            .unwrap_or_else(|| format!("uid {uid}"));
        Admin { name, uid }
    }
}

/// The line of an admin action (without the syslog header): `apppw(ACTION): admin=NAME uid=N
/// key=value...`, every value escaped like a decision line's.
#[must_use]
pub fn admin_line(action: &str, admin: &Admin, fields: &[(&str, &str)]) -> String {
    let mut s = format!(
        "apppw({}): admin={} uid={}",
        escape(action),
        escape(&admin.name),
        admin.uid
    );
    for (key, value) in fields {
        let _ = write!(s, " {key}={}", escape(value));
    }
    s
}

/// Sends one admin action line to syslog (authpriv.notice). Never fails the caller. Never
/// pass a password or a hash.
pub fn log_admin(action: &str, admin: &Admin, fields: &[(&str, &str)]) {
    send(&admin_line(action, admin, fields), false);
}

fn send(message: &str, info: bool) {
    let formatter = syslog::Formatter3164 {
        facility: syslog::Facility::LOG_AUTHPRIV,
        hostname: None,
        process: "apppw".into(),
        pid: std::process::id(),
    };
    if let Ok(mut logger) = syslog::unix(formatter) {
        let _ = if info {
            logger.info(message)
        } else {
            logger.notice(message)
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn line_has_the_documented_fields() {
        let e = Event {
            service: Some("imap"),
            user: "alice",
            rhost: Some("203.0.113.9"),
            result: "accepted",
            reason: "app-password",
            label: Some("my phone"),
            detail: None,
        };
        assert_eq!(
            e.line(),
            "service=imap user=alice rhost=203.0.113.9 result=accepted reason=app-password label=my\\x20phone"
        );
        let e = Event {
            service: None,
            rhost: None,
            label: None,
            ..e
        };
        assert_eq!(
            e.line(),
            "service=- user=alice rhost=- result=accepted reason=app-password"
        );
    }

    #[test]
    fn admin_lines_name_the_admin_and_escape_values() {
        let admin = Admin {
            name: "carol".into(),
            uid: 0,
        };
        assert_eq!(
            admin_line(
                "revoke",
                &admin,
                &[("user", "alice"), ("label", "my phone")]
            ),
            "apppw(revoke): admin=carol uid=0 user=alice label=my\\x20phone"
        );
        let forged = Admin {
            name: "x uid=1000".into(),
            uid: 0,
        };
        assert!(admin_line("create", &forged, &[]).ends_with("admin=x\\x20uid\\x3d1000 uid=0"));
        assert_eq!(Admin::current().uid, crate::sys::uid());
    }

    #[test]
    fn hostile_values_cannot_forge_fields_or_lines() {
        let forged = escape("bob result=accepted\nx");
        assert!(!forged.contains(' '));
        assert!(!forged.contains('='));
        assert!(!forged.contains('\n'));
        let long = escape(&"é".repeat(1000));
        assert!(long.len() <= MAX_FIELD + 3);
        assert!(long.ends_with("..."));
    }

    proptest! {
        #[test]
        fn escaped_values_are_bounded_printable_tokens(s in "\\PC{0,300}|[\\x00-\\x7f]{0,300}") {
            let e = escape(&s);
            prop_assert!(e.len() <= MAX_FIELD + 3);
            prop_assert!(e.bytes().all(|b| b.is_ascii_graphic() && b != b'=' && b != b'"'));
        }
    }
}
