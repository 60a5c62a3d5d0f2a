//! Server-rendered HTML. Every value from outside goes through [`esc`]; every text comes from
//! [`Strings`]. Links and form actions are relative, so the site also works under a path
//! prefix of the reverse proxy (`https://example.org/apppw/`).

use crate::strings::{Strings, fill};
use apppw::network::NetworkPolicy;
use apppw::store::Credential;
use apppw::timefmt::rfc3339;
use std::fmt::Write as _;

/// Escapes text for HTML element content and double-quoted attributes.
#[must_use]
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if c.is_control() => out.push('\u{fffd}'),
            c => out.push(c),
        }
    }
    out
}

/// What the page header shows about the user.
pub enum Header<'a> {
    /// Nobody signed in.
    Anonymous,
    /// Signed in; sign out with a form (PAM mode) or a link to the SSO's logout, or not at all.
    User {
        /// User name.
        user: &'a str,
        /// The session's CSRF token, for the sign-out form.
        csrf: &'a str,
        /// Sign out through this URL instead of the form (header mode with `logout_url`).
        logout_url: Option<&'a str>,
        /// Whether to offer signing out here at all.
        can_sign_out: bool,
    },
}

/// A whole page.
#[must_use]
pub fn page(s: &Strings, title: &str, header: &Header<'_>, main: &str, script: bool) -> String {
    let mut who = String::new();
    if let Header::User {
        user,
        csrf,
        logout_url,
        can_sign_out,
    } = header
    {
        let _ = write!(
            who,
            "<div class=\"who\"><span>{}</span>",
            esc(&fill(s.signed_in_as, &[("user", user)]))
        );
        match logout_url {
            Some(url) => {
                let _ = write!(
                    who,
                    " <a class=\"signout\" href=\"{}\">{}</a>",
                    esc(url),
                    esc(s.sign_out)
                );
            }
            None if *can_sign_out => {
                let _ = write!(
                    who,
                    " <form method=\"post\" action=\"signout\" class=\"inline\">{}\
                     <button type=\"submit\" class=\"signout\">{}</button></form>",
                    csrf_field(csrf),
                    esc(s.sign_out)
                );
            }
            None => {}
        }
        who.push_str("</div>");
    }
    let script = if script {
        "<script src=\"copy.js\" defer></script>\n"
    } else {
        ""
    };
    format!(
        "<!doctype html>\n<html lang=\"{lang}\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"referrer\" content=\"no-referrer\">\n\
         <title>{title} \u{2013} {app}</title>\n<link rel=\"stylesheet\" href=\"style.css\">\n\
         {script}</head>\n<body>\n<header class=\"top\"><div class=\"wrap\">\
         <p class=\"brand\"><a href=\"./\">{app}</a></p>{who}</div></header>\n\
         <main id=\"main\" class=\"wrap\">\n{main}</main>\n</body>\n</html>\n",
        lang = esc(s.lang),
        title = esc(title),
        app = esc(s.app_title),
    )
}

/// The hidden CSRF field.
#[must_use]
pub fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(token)
    )
}

/// A heading and a paragraph (errors, notices).
#[must_use]
pub fn message(heading: &str, text: &str, link: Option<(&str, &str)>) -> String {
    let mut out = format!("<h1>{}</h1>\n<p>{}</p>\n", esc(heading), esc(text));
    if let Some((href, label)) = link {
        let _ = writeln!(
            out,
            "<p><a class=\"button\" href=\"{}\">{}</a></p>",
            esc(href),
            esc(label)
        );
    }
    out
}

fn error_box(s: &Strings, error: Option<&str>) -> String {
    match error {
        Some(e) => format!(
            "<div class=\"error\" role=\"alert\" id=\"form-error\" tabindex=\"-1\">\
             <h2>{}</h2><p>{}</p></div>\n",
            esc(s.error_summary),
            esc(e)
        ),
        None => String::new(),
    }
}

/// The PAM sign-in form. `token` is the pre-session CSRF token (also in a cookie).
#[must_use]
pub fn signin(s: &Strings, token: &str, user: &str, error: Option<&str>) -> String {
    let described = if error.is_some() {
        " aria-describedby=\"form-error\""
    } else {
        ""
    };
    format!(
        "<h1>{heading}</h1>\n<p>{intro}</p>\n{error}\
         <form method=\"post\" action=\"signin\" class=\"stack\">\n{csrf}\n\
         <div class=\"field\"><label for=\"user\">{user_label}</label>\
         <input id=\"user\" name=\"user\" autocomplete=\"username\" autocapitalize=\"none\" \
         spellcheck=\"false\" required maxlength=\"256\" value=\"{user}\"{described}{focus_user}></div>\n\
         <div class=\"field\"><label for=\"password\">{password_label}</label>\
         <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" \
         required maxlength=\"1024\"{described}{focus_pw}></div>\n\
         <button type=\"submit\" class=\"primary\">{button}</button>\n</form>\n",
        heading = esc(s.signin_heading),
        intro = esc(s.signin_intro),
        error = error_box(s, error),
        csrf = csrf_field(token),
        user_label = esc(s.user_label),
        user = esc(user),
        password_label = esc(s.password_label),
        button = esc(s.signin_button),
        focus_user = if user.is_empty() { " autofocus" } else { "" },
        focus_pw = if user.is_empty() { "" } else { " autofocus" },
    )
}

fn when(s: &Strings, t: i64) -> String {
    let full = rfc3339(t);
    // 2026-11-25T12:06:18Z -> 2026-11-25 12:06
    let short = full
        .get(..16)
        .map_or_else(|| full.clone(), |p| p.replacen('T', " ", 1));
    format!(
        "<time datetime=\"{}\">{} {}</time>",
        esc(&full),
        esc(&short),
        esc(s.utc)
    )
}

fn service_name<'a>(s: &'a Strings, service: &'a str) -> &'a str {
    s.service_names
        .iter()
        .find(|(k, _)| *k == service)
        .map_or(service, |(_, v)| v)
}

/// The list of the user's app passwords.
#[must_use]
pub fn list(
    s: &Strings,
    creds: &[Credential],
    network: &NetworkPolicy,
    now: i64,
    flash: Option<&str>,
) -> String {
    let mut out = String::new();
    if let Some(f) = flash {
        let _ = writeln!(
            out,
            "<div class=\"flash\" role=\"status\"><p>{}</p></div>",
            esc(f)
        );
    }
    let _ = write!(
        out,
        "<h1>{}</h1>\n<p>{}</p>\n<p><a class=\"button primary\" href=\"new\">{}</a></p>\n",
        esc(s.list_heading),
        esc(s.list_intro),
        esc(s.create_link)
    );
    if creds.is_empty() {
        let _ = writeln!(out, "<p class=\"empty\">{}</p>", esc(s.list_empty));
        return out;
    }
    out.push_str("<ul class=\"cards\">\n");
    for c in creds {
        let expired = c.expires_at.is_some_and(|t| t <= now);
        let badge = if expired {
            format!(" <span class=\"badge\">{}</span>", esc(s.expired_badge))
        } else {
            String::new()
        };
        let last_used = match c.last_used_at {
            None => esc(s.never_used),
            Some(t) => {
                let mut v = when(s, t);
                if let Some(ip) = &c.last_used_ip {
                    let place = if network.locate(Some(ip)).is_campus() {
                        s.on_campus
                    } else {
                        s.off_campus
                    };
                    let _ = write!(
                        v,
                        "<br>{} <span class=\"muted\">({})</span>",
                        esc(&fill(s.last_used_from, &[("ip", ip)])),
                        esc(place)
                    );
                }
                if let Some(svc) = &c.last_used_service {
                    let _ = write!(
                        v,
                        "<br>{}",
                        esc(&fill(s.last_used_via, &[("service", svc)]))
                    );
                }
                v
            }
        };
        let expires = match c.expires_at {
            None => esc(s.never_expires),
            Some(t) => when(s, t),
        };
        let services = match &c.services {
            None => esc(s.all_services),
            Some(list) => list
                .iter()
                .map(|svc| esc(service_name(s, svc)))
                .collect::<Vec<_>>()
                .join(", "),
        };
        let _ = write!(
            out,
            "<li class=\"card\" id=\"cred-{id}\">\n<h2>{label}{badge}</h2>\n<dl>\
             <div><dt>{created_l}</dt><dd>{created}</dd></div>\
             <div><dt>{last_l}</dt><dd>{last_used}</dd></div>\
             <div><dt>{expires_l}</dt><dd>{expires}</dd></div>\
             <div><dt>{services_l}</dt><dd>{services}</dd></div></dl>\n\
             <p><a class=\"button danger\" href=\"delete?id={id}\">{delete}\
             <span class=\"visually-hidden\"> {label}</span></a></p>\n</li>\n",
            id = c.id,
            label = esc(&c.label),
            created_l = esc(s.created_label),
            created = when(s, c.created_at),
            last_l = esc(s.last_used_label),
            expires_l = esc(s.expires_label),
            services_l = esc(s.services_label),
            delete = esc(s.delete_button),
        );
    }
    out.push_str("</ul>\n");
    out
}

/// What the create form was filled with (re-shown after an error).
#[derive(Debug, Default, Clone)]
pub struct NewForm<'a> {
    /// Label typed.
    pub label: &'a str,
    /// Services ticked.
    pub services: Vec<&'a str>,
    /// Expiry chosen.
    pub expires: &'a str,
}

/// The create form.
#[must_use]
pub fn new_form(
    s: &Strings,
    csrf: &str,
    nonce: &str,
    offered: &[String],
    filled: &NewForm<'_>,
    error: Option<&str>,
) -> String {
    let described = if error.is_some() {
        " aria-describedby=\"label-hint form-error\""
    } else {
        " aria-describedby=\"label-hint\""
    };
    let mut services = String::new();
    for svc in offered {
        let checked = if filled.services.contains(&svc.as_str()) {
            " checked"
        } else {
            ""
        };
        let _ = writeln!(
            services,
            "<div class=\"check\"><input type=\"checkbox\" id=\"svc-{v}\" name=\"service\" \
             value=\"{v}\"{checked}><label for=\"svc-{v}\">{name}</label></div>",
            v = esc(svc),
            name = esc(service_name(s, svc)),
        );
    }
    let mut expiry = String::new();
    for (value, text) in s.expiry_choices {
        let selected = if *value == filled.expires {
            " selected"
        } else {
            ""
        };
        let _ = write!(
            expiry,
            "<option value=\"{}\"{selected}>{}</option>",
            esc(value),
            esc(text)
        );
    }
    format!(
        "<h1>{heading}</h1>\n{error}<form method=\"post\" action=\"new\" class=\"stack\">\n{csrf}\
         <input type=\"hidden\" name=\"nonce\" value=\"{nonce}\">\n\
         <div class=\"field\"><label for=\"label\">{name_l}</label>\
         <p class=\"hint\" id=\"label-hint\">{name_hint}</p>\
         <input id=\"label\" name=\"label\" required maxlength=\"64\" autocomplete=\"off\" \
         value=\"{label}\"{described} autofocus></div>\n\
         <fieldset><legend>{legend}</legend><p class=\"hint\">{services_hint}</p>\n{services}</fieldset>\n\
         <div class=\"field\"><label for=\"expires\">{expiry_l}</label>\
         <select id=\"expires\" name=\"expires\">{expiry}</select></div>\n\
         <div class=\"actions\"><button type=\"submit\" class=\"primary\">{create}</button> \
         <a class=\"button\" href=\"./\">{cancel}</a></div>\n</form>\n",
        heading = esc(s.new_heading),
        error = error_box(s, error),
        csrf = csrf_field(csrf),
        nonce = esc(nonce),
        name_l = esc(s.name_label),
        name_hint = esc(s.name_hint),
        label = esc(filled.label),
        legend = esc(s.services_legend),
        services_hint = esc(s.services_hint),
        expiry_l = esc(s.expiry_label),
        create = esc(s.create_button),
        cancel = esc(s.cancel),
    )
}

/// The one-time display of a new password.
#[must_use]
pub fn created(s: &Strings, cred: &Credential, grouped: &str) -> String {
    format!(
        "<h1 tabindex=\"-1\" autofocus>{heading}</h1>\n\
         <div class=\"warning\" role=\"note\"><p><strong>{once}</strong></p><p>{how}</p></div>\n\
         <p class=\"pwlabel\" id=\"pw-label\">{pw_label}</p>\n\
         <p class=\"password\" id=\"password\" aria-labelledby=\"pw-label\">{pw}</p>\n\
         <p class=\"actions\"><button type=\"button\" class=\"primary\" id=\"copy\" \
         data-copy=\"password\" data-status=\"copy-status\" data-copied=\"{copied}\" \
         hidden>{copy}</button> <span id=\"copy-status\" role=\"status\"></span></p>\n\
         <p>{user}</p>\n<p><a class=\"button\" href=\"./\">{done}</a></p>\n",
        heading = esc(&fill(s.created_heading, &[("label", &cred.label)])),
        once = esc(s.created_once),
        how = esc(s.created_how),
        pw_label = esc(s.created_password_label),
        pw = esc(grouped),
        copied = esc(s.copied),
        copy = esc(s.copy_button),
        user = esc(&fill(s.created_user, &[("user", &cred.user)])),
        done = esc(s.done_link),
    )
}

/// The confirmation step of a delete.
#[must_use]
pub fn delete_confirm(s: &Strings, csrf: &str, cred: &Credential) -> String {
    format!(
        "<h1>{heading}</h1>\n<p>{warning}</p>\n\
         <form method=\"post\" action=\"delete\" class=\"actions\">{csrf}\
         <input type=\"hidden\" name=\"id\" value=\"{id}\">\
         <button type=\"submit\" class=\"danger\">{delete}</button> \
         <a class=\"button\" href=\"./\">{cancel}</a></form>\n",
        heading = esc(&fill(s.delete_heading, &[("label", &cred.label)])),
        warning = esc(s.delete_warning),
        csrf = csrf_field(csrf),
        id = cred.id,
        delete = esc(s.delete_button),
        cancel = esc(s.cancel),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>\n"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;\u{fffd}"
        );
    }
}
