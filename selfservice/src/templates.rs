//! One askama template struct per page; the files are in `selfservice/templates/`.
//!
//! askama rather than maud: the markup lives in template files a reviewer (or a translator
//! checking a layout) reads as HTML, with a layout and partials like kanidm's, and it is
//! checked and compiled into the binary. Every `{{ }}` is HTML-escaped (the files end in
//! `.html`/`.xml`); no template uses `|safe`. Texts come from [`Tr`], already in the user's
//! language; nothing in a message is markup.

use crate::i18n::Tr;
use crate::webconfig::Server;
use askama::Template;

/// A language link in the footer.
pub struct LangLink {
    /// Tag, for `?lang=` and `lang`.
    pub tag: String,
    /// Its name in itself.
    pub name: String,
    /// The page's language.
    pub current: bool,
}

/// The signed-in bar.
pub struct UserBar<'a> {
    /// User name.
    pub user: &'a str,
    /// The session's CSRF token, for the sign-out form.
    pub csrf: &'a str,
    /// Sign out through this URL instead of the form (header mode with `logout_url`).
    pub logout_url: Option<&'a str>,
    /// Whether to offer signing out here at all.
    pub can_sign_out: bool,
}

/// What every page has around its content.
pub struct Chrome<'a> {
    /// Texts and times.
    pub tr: Tr<'a>,
    /// The site's name (`[site] title`, or the catalogue's `app-title`).
    pub site_title: String,
    /// This page's title.
    pub title: String,
    /// The signed-in user, if any.
    pub user: Option<UserBar<'a>>,
    /// The language switcher.
    pub langs: Vec<LangLink>,
    /// `[site] help_url`.
    pub help_url: Option<&'a str>,
    /// A logo is configured (served at `logo`).
    pub logo: bool,
}

/// A heading, a text and maybe a link: errors, notices, "signed out".
#[derive(Template)]
#[template(path = "message.html")]
pub struct MessagePage<'a> {
    /// Around it.
    pub c: Chrome<'a>,
    /// Heading.
    pub heading: String,
    /// Paragraph (none if empty).
    pub text: String,
    /// A button link: href, text.
    pub link: Option<(String, String)>,
}

/// The PAM sign-in form.
#[derive(Template)]
#[template(path = "signin.html")]
pub struct SignInPage<'a> {
    /// Around it.
    pub c: Chrome<'a>,
    /// The pre-session CSRF token (also in a cookie).
    pub token: &'a str,
    /// The user name typed before.
    pub user: &'a str,
    /// A one-line explanation (the form had expired).
    pub notice: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
}

/// One app password on the list.
pub struct Card {
    /// Row id.
    pub id: i64,
    /// Label.
    pub label: String,
    /// Expired already.
    pub expired: bool,
    /// Created: machine and human time.
    pub created: (String, String),
    /// Last use.
    pub last_used: Option<LastUse>,
    /// Expiry: machine and human time.
    pub expires: Option<(String, String)>,
    /// The services allowed, in words.
    pub services: String,
}

/// The last use of an app password.
pub struct LastUse {
    /// Machine and human time.
    pub at: (String, String),
    /// "from 192.0.2.7 (campus network)".
    pub place: Option<String>,
    /// "via imap".
    pub via: Option<String>,
}

/// The list of the user's app passwords.
#[derive(Template)]
#[template(path = "list.html")]
pub struct ListPage<'a> {
    /// Around it.
    pub c: Chrome<'a>,
    /// A message from the previous step.
    pub flash: Option<String>,
    /// The app passwords.
    pub cards: Vec<Card>,
}

/// A checkbox or option of the create form.
pub struct Choice {
    /// Form value.
    pub value: String,
    /// Shown text.
    pub name: String,
    /// Ticked or selected.
    pub checked: bool,
    /// Same as `checked`, for `<option>`.
    pub selected: bool,
}

/// The create form.
#[derive(Template)]
#[template(path = "new.html")]
pub struct NewPage<'a> {
    /// Around it.
    pub c: Chrome<'a>,
    /// The session's CSRF token.
    pub csrf: &'a str,
    /// This form's one-time nonce.
    pub nonce: &'a str,
    /// The label typed before.
    pub label: &'a str,
    /// Service checkboxes.
    pub services: Vec<Choice>,
    /// Expiry options.
    pub expiry: Vec<Choice>,
    /// A one-line explanation (the form had expired).
    pub notice: Option<String>,
    /// What went wrong.
    pub error: Option<String>,
}

/// One server in the settings for mail apps.
pub struct ServerView<'a> {
    /// `imap` or `smtp` (element id).
    pub kind: &'static str,
    /// "Incoming mail (IMAP)".
    pub title: String,
    /// Host.
    pub host: &'a str,
    /// Port.
    pub port: u16,
    /// "SSL/TLS" or "STARTTLS".
    pub security: String,
}

/// The settings for mail apps on the created page.
pub struct Settings<'a> {
    /// IMAP and SMTP.
    pub servers: Vec<ServerView<'a>>,
    /// The user name to enter.
    pub user: &'a str,
    /// A configuration profile can be downloaded.
    pub profile: bool,
    /// Thunderbird finds the settings itself (autoconfig is served).
    pub thunderbird: bool,
}

/// The new password, once (or again, within two minutes, to the same session).
#[derive(Template)]
#[template(path = "created.html")]
pub struct CreatedPage<'a> {
    /// Around it.
    pub c: Chrome<'a>,
    /// The label.
    pub label: &'a str,
    /// The user (when no mail settings are configured).
    pub user: &'a str,
    /// The password in groups of four.
    pub password: &'a str,
    /// A repeated submit of the same form.
    pub shown_again: bool,
    /// Mail server settings.
    pub settings: Option<Settings<'a>>,
    /// For the profile download form.
    pub csrf: &'a str,
    /// For the profile download form.
    pub nonce: &'a str,
}

/// The confirmation step of a delete.
#[derive(Template)]
#[template(path = "delete.html")]
pub struct DeletePage<'a> {
    /// Around it.
    pub c: Chrome<'a>,
    /// The session's CSRF token.
    pub csrf: &'a str,
    /// Row id.
    pub id: i64,
    /// Label.
    pub label: &'a str,
    /// A one-line explanation (the form had expired).
    pub notice: Option<String>,
    /// Never set: the page has no other errors (the shared partial needs the field).
    pub error: Option<String>,
}

/// An Apple configuration profile with one IMAP/SMTP account (`com.apple.mail.managed`).
#[derive(Template)]
#[template(path = "mobileconfig.xml")]
pub struct MobileConfig<'a> {
    /// Shown name of the profile and the account.
    pub name: String,
    /// The user's mail address.
    pub address: &'a str,
    /// The user name for IMAP and SMTP.
    pub user: &'a str,
    /// The app password.
    pub password: &'a str,
    /// Incoming server.
    pub imap: &'a Server,
    /// Outgoing server.
    pub smtp: &'a Server,
    /// Reverse-DNS identifier, stable per account so a new profile replaces the old one.
    pub identifier: String,
    /// Random UUIDs of the profile and the payload.
    pub profile_uuid: String,
    /// See `profile_uuid`.
    pub account_uuid: String,
}

/// Thunderbird's autoconfig file (`config-v1.1.xml`).
#[derive(Template)]
#[template(path = "autoconfig.xml")]
pub struct AutoConfig<'a> {
    /// The mail domain.
    pub domain: &'a str,
    /// The site's name.
    pub title: String,
    /// Incoming server.
    pub imap: &'a Server,
    /// Outgoing server.
    pub smtp: &'a Server,
    /// `SSL` or `STARTTLS`.
    pub imap_socket: &'static str,
    /// `SSL` or `STARTTLS`.
    pub smtp_socket: &'static str,
    /// `%EMAILLOCALPART%` or `%EMAILADDRESS%`.
    pub username: &'static str,
}
