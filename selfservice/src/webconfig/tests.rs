//! Tests of the web page's config: every key, its defaults and its errors.

use super::*;

fn parse(text: &str) -> Result<WebConfig, WebConfigError> {
    WebConfig::parse(Path::new("/etc/apppw/web.toml"), text)
}

fn err(text: &str) -> String {
    parse(text).unwrap_err().to_string()
}

#[test]
fn header_mode_with_defaults_listens_on_a_unix_socket() {
    let c = parse("[signin]\nmode = \"header\"\n").unwrap();
    assert_eq!(c.listen, Listen::Unix(DEFAULT_SOCKET.into()));
    assert_eq!(c.socket_mode, 0o660);
    assert!(c.proxy_secret.is_none());
    assert_eq!(
        c.signin,
        SignIn::Header {
            header: "X-Remote-User".into(),
            logout_url: None
        }
    );
    assert!(c.session.secure_cookie);
    assert_eq!(c.session.idle, Duration::from_secs(900));
    assert!(c.notify.is_none());
    assert_eq!(c.site.default_language, "en");
    assert!(c.site.imap.is_none());
}

#[test]
fn pam_mode_is_campus_only_by_default() {
    let c = parse("[signin]\nmode = \"pam\"\npam_service = \"login\"\n").unwrap();
    assert_eq!(
        c.signin,
        SignIn::Pam {
            service: "login".into(),
            campus_only: true
        }
    );
}

#[test]
fn tcp_needs_loopback_and_the_proxy_secret() {
    let e = err("listen = \"127.0.0.1:8080\"\n[signin]\nmode = \"header\"\n");
    assert!(e.contains("secret_file"), "{e}");
    let e = err("listen = \"0.0.0.0:8080\"\n[signin]\nmode = \"header\"\n");
    assert!(e.contains("line 1") && e.contains("loopback"), "{e}");
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("s");
    std::fs::write(&secret, "short\n").unwrap();
    let text = format!(
        "listen = \"127.0.0.1:8080\"\n[proxy]\nsecret_file = \"{}\"\n[signin]\nmode = \"header\"\n",
        secret.display()
    );
    let e = err(&text);
    assert!(e.contains("line 3") && e.contains("at least 32"), "{e}");
    std::fs::write(&secret, format!("{}\n", "a1".repeat(32))).unwrap();
    let c = parse(&text).unwrap();
    assert_eq!(c.listen, Listen::Tcp("127.0.0.1:8080".parse().unwrap()));
    let s = c.proxy_secret.unwrap();
    assert_eq!(s.header, "X-Apppw-Proxy-Secret");
    assert_eq!(s.value.len(), 64);
    assert!(
        !format!("{s:?}").contains("a1a1"),
        "the secret is not in Debug"
    );
}

#[test]
fn mistakes_are_reported_with_line_and_key() {
    let e = err("[signin]\nmode = \"pam\"\nheader = \"X-User\"\n");
    assert!(e.contains("line 3") && e.contains("signin.header"), "{e}");
    let e = err("[signin]\nmode = \"pam\"\n[session]\nidle = 5\n");
    assert!(e.contains("line 4") && e.contains("idle"), "{e}");
    let e = err("trusted_proxies = [\"proxy.example.org\"]\n[signin]\nmode = \"pam\"\n");
    assert!(e.contains("line 1") && e.contains("trusted_proxies"), "{e}");
    let e = err("[signin]\nmode = \"pam\"\n[session]\nidle_timeout_minutes = 0\n");
    assert!(
        e.contains("line 4") && e.contains("idle_timeout_minutes"),
        "{e}"
    );
    let e = err("[signin]\nmode = \"pam\"\n[notify]\nfrom = \"a@b\"\nto = \"x\\ny@z\"\n");
    assert!(e.contains("line 5") && e.contains("notify.to"), "{e}");
    let e = err(
        "[signin]\nmode = \"pam\"\n[notify]\nsendmail = \"/usr/sbin/sendmail\"\nfrom = \"a@b\"\nto = \"{user}@b\"\n",
    );
    assert!(e.contains("line 4") && e.contains("smtp"), "{e}");
    let e = err("[signin]\nmode = \"pam\"\n[site]\ntimezone = \"Mars/Olympus\"\n");
    assert!(e.contains("line 4") && e.contains("site.timezone"), "{e}");
    let e = err("[signin]\nmode = \"pam\"\n[site]\nhelp_url = \"javascript:alert(1)\"\n");
    assert!(e.contains("line 4") && e.contains("site.help_url"), "{e}");
    let e = err("language = \"ja\"\n[signin]\nmode = \"pam\"\n");
    assert!(
        e.contains("line 1") && e.contains("default_language"),
        "{e}"
    );
    let e = err("socket_mode = \"0666\"\n[signin]\nmode = \"pam\"\n");
    assert!(e.contains("line 1") && e.contains("socket_mode"), "{e}");
    let e = err(
        "[signin]\nmode = \"pam\"\n[site.imap]\nhost = \"imap.example.org\"\nsecurity = \"none\"\n",
    );
    assert!(
        e.contains("line 5") && e.contains("site.imap.security"),
        "{e}"
    );
}

#[test]
fn site_settings() {
    let c = parse(
        "[signin]\nmode = \"header\"\n[site]\ntimezone = \"Asia/Tokyo\"\n\
             address = \"{user}@example.org\"\n[site.imap]\nhost = \"imap.example.org\"\n\
             [site.smtp]\nhost = \"smtp.example.org\"\n[notify]\n\
             from = \"アプリパスワード <noreply@example.org>\"\nto = \"{user}@example.org\"\n",
    )
    .unwrap();
    assert_eq!(c.site.timezone_name, "Asia/Tokyo");
    assert_eq!(
        c.site.imap,
        Some(Server {
            host: "imap.example.org".into(),
            port: 993,
            security: Security::Tls
        })
    );
    assert_eq!(
        c.site.smtp.as_ref().map(|s| (s.port, s.security)),
        Some((587, Security::StartTls))
    );
    let n = c.notify.unwrap();
    assert_eq!((n.smtp_host.as_str(), n.smtp_port), ("localhost", 25));
    assert_eq!(n.from.name.as_deref(), Some("アプリパスワード"));
}
