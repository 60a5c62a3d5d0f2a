//! Setting up a mail app: an Apple configuration profile with the new password, and
//! Thunderbird's autoconfig file (no password; Thunderbird asks for it).

use crate::templates::{AutoConfig, MobileConfig};
use crate::webconfig::{Security, WebConfig};
use askama::Template;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A profile needs both servers and the user's mail address.
#[must_use]
pub fn profile_possible(web: &WebConfig) -> bool {
    web.site.imap.is_some() && web.site.smtp.is_some() && web.site.address.is_some()
}

/// Autoconfig needs both servers and an address `{user}@domain` (Thunderbird fills in the
/// local part).
#[must_use]
pub fn autoconfig_possible(web: &WebConfig) -> bool {
    web.site.imap.is_some() && web.site.smtp.is_some() && domain(web).is_some()
}

/// `example.org` of `address = "{user}@example.org"`.
fn domain(web: &WebConfig) -> Option<&str> {
    web.site.address.as_deref()?.strip_prefix("{user}@")
}

/// A random (version 4) UUID, upper-case as Apple writes them.
fn uuid() -> Option<String> {
    let mut b = [0u8; 16];
    getrandom::fill(&mut b).ok()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02X}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    ))
}

/// A reverse-DNS profile identifier for this account: the same for every profile of one
/// user at one server, so that installing a new one replaces the old.
fn identifier(imap_host: &str, user: &str) -> String {
    let host: Vec<&str> = imap_host.split('.').rev().collect();
    let user: String = user
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    format!("{}.apppw.{user}", host.join("."))
}

/// The `.mobileconfig` for `user` with `password`, as a download; `None` if the site lacks
/// the settings.
#[must_use]
pub fn mobileconfig(
    web: &WebConfig,
    title: &str,
    tr: &crate::i18n::Tr<'_>,
    user: &str,
    password: &str,
) -> Option<Response> {
    let (Some(imap), Some(smtp), Some(address)) =
        (&web.site.imap, &web.site.smtp, &web.site.address)
    else {
        return None;
    };
    let address = address.replace("{user}", user);
    // Spaces are ignored on input; the profile carries the password without them.
    let compact: zeroize::Zeroizing<String> =
        zeroize::Zeroizing::new(password.chars().filter(|c| *c != ' ').collect());
    let profile = MobileConfig {
        name: tr.ta(
            "profile-name",
            &[
                ("title", title.into()),
                ("address", address.as_str().into()),
            ],
        ),
        address: &address,
        user,
        password: &compact,
        imap,
        smtp,
        identifier: identifier(&imap.host, user),
        profile_uuid: uuid()?,
        account_uuid: uuid()?,
    };
    let body = zeroize::Zeroizing::new(profile.render().ok()?);
    Some(
        (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/x-apple-aspen-config"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"mail.mobileconfig\"",
                ),
            ],
            body.as_bytes().to_vec(),
        )
            .into_response(),
    )
}

fn socket(s: Security) -> &'static str {
    match s {
        Security::Tls => "SSL",
        Security::StartTls => "STARTTLS",
    }
}

/// Thunderbird's `config-v1.1.xml`, or `None` (404) if the site lacks the settings.
#[must_use]
pub fn autoconfig(web: &WebConfig, title: String) -> Option<Response> {
    let (Some(imap), Some(smtp), Some(domain)) = (&web.site.imap, &web.site.smtp, domain(web))
    else {
        return None;
    };
    let file = AutoConfig {
        domain,
        title,
        imap,
        smtp,
        imap_socket: socket(imap.security),
        smtp_socket: socket(smtp.security),
        username: "%EMAILLOCALPART%",
    };
    let body = file.render().ok()?;
    Some(
        (
            StatusCode::OK,
            [
                (header::CONTENT_TYPE, "application/xml; charset=utf-8"),
                (header::CACHE_CONTROL, "max-age=3600"),
            ],
            body,
        )
            .into_response(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_uuids() {
        assert_eq!(
            identifier("imap.example.org", "alice.b@x"),
            "org.example.imap.apppw.alice-b-x"
        );
        let u = uuid().unwrap();
        assert_eq!(u.len(), 36);
        assert_eq!(&u[14..15], "4");
        assert_ne!(u, uuid().unwrap());
    }
}
