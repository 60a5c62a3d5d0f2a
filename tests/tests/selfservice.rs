//! `apppw-web`, the self-service page, as users and attackers meet it: the built server over
//! real HTTP, and a real headless Chromium driven through chromedriver (W3C WebDriver).
//!
//! - HTTP level: cookie flags and security headers, CSRF, one-time display, users kept apart,
//!   the sign-in header believed only from the proxy, PAM sign-in only from campus, rate
//!   limits, the notification mail.
//! - Browser: sign in with the normal password (PAM, `pam_matrix`), create, see the password
//!   once, reload, use it through `apppw verify`, delete, see it refused.
//!
//! PAM tests need root (a throwaway `/etc/pam.d` entry); the browser test also needs
//! `chromium` and `chromium-driver`. Without them they print a SKIP line. With
//! `APPPW_SCREENSHOTS=DIR` the browser test saves phone and desktop screenshots of each page.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw_integration_tests::dovecot::{PamService, free_port};
use apppw_integration_tests::{bin, is_root, run_with_stdin};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const NORMAL_PW: &str = "Winter2026!";
const CAMPUS_IP: &str = "192.0.2.10";
const OFF_IP: &str = "203.0.113.9";

// ---------------------------------------------------------------------------------------
// A tiny blocking HTTP/1.1 client (one request per connection).

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn set_cookies(&self) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("set-cookie"))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// `name=value` of the first Set-Cookie with that name.
    fn cookie(&self, name: &str) -> Option<String> {
        self.set_cookies()
            .into_iter()
            .find(|c| c.starts_with(&format!("{name}=")))
            .and_then(|c| c.split(';').next())
            .map(str::to_owned)
    }

    /// The value of a hidden form field.
    fn field(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no field {name} in\n{}", self.body))
            + marker.len();
        self.body[start..].split('"').next().unwrap().to_owned()
    }
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(eol) = body.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_text = String::from_utf8_lossy(&body[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[eol + 2..eol + 2 + size]);
        body = &body[eol + 2 + size + 2..];
    }
}

fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\
         Content-Length: {}\r\n",
        body.len()
    );
    if method == "POST" {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    stream.write_all(req.as_bytes()).unwrap();
    // Read up to the end of the headers, then Content-Length bytes (chromedriver keeps the
    // connection open despite `Connection: close`) or to the end of the stream.
    let mut raw = Vec::new();
    let mut buf = [0u8; 8192];
    let mut split = None;
    loop {
        if let Some(at) = split {
            let head = String::from_utf8_lossy(&raw[..at]).to_ascii_lowercase();
            let length = head
                .split("\r\n")
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            if length.is_some_and(|n| raw.len() >= at + 4 + n) {
                break;
            }
        }
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if split.is_none() {
            split = raw.windows(4).position(|w| w == b"\r\n\r\n");
        }
    }
    let split = split.expect("no end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"))
    {
        body = dechunk(&body);
    }
    Resp {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                char::from(b).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn form(fields: &[(&str, &str)]) -> String {
    fields
        .iter()
        .map(|(k, v)| format!("{k}={}", urlencode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The grouped password on a result page, if any (six groups of four letters).
fn password_in(body: &str) -> Option<String> {
    let start = body.find("id=\"password\"")?;
    let text = body[start..]
        .split('>')
        .nth(1)?
        .split('<')
        .next()?
        .to_owned();
    Some(text)
}

fn looks_like_app_password(s: &str) -> bool {
    let groups: Vec<&str> = s.split(' ').collect();
    groups.len() == 6
        && groups
            .iter()
            .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_lowercase()))
}

// ---------------------------------------------------------------------------------------
// The server under test.

struct Site {
    dir: tempfile::TempDir,
    config: PathBuf,
    port: u16,
    child: Child,
    mail: PathBuf,
}

impl Site {
    /// Starts `apppw-web` with a main config (campus 192.0.2.0/24 minus 192.0.2.128/25, plus
    /// `extra_campus`) and the given `web.toml` text (`listen` is added).
    fn start(extra_campus: &str, web_toml: &str) -> Site {
        let dir = tempfile::Builder::new()
            .prefix("apppw-web-test.")
            .tempdir()
            .unwrap();
        let db = dir.path().join("apppw.db");
        let config = dir.path().join("apppw.toml");
        std::fs::write(
            &config,
            format!(
                "database = \"{}\"\n[network]\ncampus = [\"192.0.2.0/24\"{extra_campus}]\n\
                 except = [\"192.0.2.128/25\"]\n",
                db.display()
            ),
        )
        .unwrap();
        let mail = dir.path().join("mail.txt");
        let sendmail = dir.path().join("sendmail");
        std::fs::write(
            &sendmail,
            format!(
                "#!/bin/sh\n{{ echo \"ARGS: $*\"; cat; echo '-- end --'; }} >> '{}'\n",
                mail.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&sendmail, std::fs::Permissions::from_mode(0o755)).unwrap();
        let port = free_port();
        let web = dir.path().join("web.toml");
        let web_toml = web_toml.replace("SENDMAIL", &sendmail.display().to_string());
        std::fs::write(&web, format!("listen = \"127.0.0.1:{port}\"\n{web_toml}")).unwrap();
        let log = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
        let child = Command::new(bin("apppw-web"))
            .arg("--config")
            .arg(&config)
            .arg("--config-web")
            .arg(&web)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let site = Site {
            dir,
            config,
            port,
            child,
            mail,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "apppw-web did not start:\n{}",
                site.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        site
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        http(self.port, "GET", path, headers, "")
    }

    fn post(&self, path: &str, headers: &[(&str, &str)], fields: &[(&str, &str)]) -> Resp {
        http(self.port, "POST", path, headers, &form(fields))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }

    fn apppw(&self, args: &[&str], stdin: &str) -> Output {
        run_with_stdin(
            Command::new(bin("apppw"))
                .arg("--config")
                .arg(&self.config)
                .args(args),
            stdin.as_bytes(),
        )
    }

    fn create(&self, user: &str, label: &str) -> (i64, String) {
        let out = self.apppw(&["create", user, label, "--json"], "");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        (
            v["id"].as_i64().unwrap(),
            v["password"].as_str().unwrap().into(),
        )
    }

    fn labels(&self, user: &str) -> Vec<String> {
        let out = self.apppw(&["list", user, "--json"], "");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .map(|c| c["label"].as_str().unwrap().to_owned())
            .collect()
    }

    /// `apppw verify USER --ip OFF_IP --service S` with this password: accepted?
    fn verifies(&self, user: &str, password: &str, service: &str) -> bool {
        let out = self.apppw(
            &["verify", user, "--ip", OFF_IP, "--service", service],
            &format!("{password}\n"),
        );
        out.status.success()
    }

    fn wait_for_mail(&self, messages: usize) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = std::fs::read_to_string(&self.mail).unwrap_or_default();
            if text.matches("-- end --").count() >= messages {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "no mail; got:\n{text}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const HEADER_MODE: &str = "trusted_proxies = [\"127.0.0.1\"]\n[signin]\nmode = \"header\"\n";

/// A signed-in header-mode user: the cookie and the CSRF token of their session.
struct Browser<'a> {
    site: &'a Site,
    user: String,
    cookie: String,
}

impl<'a> Browser<'a> {
    fn sign_in(site: &'a Site, user: &str, cookie_name: &str) -> Browser<'a> {
        let r = site.get("/", &[("X-Remote-User", user)]);
        assert_eq!(r.status, 200, "{}\n{}", r.body, site.log());
        let cookie = r.cookie(cookie_name).expect("session cookie");
        Browser {
            site,
            user: user.into(),
            cookie,
        }
    }

    fn headers(&self) -> Vec<(&str, &str)> {
        vec![
            ("X-Remote-User", self.user.as_str()),
            ("Cookie", self.cookie.as_str()),
        ]
    }

    fn get(&self, path: &str) -> Resp {
        self.site.get(path, &self.headers())
    }

    fn post(&self, path: &str, fields: &[(&str, &str)]) -> Resp {
        self.site.post(path, &self.headers(), fields)
    }
}

// ---------------------------------------------------------------------------------------
// HTTP-level tests.

#[test]
fn header_sign_in_sets_a_strict_cookie_and_security_headers() {
    let site = Site::start("", HEADER_MODE);
    let r = site.get("/", &[("X-Remote-User", "alice")]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Signed in as alice"));
    let cookies = r.set_cookies();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let c = cookies[0];
    let value = c
        .strip_prefix("__Host-apppw-session=")
        .unwrap_or_else(|| panic!("{c}"));
    let id = value.split(';').next().unwrap();
    assert_eq!(id.len(), 64, "256-bit id in hex: {c}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
    for attr in ["Path=/", "HttpOnly", "SameSite=Strict", "Secure"] {
        assert!(c.split("; ").any(|a| a == attr), "{attr} missing: {c}");
    }
    let csp = r.header("Content-Security-Policy").unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(r.header("X-Frame-Options"), Some("DENY"));
    assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    assert!(
        site.log()
            .contains("user=alice action=signin method=header client=127.0.0.1 result=ok")
    );

    // No inline script or style anywhere: the CSP forbids them.
    let new = site.get("/new", &[("X-Remote-User", "alice")]);
    assert!(!new.body.contains("<script>") && !new.body.contains("style="));
}

#[test]
fn pages_in_japanese_with_language_ja() {
    let site = Site::start("", &format!("language = \"ja\"\n{HEADER_MODE}"));
    site.create("alice", "phone");
    let r = site.get("/", &[("X-Remote-User", "alice")]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("Content-Type"), Some("text/html; charset=utf-8"));
    for text in [
        "<html lang=\"ja\">",
        "alice でサインイン中",
        "アプリパスワード一覧",
        "phone",
        "未使用",
    ] {
        assert!(r.body.contains(text), "{text} missing:\n{}", r.body);
    }
    assert!(!r.body.contains("Your app passwords"), "{}", r.body);
    let new = site.get("/new", &[("X-Remote-User", "alice")]);
    assert!(new.body.contains("アプリパスワードの作成"), "{}", new.body);
    assert!(new.body.contains("IMAP:メールの閲覧"), "{}", new.body);
}

#[test]
fn sign_in_header_is_believed_only_from_the_proxy() {
    // The proxy is elsewhere; this client connects from 127.0.0.1.
    let site = Site::start(
        "",
        "trusted_proxies = [\"192.0.2.1\"]\n[signin]\nmode = \"header\"\n",
    );
    let r = site.get("/", &[("X-Remote-User", "alice")]);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.set_cookies().is_empty());
    assert!(!r.body.contains("alice"));
    let r = site.post("/new", &[("X-Remote-User", "alice")], &[("label", "x")]);
    assert_eq!(r.status, 403);
    assert!(site.labels("alice").is_empty());
    assert!(
        site.log().contains("result=refused-untrusted-peer"),
        "{}",
        site.log()
    );

    // Without the header nobody is signed in, whatever the peer.
    let site = Site::start("", HEADER_MODE);
    let r = site.get("/", &[]);
    assert_eq!(r.status, 403);
    assert!(r.body.contains("Not signed in"));
}

#[test]
fn forms_need_the_csrf_token_and_the_password_is_shown_once() {
    let site = Site::start(
        "",
        &format!(
            "{HEADER_MODE}[notify]\nsendmail = \"SENDMAIL\"\nfrom = \"noreply@example.org\"\n\
             to = \"{{user}}@example.org\"\n"
        ),
    );
    let alice = Browser::sign_in(&site, "alice", "__Host-apppw-session");
    let page = alice.get("/new");
    assert_eq!(page.status, 200);
    let csrf = page.field("csrf");
    let nonce = page.field("nonce");
    let fields = |csrf: &str| {
        vec![
            ("csrf", csrf.to_owned()),
            ("nonce", nonce.clone()),
            ("label", "Thunderbird".to_owned()),
            ("service", "imap".to_owned()),
            ("service", "smtp".to_owned()),
            ("expires", "90d".to_owned()),
        ]
    };
    let as_refs = |v: &[(&'static str, String)]| -> Vec<(&'static str, String)> { v.to_vec() };

    // Without a token, with a wrong one, with another session's, or cross-site: refused.
    let other = Browser::sign_in(&site, "alice", "__Host-apppw-session");
    let others_csrf = other.get("/new").field("csrf");
    for token in ["", "0000", others_csrf.as_str()] {
        let f = as_refs(&fields(token));
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = alice.post("/new", &f);
        assert_eq!(r.status, 403, "token {token:?}: {}", r.body);
        assert!(password_in(&r.body).is_none());
    }
    let f = as_refs(&fields(&csrf));
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut headers = alice.headers();
    headers.push(("Sec-Fetch-Site", "cross-site"));
    assert_eq!(site.post("/new", &headers, &f).status, 403);
    assert!(site.labels("alice").is_empty(), "nothing created so far");
    assert!(
        site.log().contains("action=post path=/new"),
        "{}",
        site.log()
    );

    // With the token: the password, once, never cached.
    let r = alice.post("/new", &f);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    let pw = password_in(&r.body).expect("password shown");
    assert!(looks_like_app_password(&pw), "{pw}");
    assert!(r.body.contains("You will not see this password again."));
    assert_eq!(site.labels("alice"), ["Thunderbird"]);
    assert!(site.verifies("alice", &pw, "imap"));
    assert!(
        !site.verifies("alice", &pw, "pop3"),
        "restricted to imap, smtp"
    );

    // Submitting the same form again (a reload of the result) creates nothing and shows
    // nothing; the list never shows a password.
    let again = alice.post("/new", &f);
    assert_eq!(again.status, 303);
    assert_eq!(again.header("Location"), Some("./"));
    assert!(!again.body.contains(&pw));
    let list = alice.get("/");
    assert!(list.body.contains("Thunderbird"));
    assert!(list.body.contains("already created"));
    assert!(!list.body.contains(&pw));
    assert_eq!(site.labels("alice"), ["Thunderbird"]);

    // The audit line and the mail name the label, never the password.
    let log = site.log();
    assert!(
        log.contains("user=alice action=create label=Thunderbird id=1 client=127.0.0.1 result=ok"),
        "{log}"
    );
    assert!(!log.contains(&pw));
    let mail = site.wait_for_mail(1);
    assert!(mail.contains("ARGS: -t -oi"), "{mail}");
    assert!(mail.contains("To: alice@example.org"), "{mail}");
    assert!(mail.contains("\"Thunderbird\""), "{mail}");
    assert!(!mail.contains(&pw));

    // Delete needs the token too.
    let id = "1";
    assert_eq!(alice.post("/delete", &[("id", id)]).status, 403);
    let confirm = alice.get("/delete?id=1");
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("Delete \u{201c}Thunderbird\u{201d}?"));
    let r = alice.post("/delete", &[("id", id), ("csrf", &confirm.field("csrf"))]);
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(site.labels("alice").is_empty());
    assert!(!site.verifies("alice", &pw, "imap"));
    let mail = site.wait_for_mail(2);
    assert!(mail.contains("was deleted"), "{mail}");
}

#[test]
fn users_never_see_or_delete_each_others_passwords() {
    let site = Site::start("", HEADER_MODE);
    let (bob_id, bob_pw) = site.create("bob", "Bob's secret phone");
    site.create("alice", "Alice laptop");
    let alice = Browser::sign_in(&site, "alice", "__Host-apppw-session");

    let list = alice.get("/");
    assert!(list.body.contains("Alice laptop"));
    assert!(!list.body.contains("Bob"), "{}", list.body);

    let bob_id = bob_id.to_string();
    let r = alice.get(&format!("/delete?id={bob_id}"));
    assert_eq!(r.status, 404);
    assert!(!r.body.contains("Bob"));
    let csrf = alice.get("/new").field("csrf");
    for id in [bob_id.as_str(), "Bob's secret phone", "0", "-1", "x"] {
        let r = alice.post("/delete", &[("id", id), ("csrf", &csrf)]);
        assert_eq!(r.status, 404, "id {id:?}");
    }
    assert_eq!(site.labels("bob"), ["Bob's secret phone"]);
    assert!(site.verifies("bob", &bob_pw, "imap"));

    // Alice's cookie with Bob's header (the SSO signed someone else in): a new session for
    // Bob, and Alice's is gone.
    let r = site.get(
        "/",
        &[("X-Remote-User", "bob"), ("Cookie", alice.cookie.as_str())],
    );
    assert!(r.body.contains("Signed in as bob"));
    assert!(r.cookie("__Host-apppw-session").is_some());
    assert_ne!(r.cookie("__Host-apppw-session").unwrap(), alice.cookie);
    let r = alice.post("/delete", &[("id", "2"), ("csrf", &csrf)]);
    assert_eq!(r.status, 403, "old session and token are void");
    assert_eq!(site.labels("alice"), ["Alice laptop"]);

    // A duplicate label gets the form back with the reason.
    let alice = Browser::sign_in(&site, "alice", "__Host-apppw-session");
    let page = alice.get("/new");
    let r = alice.post(
        "/new",
        &[
            ("csrf", &page.field("csrf")),
            ("nonce", &page.field("nonce")),
            ("label", "Alice laptop"),
        ],
    );
    assert_eq!(r.status, 409);
    assert!(r.body.contains("already have an app password named"));
    assert!(r.body.contains("role=\"alert\""));
}

fn root_or_skip(test: &str) -> bool {
    if is_root() {
        return true;
    }
    println!("SKIP {test}: needs root for a throwaway /etc/pam.d entry");
    false
}

fn pam_web_toml(pam: &PamService, trusted: &str, extra: &str) -> String {
    format!(
        "trusted_proxies = [{trusted}]\n[signin]\nmode = \"pam\"\npam_service = \"{}\"\n\
         [session]\nsecure_cookie = false\n{extra}",
        pam.name
    )
}

/// GETs the sign-in form from `ip` (forwarded by the proxy) and posts the credentials.
fn pam_sign_in(site: &Site, ip: &str, user: &str, password: &str) -> Resp {
    let page = site.get("/signin", &[("X-Forwarded-For", ip)]);
    if page.status != 200 {
        return page;
    }
    let cookie = page.cookie("apppw-signin").expect("sign-in cookie");
    site.post(
        "/signin",
        &[("X-Forwarded-For", ip), ("Cookie", cookie.as_str())],
        &[
            ("csrf", &page.field("csrf")),
            ("user", user),
            ("password", password),
        ],
    )
}

#[test]
fn pam_sign_in_only_from_campus_with_rate_limits() {
    if !root_or_skip("pam_sign_in_only_from_campus_with_rate_limits") {
        return;
    }
    let pam = PamService::matrix(&[("alice", NORMAL_PW), ("carol", NORMAL_PW)]);
    let site = Site::start(
        "",
        &pam_web_toml(
            &pam,
            "\"127.0.0.1\"",
            "[limits]\nsignin_failures_per_user = 3\nsignin_failures_per_address = 5\n",
        ),
    );

    // Off campus (and in `except`): no form, and a post is refused before PAM.
    for ip in [OFF_IP, "192.0.2.200", "garbage"] {
        let r = site.get("/signin", &[("X-Forwarded-For", ip)]);
        assert_eq!(r.status, 403, "{ip}: {}", r.body);
        assert!(r.body.contains("only from the campus network"));
    }
    let page = site.get("/signin", &[("X-Forwarded-For", CAMPUS_IP)]);
    let cookie = page.cookie("apppw-signin").unwrap();
    let r = site.post(
        "/signin",
        &[("X-Forwarded-For", OFF_IP), ("Cookie", cookie.as_str())],
        &[
            ("csrf", &page.field("csrf")),
            ("user", "alice"),
            ("password", NORMAL_PW),
        ],
    );
    assert_eq!(r.status, 403);
    assert!(r.cookie("apppw-session").is_none());
    // The sign-in form needs its token too.
    let r = site.post(
        "/signin",
        &[("X-Forwarded-For", CAMPUS_IP), ("Cookie", cookie.as_str())],
        &[("user", "alice"), ("password", NORMAL_PW)],
    );
    assert_eq!(r.status, 403);

    // On campus: wrong password refused, right one signs in.
    let r = pam_sign_in(&site, CAMPUS_IP, "alice", "wrong");
    assert_eq!(r.status, 401);
    assert!(r.body.contains("not right"));
    let r = pam_sign_in(&site, CAMPUS_IP, "alice", NORMAL_PW);
    assert_eq!(r.status, 303, "{}\n{}", r.body, site.log());
    let session = r.cookie("apppw-session").unwrap();
    let list = site.get("/", &[("Cookie", session.as_str())]);
    assert!(list.body.contains("Signed in as alice"), "{}", list.body);

    // Per user: after 3 failures even the right password waits.
    for _ in 0..3 {
        assert_eq!(
            pam_sign_in(&site, "192.0.2.30", "carol", "wrong").status,
            401
        );
    }
    let r = pam_sign_in(&site, "192.0.2.31", "carol", NORMAL_PW);
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("Too many failed sign-ins"));
    assert!(r.header("Retry-After").is_some());
    // Per address: 5 failures from one address block everyone there.
    for user in ["u1", "u2", "u3", "u4", "u5"] {
        assert_eq!(pam_sign_in(&site, "192.0.2.40", user, "wrong").status, 401);
    }
    assert_eq!(
        pam_sign_in(&site, "192.0.2.40", "alice", NORMAL_PW).status,
        429
    );
    assert_eq!(
        pam_sign_in(&site, "192.0.2.41", "alice", NORMAL_PW).status,
        303
    );
    let log = site.log();
    assert!(
        log.contains("user=carol action=signin method=pam client=192.0.2.31 result=rate-limited"),
        "{log}"
    );
    assert!(!log.contains(NORMAL_PW));

    // X-Forwarded-For from a peer that is not the proxy is ignored: 127.0.0.1 is off campus.
    let site = Site::start("", &pam_web_toml(&pam, "\"192.0.2.1\"", ""));
    assert_eq!(
        pam_sign_in(&site, CAMPUS_IP, "alice", NORMAL_PW).status,
        403
    );
}

// ---------------------------------------------------------------------------------------
// The browser test: headless Chromium through chromedriver.

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Option<Driver> {
        let chromedriver = Path::new("/usr/bin/chromedriver");
        let chromium = ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let (true, Some(chromium)) = (chromedriver.exists(), chromium) else {
            return None;
        };
        let port = free_port();
        let child = Command::new(chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let profile = tempfile::Builder::new()
            .prefix("apppw-chromium.")
            .tempdir()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,800",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }}});
        let mut driver = Driver {
            child,
            port,
            session: String::new(),
            _profile: profile,
        };
        let v = driver.call("POST", "/session", Some(&caps));
        driver.session = v["sessionId"].as_str().expect("session id").to_owned();
        Some(driver)
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let body = body.map(Value::to_string).unwrap_or_default();
        let r = http(
            self.port,
            method,
            path,
            &[("Content-Type", "application/json")],
            &body,
        );
        let v: Value = serde_json::from_str(&r.body)
            .unwrap_or_else(|_| panic!("{method} {path}: {} {}", r.status, r.body));
        assert_eq!(r.status, 200, "{method} {path}: {v}");
        v["value"].clone()
    }

    fn s(&self, rest: &str) -> String {
        format!("/session/{}{rest}", self.session)
    }

    fn go(&self, url: &str) {
        self.call("POST", &self.s("/url"), Some(&json!({ "url": url })));
    }

    fn find(&self, css: &str) -> String {
        let v = self.call(
            "POST",
            &self.s("/element"),
            Some(&json!({"using": "css selector", "value": css})),
        );
        v[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{css}: {v}\n{}", self.source()))
            .to_owned()
    }

    fn exists(&self, css: &str) -> bool {
        let body = json!({"using": "css selector", "value": css}).to_string();
        let r = http(
            self.port,
            "POST",
            &self.s("/elements"),
            &[("Content-Type", "application/json")],
            &body,
        );
        let v: Value = serde_json::from_str(&r.body).unwrap();
        !v["value"].as_array().unwrap().is_empty()
    }

    fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.call(
            "POST",
            &self.s(&format!("/element/{el}/clear")),
            Some(&json!({})),
        );
        self.call(
            "POST",
            &self.s(&format!("/element/{el}/value")),
            Some(&json!({ "text": text })),
        );
    }

    fn click(&self, css: &str) {
        let el = self.find(css);
        self.call(
            "POST",
            &self.s(&format!("/element/{el}/click")),
            Some(&json!({})),
        );
    }

    fn text(&self, css: &str) -> String {
        let el = self.find(css);
        self.call("GET", &self.s(&format!("/element/{el}/text")), None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn displayed(&self, css: &str) -> bool {
        let el = self.find(css);
        self.call("GET", &self.s(&format!("/element/{el}/displayed")), None)
            .as_bool()
            .unwrap()
    }

    /// Waits (up to 10 s) for a page that has `text` after a click that submits a form.
    fn wait_for_text(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.source().contains(text) {
            assert!(
                Instant::now() < deadline,
                "no {text:?} in\n{}",
                self.source()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn source(&self) -> String {
        self.call("GET", &self.s("/source"), None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn url(&self) -> String {
        self.call("GET", &self.s("/url"), None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn script(&self, js: &str) -> Value {
        self.call(
            "POST",
            &self.s("/execute/sync"),
            Some(&json!({"script": js, "args": []})),
        )
    }

    /// Saves phone and desktop screenshots as `DIR/NAME-phone.png`, `DIR/NAME-desktop.png`.
    fn screenshots(&self, dir: Option<&Path>, name: &str) {
        let Some(dir) = dir else { return };
        for (size, w, h) in [("phone", 390, 844), ("desktop", 1280, 800)] {
            self.call(
                "POST",
                &self.s("/window/rect"),
                Some(&json!({"width": w, "height": h})),
            );
            std::thread::sleep(Duration::from_millis(150));
            let png = self.call("GET", &self.s("/screenshot"), None);
            let bytes = base64_decode(png.as_str().unwrap());
            std::fs::write(dir.join(format!("{name}-{size}.png")), bytes).unwrap();
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http(self.port, "DELETE", &self.s(""), &[], "");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn base64_decode(s: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("bad base64 {c}"),
        }
    };
    let clean: Vec<u8> = s
        .bytes()
        .filter(|b| !b.is_ascii_whitespace() && *b != b'=')
        .collect();
    let mut out = Vec::with_capacity(clean.len() * 3 / 4);
    for chunk in clean.chunks(4) {
        let mut n = 0u32;
        for (i, &c) in chunk.iter().enumerate() {
            n |= value(c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

#[test]
fn in_a_real_browser_create_use_once_and_delete() {
    if !root_or_skip("in_a_real_browser_create_use_once_and_delete") {
        return;
    }
    let Some(driver) = Driver::start() else {
        println!(
            "SKIP in_a_real_browser_create_use_once_and_delete: chromium/chromedriver not installed"
        );
        return;
    };
    let shots = std::env::var_os("APPPW_SCREENSHOTS").map(PathBuf::from);
    if let Some(d) = &shots {
        std::fs::create_dir_all(d).unwrap();
    }
    let shots = shots.as_deref();

    let pam = PamService::matrix(&[("alice", NORMAL_PW)]);
    // The browser connects from 127.0.0.1, here part of campus.
    let site = Site::start(
        ", \"127.0.0.0/8\"",
        &format!(
            "{}[notify]\nsendmail = \"SENDMAIL\"\nfrom = \"noreply@example.org\"\n\
             to = \"{{user}}@example.org\"\n",
            pam_web_toml(&pam, "", "")
        ),
    );
    // Existing app passwords: one of alice's, used from off campus; one of bob's.
    let (old_id, _) = site.create("alice", "Old laptop");
    site.create("bob", "Bob's phone");
    let db = rusqlite::Connection::open(site.dir.path().join("apppw.db")).unwrap();
    db.execute(
        "UPDATE app_passwords SET last_used_at = created_at + 3600, last_used_ip = ?1, \
         last_used_service = 'imap' WHERE id = ?2",
        rusqlite::params![OFF_IP, old_id],
    )
    .unwrap();
    drop(db);
    let base = format!("http://127.0.0.1:{}/", site.port);

    // Not signed in: the sign-in page.
    driver.go(&base);
    assert!(driver.url().ends_with("/signin"), "{}", driver.url());
    driver.screenshots(shots, "signin");
    driver.type_into("#user", "alice");
    driver.type_into("#password", "not my password");
    driver.click("button[type=submit]");
    driver.wait_for_text("role=\"alert\"");
    assert!(driver.text("[role=alert]").contains("not right"));
    driver.screenshots(shots, "signin-error");
    driver.type_into("#password", NORMAL_PW);
    driver.click("button[type=submit]");
    driver.wait_for_text("Signed in as alice");

    // The list: alice's only.
    assert_eq!(
        driver.text("h1"),
        "Your app passwords",
        "{}",
        driver.source()
    );
    let list = driver.source();
    assert!(list.contains("Old laptop") && list.contains(OFF_IP));
    assert!(!list.contains("Bob"));
    driver.screenshots(shots, "list");

    // Create.
    driver.click("a[href=new]");
    driver.wait_for_text("name=\"nonce\"");
    assert_eq!(driver.text("h1"), "Create an app password");
    driver.screenshots(shots, "new");
    driver.type_into("#label", "iPhone");
    driver.click("#svc-imap");
    driver.click("#svc-smtp");
    driver.script("document.getElementById('expires').value = '90d';");
    driver.click("button.primary[type=submit]");
    driver.wait_for_text("id=\"password\"");

    // Shown once, with a working copy button.
    let password = driver.text("#password");
    assert!(looks_like_app_password(&password), "{password:?}");
    assert!(
        driver
            .source()
            .contains("You will not see this password again.")
    );
    assert!(
        driver.displayed("#copy"),
        "the script reveals the copy button"
    );
    driver.click("#copy");
    let deadline = Instant::now() + Duration::from_secs(3);
    while driver.text("#copy-status") != "Copied" {
        assert!(Instant::now() < deadline, "copy did not report success");
        std::thread::sleep(Duration::from_millis(50));
    }
    driver.screenshots(shots, "created");

    // Reloading the result (the browser re-submits the form) shows no password.
    driver.call("POST", &driver.s("/refresh"), Some(&json!({})));
    driver.wait_for_text("already created");
    let after = driver.source();
    assert!(!after.contains(&password), "shown again after reload");
    assert!(!driver.exists("#password"));
    assert!(after.contains("iPhone"));
    driver.go(&base);
    assert!(!driver.source().contains(&password));
    assert_eq!(
        site.labels("alice"),
        ["Old laptop", "iPhone"],
        "one new app password"
    );

    // It works for mail, within its services.
    assert!(site.verifies("alice", &password, "imap"));
    assert!(!site.verifies("alice", &password, "pop3"));

    // Delete it, with a confirmation step.
    let out = site.apppw(&["list", "alice", "--json"], "");
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let id = v[1]["id"].as_i64().unwrap();
    driver.click(&format!("a[href='delete?id={id}']"));
    driver.wait_for_text("cannot be undone");
    assert!(driver.text("h1").contains("iPhone"));
    driver.screenshots(shots, "delete");
    driver.click("button.danger");
    driver.wait_for_text("Deleted the app password");
    assert!(driver.text("[role=status]").contains("Deleted"));
    driver.screenshots(shots, "deleted");
    assert_eq!(site.labels("alice"), ["Old laptop"]);
    assert!(
        !site.verifies("alice", &password, "imap"),
        "refused once deleted"
    );

    // The user was told twice by mail, the log has both changes, neither has the password.
    let mail = site.wait_for_mail(2);
    assert!(
        mail.contains("To: alice@example.org") && mail.contains("\"iPhone\""),
        "{mail}"
    );
    let log = site.log();
    assert!(
        log.contains("user=alice action=create label=iPhone"),
        "{log}"
    );
    assert!(
        log.contains("user=alice action=delete label=iPhone"),
        "{log}"
    );
    assert!(!log.contains(&password) && !mail.contains(&password));

    // Sign out: the session is gone.
    driver.click("button.signout");
    driver.wait_for_text("You are signed out.");
    driver.go(&base);
    assert!(
        driver.url().ends_with("/signin"),
        "{}\n{}",
        driver.url(),
        driver.source()
    );
    if let Some(dir) = shots {
        // The off-campus page, from an address outside campus.
        drop(site);
        let site = Site::start("", &pam_web_toml(&pam, "", ""));
        driver.go(&format!("http://127.0.0.1:{}/signin", site.port));
        driver.screenshots(Some(dir), "off-campus");
    }
}
