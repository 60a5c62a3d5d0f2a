//! `apppw-web`, the self-service page, as users and attackers meet it: the built server over
//! real HTTP (on loopback TCP with the proxy secret, or on its Unix socket), and a real
//! headless Chromium driven through chromedriver (W3C WebDriver), with the reverse proxy's
//! headers added by Chromium itself (DevTools `Network.setExtraHTTPHeaders`).
//!
//! - HTTP level: only the proxy is believed (socket, secret), cookie flags and security
//!   headers, CSRF, a repeated submit shows the same password, expired forms come back filled
//!   in, users kept apart, PAM sign-in only from campus, rate limits, error pages, the health
//!   check, the notification mail over SMTP (a sink on loopback), the configuration profile.
//! - Browser: sign in with PAM, create, copy, reload, delete; a double click; an expired form;
//!   the language from Accept-Language and the switcher, local times; a refused label; 413 and
//!   405 pages; the profile download.
//!
//! PAM tests need root (a throwaway `/etc/pam.d` entry); the browser tests need `chromium` and
//! `chromium-driver`. Without them they print a SKIP line. `scripts/screenshots.sh` runs the
//! `screenshots` test, which saves the main pages at phone width in English and Japanese.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw_integration_tests::dovecot::{PamService, free_port};
use apppw_integration_tests::{bin, is_root, run_with_stdin};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const NORMAL_PW: &str = "Winter2026!";
const CAMPUS_IP: &str = "192.0.2.10";
const OFF_IP: &str = "203.0.113.9";
const SECRET_HEADER: &str = "X-Apppw-Proxy-Secret";
/// 2026-12-01T13:39:00Z: 22:39 in Tokyo.
const KNOWN_TIME: i64 = 1_796_132_340;

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

/// Sends one request on `stream` and reads the response.
fn exchange(
    mut stream: impl Read + Write,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if method == "POST"
        && !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
    {
        req.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
    }
    let mut raw_req = req.into_bytes();
    for (k, v) in headers {
        raw_req.extend_from_slice(k.as_bytes());
        raw_req.extend_from_slice(b": ");
        raw_req.extend_from_slice(v.as_bytes());
        raw_req.extend_from_slice(b"\r\n");
    }
    raw_req.extend_from_slice(b"\r\n");
    raw_req.extend_from_slice(body);
    stream.write_all(&raw_req).unwrap();
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
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        if n == 0 {
            break;
        }
        raw.extend_from_slice(&buf[..n]);
        if split.is_none() {
            split = raw.windows(4).position(|w| w == b"\r\n\r\n");
        }
    }
    let split = split.unwrap_or_else(|| panic!("{method} {path}: no end of headers in {raw:?}"));
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

fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
    let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    exchange(
        stream,
        &format!("127.0.0.1:{port}"),
        method,
        path,
        headers,
        body.as_bytes(),
    )
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
    Some(
        body[start..]
            .split('>')
            .nth(1)?
            .split('<')
            .next()?
            .to_owned(),
    )
}

fn looks_like_app_password(s: &str) -> bool {
    let groups: Vec<&str> = s.split(' ').collect();
    groups.len() == 6
        && groups
            .iter()
            .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_lowercase()))
}

// ---------------------------------------------------------------------------------------
// An SMTP sink on loopback: the notification mails as the MTA receives them.

struct SmtpSink {
    port: u16,
    mails: Arc<Mutex<Vec<String>>>,
}

impl SmtpSink {
    fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mails = Arc::new(Mutex::new(Vec::new()));
        let store = Arc::clone(&mails);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { return };
                let store = Arc::clone(&store);
                std::thread::spawn(move || Self::session(conn, &store));
            }
        });
        SmtpSink { port, mails }
    }

    fn session(conn: TcpStream, store: &Mutex<Vec<String>>) {
        conn.set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        let mut out = conn.try_clone().unwrap();
        let mut lines = BufReader::new(conn);
        let _ = out.write_all(b"220 sink ESMTP\r\n");
        let mut envelope = String::new();
        loop {
            let mut line = String::new();
            if lines.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let cmd = line.trim_end().to_ascii_uppercase();
            if cmd.starts_with("EHLO") {
                let _ = out.write_all(b"250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n");
            } else if cmd.starts_with("MAIL") || cmd.starts_with("RCPT") {
                envelope.push_str(&line);
                let _ = out.write_all(b"250 ok\r\n");
            } else if cmd == "DATA" {
                let _ = out.write_all(b"354 go on\r\n");
                let mut data = String::new();
                loop {
                    let mut l = String::new();
                    if lines.read_line(&mut l).unwrap_or(0) == 0 || l == ".\r\n" {
                        break;
                    }
                    data.push_str(&l);
                }
                store.lock().unwrap().push(format!("{envelope}{data}"));
                envelope.clear();
                let _ = out.write_all(b"250 queued\r\n");
            } else if cmd == "QUIT" {
                let _ = out.write_all(b"221 bye\r\n");
                return;
            } else {
                let _ = out.write_all(b"250 ok\r\n");
            }
        }
    }

    fn wait_for(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let mails = self.mails.lock().unwrap().clone();
            if mails.len() >= n {
                return mails;
            }
            assert!(
                Instant::now() < deadline,
                "{} of {n} mails arrived",
                mails.len()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A mail body as text (lettre picks quoted-printable or base64).
fn mail_body(mail: &str) -> String {
    use base64ct::{Base64, Encoding};
    let (headers, body) = mail.split_once("\r\n\r\n").unwrap();
    if headers.contains("Content-Transfer-Encoding: base64") {
        let clean: String = body.split_whitespace().collect();
        return String::from_utf8(Base64::decode_vec(&clean).unwrap()).unwrap();
    }
    if headers.contains("Content-Transfer-Encoding: quoted-printable") {
        let joined = body.replace("=\r\n", "").replace("\r\n", "\n");
        let b = joined.as_bytes();
        let (mut out, mut i) = (Vec::new(), 0);
        while i < b.len() {
            if b[i] == b'=' && i + 2 < b.len() {
                out.push(u8::from_str_radix(&joined[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        return String::from_utf8(out).unwrap();
    }
    body.replace("\r\n", "\n")
}

// ---------------------------------------------------------------------------------------
// The server under test.

enum Listen {
    Tcp,
    Unix,
}

struct Site {
    dir: tempfile::TempDir,
    config: PathBuf,
    port: u16,
    socket: PathBuf,
    secret: String,
    child: Child,
    smtp: SmtpSink,
}

/// The `[notify]` section for this test's SMTP sink.
const NOTIFY: &str =
    "[notify]\nsmtp = \"127.0.0.1:SMTP_PORT\"\nfrom = \"FROM\"\nto = \"{user}@example.org\"\n";
/// Mail server settings (and Tokyo time) for the onboarding tests.
const SITE: &str = "[site]\ntitle = \"Example University mail\"\nlogo = \"LOGO\"\n\
                    timezone = \"Asia/Tokyo\"\naddress = \"{user}@example.org\"\n\
                    help_url = \"https://help.example.org/mail\"\n\
                    [site.imap]\nhost = \"imap.example.org\"\n[site.smtp]\nhost = \"smtp.example.org\"\n";

impl Site {
    /// Starts `apppw-web` on loopback TCP with a proxy secret, with a main config (campus
    /// 192.0.2.0/24 minus 192.0.2.128/25, plus `extra_campus`) and the given `web.toml` text.
    fn start(extra_campus: &str, web_toml: &str) -> Site {
        Site::start_on(Listen::Tcp, extra_campus, web_toml)
    }

    fn start_on(listen: Listen, extra_campus: &str, web_toml: &str) -> Site {
        let dir = tempfile::Builder::new()
            .prefix("apppw-web-test.")
            .tempdir()
            .unwrap();
        let db = dir.path().join("apppw.db");
        let config = dir.path().join("apppw.toml");
        // A stand-in doveadm that notes each auth-cache flush it is asked for.
        let doveadm = dir.path().join("doveadm");
        std::fs::write(
            &doveadm,
            format!(
                "#!/bin/sh\necho \"$@\" >>{}/flushed\necho \"1 cache entries flushed\"\n",
                dir.path().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&doveadm, std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(
            &config,
            format!(
                "database = \"{}\"\n[network]\ncampus = [\"192.0.2.0/24\"{extra_campus}]\n\
                 except = [\"192.0.2.128/25\"]\n[argon2]\nmemory_kib = 1024\niterations = 1\n\
                 [dovecot]\ndoveadm = \"{}\"\n",
                db.display(),
                doveadm.display()
            ),
        )
        .unwrap();
        // Root creates the database (the package's postinst does); the service never does.
        let init = Command::new(bin("apppw-web"))
            .arg("--config")
            .arg(&config)
            .arg("--init-database")
            .output()
            .unwrap();
        assert!(init.status.success(), "{init:?}");
        let smtp = SmtpSink::start();
        let port = free_port();
        let socket = dir.path().join("web.sock");
        let secret: String = (0..32)
            .map(|i| format!("{:02x}", (i * 37 + port as usize) % 256))
            .collect();
        let secret_file = dir.path().join("proxy.secret");
        std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
        let (listen, proxy) = match listen {
            Listen::Tcp => (
                format!("listen = \"127.0.0.1:{port}\"\n"),
                format!("\n[proxy]\nsecret_file = \"{}\"\n", secret_file.display()),
            ),
            Listen::Unix => (
                format!("listen = \"{}\"\n", socket.display()),
                String::new(),
            ),
        };
        let logo = dir.path().join("logo.svg");
        std::fs::write(
            &logo,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 10 10\">\
             <circle cx=\"5\" cy=\"5\" r=\"5\" fill=\"#f9a825\"/></svg>",
        )
        .unwrap();
        let web_toml = web_toml
            .replace("LOGO", &logo.display().to_string())
            .replace("SMTP_PORT", &smtp.port.to_string())
            .replace("FROM", "App passwords <noreply@example.org>");
        let web = dir.path().join("web.toml");
        std::fs::write(&web, format!("{listen}{web_toml}{proxy}")).unwrap();
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
        let mut site = Site {
            dir,
            config,
            port,
            socket,
            secret,
            child,
            smtp,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let up = if site.socket.exists() {
                UnixStream::connect(&site.socket).is_ok()
            } else {
                TcpStream::connect(("127.0.0.1", port)).is_ok()
            };
            if up {
                break;
            }
            if let Ok(Some(status)) = site.child.try_wait() {
                panic!("apppw-web exited ({status}):\n{}", site.log());
            }
            assert!(
                Instant::now() < deadline,
                "apppw-web did not start:\n{}",
                site.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        site
    }

    /// A request as the reverse proxy sends it: with the secret (on TCP) and the client's
    /// address (127.0.0.1 unless the test gives `X-Forwarded-For`).
    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Resp {
        let mut all: Vec<(&str, &str)> = vec![(SECRET_HEADER, &self.secret)];
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("x-forwarded-for"))
        {
            all.push(("X-Forwarded-For", "127.0.0.1"));
        }
        all.extend_from_slice(headers);
        self.raw(method, path, &all, body.as_bytes())
    }

    /// A request exactly as given (no proxy headers added).
    fn raw(&self, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        if self.socket.exists() {
            let s = UnixStream::connect(&self.socket).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            exchange(s, "localhost", method, path, headers, body)
        } else {
            let s = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            exchange(
                s,
                &format!("127.0.0.1:{}", self.port),
                method,
                path,
                headers,
                body,
            )
        }
    }

    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Resp {
        self.request("GET", path, headers, "")
    }

    fn post(&self, path: &str, headers: &[(&str, &str)], fields: &[(&str, &str)]) -> Resp {
        self.request("POST", path, headers, &form(fields))
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
        if !out.status.success() {
            return Vec::new();
        }
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

    fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(self.dir.path().join("apppw.db")).unwrap()
    }
}

impl Drop for Site {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const HEADER_MODE: &str = "[signin]\nmode = \"header\"\n";

/// A signed-in header-mode user: the cookie of their session.
struct Browser<'a> {
    site: &'a Site,
    user: String,
    cookie: String,
}

impl<'a> Browser<'a> {
    fn sign_in(site: &'a Site, user: &str) -> Browser<'a> {
        let r = site.get("/", &[("X-Remote-User", user)]);
        assert_eq!(r.status, 200, "{}\n{}", r.body, site.log());
        let cookie = r.cookie("__Host-apppw-session").expect("session cookie");
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
    assert!(!csp.contains("unsafe"), "{csp}");
    assert_eq!(r.header("X-Frame-Options"), Some("DENY"));
    assert_eq!(r.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    assert!(
        site.log()
            .contains("user=alice action=signin method=header client=127.0.0.1 result=ok"),
        "{}",
        site.log()
    );
    // The user name is canonical (lowercase) whatever the SSO sent.
    let r = site.get("/", &[("X-Remote-User", "Alice")]);
    assert!(r.body.contains("Signed in as alice"), "{}", r.body);

    // No inline script or style anywhere: the CSP forbids them.
    let new = site.get("/new", &[("X-Remote-User", "alice")]);
    assert!(!new.body.contains("<script>") && !new.body.contains("style="));
}

#[test]
fn only_the_proxy_is_believed() {
    // TCP: without the secret, or with a wrong one, nobody is signed in and nothing changes.
    let site = Site::start("", HEADER_MODE);
    for secret in [None, Some("wrong"), Some(&site.secret[1..])] {
        let mut headers = vec![("X-Remote-User", "alice")];
        if let Some(s) = secret {
            headers.push((SECRET_HEADER, s));
        }
        let r = site.raw("GET", "/", &headers, b"");
        assert_eq!(r.status, 403, "{secret:?}: {}", r.body);
        assert!(r.set_cookies().is_empty());
        assert!(!r.body.contains("alice"));
        assert!(r.body.contains("only through the university"), "{}", r.body);
        let r = site.raw("POST", "/new", &headers, b"label=x");
        assert_eq!(r.status, 403);
    }
    assert!(site.labels("alice").is_empty());
    assert!(
        site.log()
            .contains("action=request path=/ peer=127.0.0.1 result=refused-untrusted-peer"),
        "{}",
        site.log()
    );
    assert!(
        !site.log().contains(&site.secret),
        "the secret is never logged"
    );
    // The health check needs no secret (it tells nothing but "ok").
    assert_eq!(site.raw("GET", "/healthz", &[], b"").status, 200);

    // Without the sign-in header nobody is signed in, whatever else is sent.
    let r = site.get("/", &[]);
    assert_eq!(r.status, 403);
    assert!(r.body.contains("Not signed in"));

    // A name the page cannot take (not UTF-8, a control character, too long): refused with a
    // page and a log line, never a dropped connection.
    let site = Site::start("", HEADER_MODE);
    let long = "x".repeat(300);
    for bad in [&b"\xff\xfeal"[..], b"al\x01ice", long.as_bytes()] {
        let mut req = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_vec();
        req.extend_from_slice(
            format!("{SECRET_HEADER}: {}\r\nX-Remote-User: ", site.secret).as_bytes(),
        );
        req.extend_from_slice(bad);
        req.extend_from_slice(b"\r\n\r\n");
        let mut s = TcpStream::connect(("127.0.0.1", site.port)).unwrap();
        s.write_all(&req).unwrap();
        let mut out = Vec::new();
        s.read_to_end(&mut out).unwrap();
        let out = String::from_utf8_lossy(&out);
        assert!(
            out.starts_with("HTTP/1.1 403") || out.starts_with("HTTP/1.1 400"),
            "{bad:?}: {out}"
        );
        if out.starts_with("HTTP/1.1 403") {
            assert!(out.contains("cannot accept"), "{out}");
        }
    }
    assert!(
        site.log().contains("result=refused-bad-user"),
        "{}",
        site.log()
    );
    let r = site.get("/", &[("X-Remote-User", "高橋")]);
    assert_eq!(r.status, 200, "a UTF-8 name is a name: {}", r.body);

    // The Unix socket (the default): whoever can open it is the proxy; nobody else can.
    let site = Site::start_on(Listen::Unix, "", HEADER_MODE);
    let mode = std::fs::metadata(&site.socket)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o660, "socket mode {mode:o}");
    let r = site.raw(
        "GET",
        "/",
        &[("X-Remote-User", "alice"), ("X-Forwarded-For", "192.0.2.7")],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("Signed in as alice"));
    assert!(
        site.log()
            .contains("method=header client=192.0.2.7 result=ok"),
        "{}",
        site.log()
    );

    // TCP without a secret, or on a non-loopback address, does not start.
    let dir = tempfile::tempdir().unwrap();
    let web = dir.path().join("web.toml");
    for listen in ["127.0.0.1:1", "0.0.0.0:8080"] {
        std::fs::write(&web, format!("listen = \"{listen}\"\n{HEADER_MODE}")).unwrap();
        let out = check_config(&site.config, &web);
        assert_eq!(out.status.code(), Some(1), "{listen}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("secret_file") || err.contains("loopback"),
            "{err}"
        );
    }
}

#[test]
fn forms_need_the_csrf_token_and_a_repeated_submit_shows_the_same_password() {
    let site = Site::start("", &format!("{HEADER_MODE}{NOTIFY}"));
    let alice = Browser::sign_in(&site, "alice");
    let page = alice.get("/new");
    assert_eq!(page.status, 200);
    let csrf = page.field("csrf");
    let nonce = page.field("nonce");
    let fields = |csrf: &str| -> Vec<(&'static str, String)> {
        vec![
            ("csrf", csrf.to_owned()),
            ("nonce", nonce.clone()),
            ("label", "Thunderbird".to_owned()),
            ("service", "imap".to_owned()),
            ("service", "smtp".to_owned()),
            ("expires", "90d".to_owned()),
        ]
    };
    let refs = |v: &[(&'static str, String)]| -> Vec<(&'static str, String)> { v.to_vec() };

    // Cross-site (or a sibling site): refused outright.
    let f = refs(&fields(&csrf));
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for fetch_site in ["cross-site", "same-site"] {
        let mut headers = alice.headers();
        headers.push(("Sec-Fetch-Site", fetch_site));
        let r = site.post("/new", &headers, &f);
        assert_eq!(r.status, 403, "{fetch_site}");
        assert!(r.body.contains("another web site"), "{}", r.body);
    }
    // Without a token, a wrong one or another session's: the form again, as typed, with a
    // fresh token and a one-line explanation; nothing created.
    let other = Browser::sign_in(&site, "alice");
    let others_csrf = other.get("/new").field("csrf");
    for token in ["", "0000", others_csrf.as_str()] {
        let f = refs(&fields(token));
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let r = alice.post("/new", &f);
        assert_eq!(r.status, 403, "token {token:?}: {}", r.body);
        assert!(password_in(&r.body).is_none());
        assert!(r.body.contains("This form had expired"), "{}", r.body);
        assert!(
            r.body.contains("value=\"Thunderbird\""),
            "typed label kept: {}",
            r.body
        );
        assert!(
            r.body
                .contains("id=\"svc-imap\" name=\"service\" value=\"imap\" checked")
        );
        assert!(r.body.contains("<option value=\"90d\" selected>"));
        assert_eq!(r.field("csrf"), csrf, "the session's valid token");
        assert!(
            r.body.contains("Signed in as alice"),
            "the signed-in bar is there"
        );
    }
    assert!(site.labels("alice").is_empty(), "nothing created so far");
    assert!(
        site.log()
            .contains("action=post path=/new client=127.0.0.1 result=refused-csrf"),
        "{}",
        site.log()
    );

    // With the token: the password, never cached.
    let r = alice.post("/new", &f);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    let pw = password_in(&r.body).expect("password shown");
    assert!(looks_like_app_password(&pw), "{pw}");
    assert!(r.body.contains("You will not see this password again."));
    assert!(!r.body.contains("sent the form twice"));
    assert_eq!(site.labels("alice"), ["Thunderbird"]);
    assert!(site.verifies("alice", &pw, "imap"));
    assert!(
        !site.verifies("alice", &pw, "pop3"),
        "restricted to imap, smtp"
    );

    // The same form again (a double click, a reload of the result): the same password, said
    // so, nothing new; another session gets nothing.
    let again = alice.post("/new", &f);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(password_in(&again.body).as_deref(), Some(pw.as_str()));
    assert!(
        again.body.contains("You sent the form twice"),
        "{}",
        again.body
    );
    assert_eq!(site.labels("alice"), ["Thunderbird"]);
    let mut other_fields = refs(&fields(&others_csrf));
    other_fields.retain(|(k, _)| *k != "label");
    other_fields.push(("label", "Other".into()));
    let f2: Vec<(&str, &str)> = other_fields.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let r = other.post("/new", &f2);
    assert!(password_in(&r.body).is_none(), "{}", r.body);
    assert!(!r.body.contains(&pw));
    let list = alice.get("/");
    assert!(list.body.contains("Thunderbird") && !list.body.contains(&pw));

    // The audit line and the mail name the label, never the password.
    let log = site.log();
    assert!(
        log.contains("user=alice action=create label=Thunderbird id=1 client=127.0.0.1 result=ok"),
        "{log}"
    );
    assert!(
        log.contains(
            "user=alice action=create label=Thunderbird id=1 client=127.0.0.1 result=shown-again"
        ),
        "{log}"
    );
    assert!(!log.contains(&pw));
    let mails = site.smtp.wait_for(1);
    assert!(
        mails[0].contains("RCPT TO:<alice@example.org>"),
        "{}",
        mails[0]
    );
    assert!(
        mail_body(&mails[0]).contains("“Thunderbird”"),
        "{}",
        mails[0]
    );
    assert!(!mails[0].contains(&pw));

    // Delete needs the token too; a wrong one shows the confirmation again.
    let confirm = alice.get("/delete?id=1");
    assert_eq!(confirm.status, 200);
    assert!(confirm.body.contains("Delete “Thunderbird”?"));
    let r = alice.post("/delete", &[("id", "1")]);
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains("This form had expired") && r.body.contains("Delete “Thunderbird”?"),
        "{}",
        r.body
    );
    assert!(
        !site.dir.path().join("flushed").exists(),
        "no flush before the delete"
    );
    let r = alice.post("/delete", &[("id", "1"), ("csrf", &confirm.field("csrf"))]);
    assert_eq!(r.status, 303, "{}", r.body);
    assert!(site.labels("alice").is_empty());
    // As after `apppw revoke`: Dovecot's auth cache forgets the user (SPEC "Revocation and
    // Dovecot's cache").
    assert_eq!(
        std::fs::read_to_string(site.dir.path().join("flushed")).unwrap_or_default(),
        "auth cache flush -- alice\n"
    );
    assert!(site.log().contains("auth_cache=flushed"), "{}", site.log());
    assert!(!site.verifies("alice", &pw, "imap"));
    let mails = site.smtp.wait_for(2);
    assert!(mail_body(&mails[1]).contains("was deleted"), "{}", mails[1]);
}

#[test]
fn a_double_submit_racing_the_first_gets_the_same_password() {
    let site = Site::start("", HEADER_MODE);
    let alice = Browser::sign_in(&site, "alice");
    let page = alice.get("/new");
    let body = form(&[
        ("csrf", &page.field("csrf")),
        ("nonce", &page.field("nonce")),
        ("label", "iPad"),
    ]);
    let results: Vec<Resp> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|i| {
                let body = body.clone();
                let alice = &alice;
                s.spawn(move || {
                    std::thread::sleep(Duration::from_millis(i * 20));
                    alice.site.request("POST", "/new", &alice.headers(), &body)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let passwords: Vec<Option<String>> = results.iter().map(|r| password_in(&r.body)).collect();
    assert!(results.iter().all(|r| r.status == 200), "{results:?}");
    assert!(
        passwords[0].is_some() && passwords[0] == passwords[1],
        "{passwords:?}"
    );
    assert_eq!(site.labels("alice"), ["iPad"], "one app password");
}

#[test]
fn users_never_see_or_delete_each_others_passwords() {
    let site = Site::start("", HEADER_MODE);
    let (bob_id, bob_pw) = site.create("bob", "Bob's secret phone");
    site.create("alice", "Alice laptop");
    let alice = Browser::sign_in(&site, "alice");

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
    assert_ne!(r.cookie("__Host-apppw-session").unwrap(), alice.cookie);
    let r = alice.post("/delete", &[("id", "2"), ("csrf", &csrf)]);
    assert_eq!(r.status, 403, "old session and token are void");
    assert_eq!(site.labels("alice"), ["Alice laptop"]);

    // A duplicate label, or one with a direction override: the form back with the reason.
    let alice = Browser::sign_in(&site, "alice");
    for (label, reason) in [
        ("Alice laptop", "already have an app password named"),
        (
            "phone\u{202e}LTR",
            "invisible or text-direction character (U+202E)",
        ),
        ("pho\u{200b}ne", "(U+200B)"),
    ] {
        let page = alice.get("/new");
        let r = alice.post(
            "/new",
            &[
                ("csrf", &page.field("csrf")),
                ("nonce", &page.field("nonce")),
                ("label", label),
            ],
        );
        assert!(
            r.status == 409 || r.status == 400,
            "{label:?}: {}",
            r.status
        );
        assert!(r.body.contains(reason), "{label:?}: {}", r.body);
        assert!(r.body.contains("role=\"alert\""));
    }
    assert_eq!(site.labels("alice"), ["Alice laptop"]);
}

#[test]
fn language_from_accept_language_and_the_switcher_with_local_times() {
    let site = Site::start("", &format!("{HEADER_MODE}{SITE}"));
    let (id, _) = site.create("alice", "phone");
    site.db()
        .execute(
            "UPDATE app_passwords SET created_at = ?1, last_used_at = ?1, last_used_ip = '192.0.2.7', \
             last_used_service = 'imap' WHERE id = ?2",
            rusqlite::params![KNOWN_TIME, id],
        )
        .unwrap();
    let ja = site.get(
        "/",
        &[
            ("X-Remote-User", "alice"),
            ("Accept-Language", "ja-JP,ja;q=0.9,en;q=0.8"),
        ],
    );
    assert_eq!(ja.status, 200, "{}", ja.body);
    for text in [
        "<html lang=\"ja\">",
        "alice でサインイン中",
        "アプリパスワード一覧",
        "2026年12月1日 22:39 JST",
        "<time datetime=\"2026-12-01T22:39:00+09:00\">",
        "接続元 192.0.2.7（学内ネットワーク）",
        "（Outlook、Thunderbird、Apple Mail、スマートフォンなど）",
        "<span aria-current=\"true\" lang=\"ja\">日本語</span>",
        "<a href=\"?lang=en\" lang=\"en\" hreflang=\"en\">English</a>",
    ] {
        assert!(ja.body.contains(text), "{text} missing:\n{}", ja.body);
    }
    for bad in ["(", ")"] {
        let main = ja
            .body
            .split("<main")
            .nth(1)
            .unwrap()
            .split("</main>")
            .next()
            .unwrap();
        let text: String = main
            .split('<')
            .map(|t| t.split_once('>').map_or("", |x| x.1))
            .collect();
        assert!(!text.contains(bad), "ASCII {bad} in Japanese text: {text}");
    }
    let new = site.get(
        "/new",
        &[("X-Remote-User", "alice"), ("Accept-Language", "ja")],
    );
    assert!(new.body.contains("IMAP：メールの閲覧"), "{}", new.body);

    // Other languages fall back to English.
    let de = site.get(
        "/",
        &[
            ("X-Remote-User", "alice"),
            ("Accept-Language", "de-DE,de;q=0.9"),
        ],
    );
    assert!(
        de.body.contains("<html lang=\"en\">") && de.body.contains("1 December 2026, 22:39 JST"),
        "{}",
        de.body
    );

    // The switcher: ?lang=en wins over the browser and is remembered in a cookie.
    let r = site.get(
        "/?lang=en",
        &[("X-Remote-User", "alice"), ("Accept-Language", "ja")],
    );
    assert!(r.body.contains("Your app passwords"), "{}", r.body);
    let set = r
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("__Host-apppw-lang="))
        .unwrap()
        .to_owned();
    for attr in ["Path=/", "SameSite=Lax", "Secure", "Max-Age=31536000"] {
        assert!(set.split("; ").any(|a| a == attr), "{attr}: {set}");
    }
    let lang = r.cookie("__Host-apppw-lang").expect("language cookie");
    assert_eq!(lang, "__Host-apppw-lang=en");
    let r = site.get(
        "/new",
        &[
            ("X-Remote-User", "alice"),
            ("Accept-Language", "ja"),
            ("Cookie", &lang),
        ],
    );
    assert!(r.body.contains("Create an app password"), "{}", r.body);
    let r = site.get(
        "/?lang=xx",
        &[("X-Remote-User", "alice"), ("Accept-Language", "ja")],
    );
    assert!(r.body.contains("アプリパスワード一覧") && r.cookie("__Host-apppw-lang").is_none());
}

#[test]
fn error_pages_health_check_and_configuration_files() {
    let site = Site::start("", &format!("{HEADER_MODE}{SITE}"));
    let user = [("X-Remote-User", "alice"), ("Accept-Language", "ja")];
    // 413: a body over 16 KiB, with or without Content-Length.
    let big = "label=".to_owned() + &"a".repeat(20_000);
    let r = site.request("POST", "/new", &user, &big);
    assert_eq!(r.status, 413);
    assert!(r.body.contains("リクエストが大きすぎます"), "{}", r.body);
    // 405 with Allow, 404: pages in the user's language, with the security headers.
    let r = site.request("PUT", "/", &user, "");
    assert_eq!(r.status, 405);
    assert!(
        r.header("Allow").is_some_and(|a| a.contains("GET")),
        "{:?}",
        r.headers
    );
    assert!(r.body.contains("この操作はできません"), "{}", r.body);
    assert!(r.header("Content-Security-Policy").is_some());
    let r = site.request("DELETE", "/nothing", &user, "");
    assert_eq!(r.status, 405);
    let r = site.get("/nothing", &user);
    assert_eq!(r.status, 404);
    assert!(r.body.contains("見つかりません"));
    // A request head that never ends is cut off.
    let mut s = TcpStream::connect(("127.0.0.1", site.port)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "slow head not cut off"
    );

    // The health check reads the store: fine before the first app password, not once the
    // database is garbage.
    let r = site.raw("GET", "/healthz", &[], b"");
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    // Without the database the list is empty, but the page never creates the file: one
    // made by the service's user would not be trusted by the mail side.
    let db = site.dir.path().join("apppw.db");
    std::fs::remove_file(&db).unwrap();
    assert_eq!(site.raw("GET", "/healthz", &[], b"").status, 200);
    let alice = Browser::sign_in(&site, "alice");
    let page = alice.get("/new");
    let r = alice.post(
        "/new",
        &[
            ("csrf", &page.field("csrf")),
            ("nonce", &page.field("nonce")),
            ("label", "x"),
        ],
    );
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(!db.exists(), "created by the service");
    assert!(site.log().contains("--init-database"), "{}", site.log());
    std::fs::write(
        site.dir.path().join("apppw.db"),
        b"this is not SQLite".repeat(100),
    )
    .unwrap();
    let r = site.raw("GET", "/healthz", &[], b"");
    assert_eq!(r.status, 503, "{}", r.body);
    assert!(site.log().contains("health check"), "{}", site.log());

    // Thunderbird's autoconfig, without signing in.
    let r = site.request("GET", "/mail/config-v1.1.xml", &[], "");
    assert_eq!(r.status, 200);
    for text in [
        "<domain>example.org</domain>",
        "<hostname>imap.example.org</hostname>",
        "<port>993</port>",
        "<socketType>SSL</socketType>",
        "<port>587</port>",
        "<socketType>STARTTLS</socketType>",
        "<username>%EMAILLOCALPART%</username>",
    ] {
        assert!(r.body.contains(text), "{text}: {}", r.body);
    }

    // A missing database directory is an error for --check and at start, not an empty list.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("apppw.toml");
    std::fs::write(&config, "database = \"/nonexistent/apppw/apppw.db\"\n").unwrap();
    let web = dir.path().join("web.toml");
    std::fs::write(&web, HEADER_MODE).unwrap();
    let out = check_config(&config, &web);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("/nonexistent/apppw"),
        "{out:?}"
    );
    // Meaning errors of web.toml name the line.
    std::fs::write(
        &web,
        "[signin]\nmode = \"header\"\n\n[site]\ntimezone = \"Mars/Olympus\"\n",
    )
    .unwrap();
    let out = check_config(&site.config, &web);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 5") && err.contains("site.timezone"),
        "{err}"
    );
}

/// Checks a `.mobileconfig` with Python's plistlib and returns it as JSON.
fn parse_plist(bytes: &[u8]) -> Value {
    let out = run_with_stdin(
        Command::new("python3").args([
            "-c",
            "import plistlib, sys, json; print(json.dumps(plistlib.loads(sys.stdin.buffer.read())))",
        ]),
        bytes,
    );
    assert!(
        out.status.success(),
        "not a valid plist: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The profile's checks: servers, user, address, and the password that was shown.
fn check_profile(profile: &Value, password: &str) {
    assert_eq!(profile["PayloadType"], "Configuration");
    let account = &profile["PayloadContent"][0];
    assert_eq!(account["PayloadType"], "com.apple.mail.managed");
    assert_eq!(account["EmailAccountType"], "EmailTypeIMAP");
    assert_eq!(account["EmailAddress"], "alice@example.org");
    assert_eq!(account["IncomingMailServerHostName"], "imap.example.org");
    assert_eq!(account["IncomingMailServerPortNumber"], 993);
    assert_eq!(account["IncomingMailServerUseSSL"], true);
    assert_eq!(account["IncomingMailServerUsername"], "alice");
    assert_eq!(account["OutgoingMailServerHostName"], "smtp.example.org");
    assert_eq!(account["OutgoingMailServerPortNumber"], 587);
    assert_eq!(account["OutgoingPasswordSameAsIncomingPassword"], true);
    assert_eq!(account["IncomingPassword"], password.replace(' ', ""));
    assert_ne!(profile["PayloadUUID"], account["PayloadUUID"]);
}

#[test]
fn the_created_page_shows_the_settings_and_offers_the_profile_once() {
    let site = Site::start(
        "",
        &format!(
            "{HEADER_MODE}{SITE}[notify]\nsmtp = \"127.0.0.1:SMTP_PORT\"\n\
             from = \"アプリパスワード <noreply@example.org>\"\nto = \"{{user}}@example.org\"\n"
        ),
    );
    let alice = Browser::sign_in(&site, "alice");
    let page = alice.get("/new");
    let (csrf, nonce) = (page.field("csrf"), page.field("nonce"));
    let r = alice.post(
        "/new",
        &[("csrf", &csrf), ("nonce", &nonce), ("label", "iPhone")],
    );
    let pw = password_in(&r.body).unwrap();
    for text in [
        "imap.example.org",
        "smtp.example.org",
        ">993<",
        ">587<",
        "SSL/TLS",
        "STARTTLS",
        "Download the profile",
        "Thunderbird finds",
    ] {
        assert!(r.body.contains(text), "{text}: {}", r.body);
    }
    // The site's name, logo and help link.
    for text in [
        "<title>Your new app password for “iPhone” – Example University mail</title>",
        "<img src=\"logo\" alt=\"\" class=\"logo\">",
        "<a href=\"https://help.example.org/mail\">Help</a>",
    ] {
        assert!(r.body.contains(text), "{text}: {}", r.body);
    }
    let logo = alice.get("/logo");
    assert_eq!(logo.header("Content-Type"), Some("image/svg+xml"));
    assert!(logo.body.contains("<circle"));
    let r = alice.post("/profile", &[("csrf", &csrf), ("nonce", &nonce)]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("Content-Type"),
        Some("application/x-apple-aspen-config")
    );
    assert!(
        r.header("Content-Disposition")
            .unwrap()
            .contains("mail.mobileconfig")
    );
    assert_eq!(r.header("Cache-Control"), Some("no-store"));
    check_profile(&parse_plist(r.body.as_bytes()), &pw);
    // Once only; the password is in that one download.
    let r = alice.post("/profile", &[("csrf", &csrf), ("nonce", &nonce)]);
    assert_eq!(r.status, 410);
    assert!(!r.body.contains(&pw.replace(' ', "")));
    assert!(
        site.log().contains("action=profile label=iPhone"),
        "{}",
        site.log()
    );
    assert!(!site.log().contains(&pw.replace(' ', "")));

    // The mail: Japanese display name encoded, Date, Message-ID, the time in Tokyo.
    let mail = &site.smtp.wait_for(1)[0];
    let (headers, _) = mail.split_once("\r\n\r\n").unwrap();
    assert!(headers.is_ascii(), "{headers}");
    assert!(headers.contains("From: =?utf-8?b?"), "{headers}");
    assert!(
        headers.contains("\r\nDate: ") && headers.contains("\r\nMessage-ID: <"),
        "{headers}"
    );
    let body = mail_body(mail);
    assert!(body.contains(" JST (from 127.0.0.1)"), "{body}");
}

/// `apppw-web --check` with these files.
fn check_config(config: &Path, web: &Path) -> Output {
    Command::new(bin("apppw-web"))
        .arg("--config")
        .arg(config)
        .arg("--config-web")
        .arg(web)
        .arg("--check")
        .output()
        .unwrap()
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
    let pam = PamService::matrix(&[
        ("alice", NORMAL_PW),
        ("carol", NORMAL_PW),
        ("Dave", NORMAL_PW),
    ]);
    let site = Site::start(
        "",
        &pam_web_toml(
            &pam,
            "",
            "[limits]\nsignin_failures_per_user = 3\nsignin_failures_per_address = 5\n",
        ),
    );

    // Off campus (and in `except`, or unknown): no form, and a post is refused before PAM.
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
    // Without the form's token: the form again with the name kept, a fresh token, a reason.
    let r = site.post(
        "/signin",
        &[("X-Forwarded-For", CAMPUS_IP), ("Cookie", cookie.as_str())],
        &[("user", "alice"), ("password", NORMAL_PW)],
    );
    assert_eq!(r.status, 403);
    assert!(
        r.body.contains("The sign-in form had expired") && r.body.contains("value=\"alice\""),
        "{}",
        r.body
    );
    assert!(r.cookie("apppw-signin").is_some() && r.cookie("apppw-session").is_none());

    // On campus: wrong password refused, right one signs in.
    let r = pam_sign_in(&site, CAMPUS_IP, "alice", "wrong");
    assert_eq!(r.status, 401);
    assert!(r.body.contains("not right"));
    let r = pam_sign_in(&site, CAMPUS_IP, "alice", NORMAL_PW);
    assert_eq!(r.status, 303, "{}\n{}", r.body, site.log());
    let session = r.cookie("apppw-session").unwrap();
    let list = site.get("/", &[("Cookie", session.as_str())]);
    assert!(list.body.contains("Signed in as alice"), "{}", list.body);
    // The name PAM returned, canonical: "Dave" signs in as dave.
    let r = pam_sign_in(&site, CAMPUS_IP, "Dave", NORMAL_PW);
    let session = r.cookie("apppw-session").unwrap();
    assert!(
        site.get("/", &[("Cookie", session.as_str())])
            .body
            .contains("Signed in as dave")
    );
    // A POST after the session ended: the sign-in form, saying so.
    let r = site.post(
        "/new",
        &[("Cookie", "apppw-session=0000")],
        &[("label", "x")],
    );
    assert_eq!(r.status, 401);
    assert!(r.body.contains("Your session had ended"), "{}", r.body);

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
    assert!(
        log.contains("user=u1 action=signin method=pam client=192.0.2.40 detail="),
        "{log}"
    );
    assert!(!log.contains(NORMAL_PW));

    // X-Forwarded-For: the entry the proxy added counts, hops of trusted_proxies skipped; a
    // client-supplied chain cannot put the client on campus.
    let site = Site::start("", &pam_web_toml(&pam, "\"198.51.100.1\"", ""));
    assert_eq!(
        site.get("/signin", &[("X-Forwarded-For", "192.0.2.10, 203.0.113.5")])
            .status,
        403
    );
    assert_eq!(
        site.get("/signin", &[("X-Forwarded-For", "203.0.113.5, 192.0.2.10")])
            .status,
        200
    );
    assert_eq!(
        site.get(
            "/signin",
            &[("X-Forwarded-For", "192.0.2.10, 198.51.100.1")]
        )
        .status,
        200
    );
    assert_eq!(
        site.get(
            "/signin",
            &[("X-Forwarded-For", "203.0.113.5, 198.51.100.1")]
        )
        .status,
        403
    );
}

// ---------------------------------------------------------------------------------------
// The browser tests: headless Chromium through chromedriver.

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    child: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
    downloads: tempfile::TempDir,
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
        let downloads = tempfile::Builder::new()
            .prefix("apppw-downloads.")
            .tempdir()
            .unwrap();
        let mut driver = Driver {
            child,
            port,
            session: String::new(),
            _profile: profile,
            downloads,
        };
        let v = driver.call("POST", "/session", Some(&caps));
        driver.session = v["sessionId"].as_str().expect("session id").to_owned();
        driver.cdp("Network.enable", &json!({}));
        let dir = driver.downloads.path().display().to_string();
        driver.cdp(
            "Browser.setDownloadBehavior",
            &json!({"behavior": "allow", "downloadPath": dir}),
        );
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

    /// A DevTools command through chromedriver.
    fn cdp(&self, cmd: &str, params: &Value) -> Value {
        self.call(
            "POST",
            &self.s("/goog/cdp/execute"),
            Some(&json!({"cmd": cmd, "params": params})),
        )
    }

    /// Every request from now on carries what the reverse proxy adds: the secret, the client
    /// address, and `extra` (the SSO's user header, a browser language).
    fn behind_proxy(&self, site: &Site, extra: &[(&str, &str)]) {
        let mut headers = serde_json::Map::new();
        headers.insert(SECRET_HEADER.into(), json!(site.secret));
        headers.insert("X-Forwarded-For".into(), json!("127.0.0.1"));
        for (k, v) in extra {
            headers.insert((*k).into(), json!(v));
        }
        self.cdp(
            "Network.setExtraHTTPHeaders",
            &json!({ "headers": headers }),
        );
    }

    fn delete_cookies(&self) {
        self.call("DELETE", &self.s("/cookie"), None);
    }

    /// Two clicks as fast as a person's double click (W3C actions).
    fn double_click(&self, css: &str) {
        let el = self.find(css);
        let origin = json!({ ELEMENT: el });
        let actions = json!({"actions": [{
            "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
            "actions": [
                {"type": "pointerMove", "duration": 0, "origin": origin, "x": 0, "y": 0},
                {"type": "pointerDown", "button": 0},
                {"type": "pointerUp", "button": 0},
                {"type": "pause", "duration": 30},
                {"type": "pointerDown", "button": 0},
                {"type": "pointerUp", "button": 0}
            ]
        }]});
        self.call("POST", &self.s("/actions"), Some(&actions));
    }

    /// Waits for a downloaded file and returns its bytes.
    fn downloaded(&self, name: &str) -> Vec<u8> {
        let path = self.downloads.path().join(name);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !path.exists() {
            assert!(Instant::now() < deadline, "{name} was not downloaded");
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(100));
        std::fs::read(path).unwrap()
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

    /// Saves a screenshot at phone width as `DIR/NAME.png` (and at desktop width as
    /// `DIR/NAME-desktop.png` with `desktop`).
    fn screenshots(&self, dir: Option<&Path>, name: &str, desktop: bool) {
        let Some(dir) = dir else { return };
        let sizes: &[(&str, u32, u32)] = if desktop {
            &[("", 390, 844), ("-desktop", 1280, 800)]
        } else {
            &[("", 390, 844)]
        };
        for &(size, w, h) in sizes {
            self.call(
                "POST",
                &self.s("/window/rect"),
                Some(&json!({"width": w, "height": h})),
            );
            std::thread::sleep(Duration::from_millis(150));
            // The whole page, as tall as it is (a phone scrolls).
            let tall = self
                .script("return document.documentElement.scrollHeight;")
                .as_u64()
                .unwrap_or(u64::from(h))
                .clamp(u64::from(h), 2400);
            if tall > u64::from(h) {
                let chrome = self
                    .script("return window.outerHeight - window.innerHeight;")
                    .as_u64()
                    .unwrap_or(0);
                self.call(
                    "POST",
                    &self.s("/window/rect"),
                    Some(&json!({"width": w, "height": tall + chrome})),
                );
                std::thread::sleep(Duration::from_millis(150));
            }
            let png = self.call("GET", &self.s("/screenshot"), None);
            let bytes = base64_decode(png.as_str().unwrap());
            std::fs::write(dir.join(format!("{name}{size}.png")), bytes).unwrap();
        }
        self.call(
            "POST",
            &self.s("/window/rect"),
            Some(&json!({"width": 1280, "height": 800})),
        );
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

fn driver_or_skip(test: &str) -> Option<Driver> {
    let d = Driver::start();
    if d.is_none() {
        println!("SKIP {test}: chromium/chromedriver not installed");
    }
    d
}

#[test]
fn in_a_real_browser_create_use_once_and_delete() {
    if !root_or_skip("in_a_real_browser_create_use_once_and_delete") {
        return;
    }
    let Some(driver) = driver_or_skip("in_a_real_browser_create_use_once_and_delete") else {
        return;
    };
    let pam = PamService::matrix(&[("alice", NORMAL_PW)]);
    // The browser's address (127.0.0.1, as the proxy forwards it) is campus here.
    let site = Site::start(
        ", \"127.0.0.0/8\"",
        &format!("{}{NOTIFY}", pam_web_toml(&pam, "", "")),
    );
    driver.behind_proxy(&site, &[]);
    // Existing app passwords: one of alice's, used from off campus; one of bob's.
    let (old_id, _) = site.create("alice", "Old laptop");
    site.create("bob", "Bob's phone");
    site.db()
        .execute(
            "UPDATE app_passwords SET last_used_at = created_at + 3600, last_used_ip = ?1, \
             last_used_service = 'imap' WHERE id = ?2",
            rusqlite::params![OFF_IP, old_id],
        )
        .unwrap();
    let base = format!("http://127.0.0.1:{}/", site.port);

    // Not signed in: the sign-in page.
    driver.go(&base);
    assert!(driver.url().ends_with("/signin"), "{}", driver.url());
    driver.type_into("#user", "alice");
    driver.type_into("#password", "not my password");
    driver.click("button[type=submit]");
    driver.wait_for_text("role=\"alert\"");
    assert!(driver.text("[role=alert]").contains("not right"));
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
    assert!(
        list.contains("Old laptop")
            && list.contains(OFF_IP)
            && list.contains("outside the campus network")
    );
    assert!(!list.contains("Bob"));

    // Create.
    driver.click("a[href=new]");
    driver.wait_for_text("name=\"nonce\"");
    assert_eq!(driver.text("h1"), "Create an app password");
    driver.type_into("#label", "iPhone");
    driver.click("#svc-imap");
    driver.click("#svc-smtp");
    driver.script("document.getElementById('expires').value = '90d';");
    driver.click("button.primary[type=submit]");
    driver.wait_for_text("id=\"password\"");

    // Shown, with a working copy button.
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

    // Reloading the result (the browser sends the form again) shows the same password again,
    // for a short while, and creates nothing.
    driver.call("POST", &driver.s("/refresh"), Some(&json!({})));
    driver.wait_for_text("You sent the form twice");
    assert_eq!(driver.text("#password"), password);
    driver.go(&base);
    assert!(!driver.source().contains(&password), "never on the list");
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
    driver.click("button.danger");
    driver.wait_for_text("Deleted the app password");
    assert!(driver.text("[role=status]").contains("Deleted"));
    assert_eq!(site.labels("alice"), ["Old laptop"]);
    assert!(
        !site.verifies("alice", &password, "imap"),
        "refused once deleted"
    );

    // The user was told twice by mail, the log has both changes, neither has the password.
    let mails = site.smtp.wait_for(2);
    assert!(
        mails[0].contains("alice@example.org") && mail_body(&mails[0]).contains("“iPhone”"),
        "{}",
        mails[0]
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
    assert!(!log.contains(&password) && !mails.concat().contains(&password));

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
}

#[test]
fn in_a_real_browser_a_double_click_and_an_expired_form_lose_nothing() {
    let Some(driver) =
        driver_or_skip("in_a_real_browser_a_double_click_and_an_expired_form_lose_nothing")
    else {
        return;
    };
    let site = Site::start("", &format!("{HEADER_MODE}{SITE}"));
    driver.behind_proxy(&site, &[("X-Remote-User", "alice")]);
    let base = format!("http://127.0.0.1:{}/", site.port);

    // The button is disabled (and says so) as soon as the form is sent.
    driver.go(&format!("{base}new"));
    driver.type_into("#label", "Held back");
    driver.script(
        "document.querySelector('form[data-once]').addEventListener('submit', e => e.preventDefault());",
    );
    driver.click("button.primary[type=submit]");
    assert_eq!(
        driver.script("return document.querySelector('button.primary').disabled;"),
        json!(true)
    );
    assert_eq!(driver.text("button.primary"), "Creating…");

    // A real double click on Create: one app password, and it is shown.
    driver.go(&format!("{base}new"));
    driver.type_into("#label", "iPhone");
    driver.double_click("button.primary[type=submit]");
    driver.wait_for_text("id=\"password\"");
    let password = driver.text("#password");
    assert!(looks_like_app_password(&password), "{password}");
    assert_eq!(site.labels("alice"), ["iPhone"]);

    // The profile, downloaded by the browser, is a valid plist with this password.
    driver.click("#profile");
    let profile = parse_plist(&driver.downloaded("mail.mobileconfig"));
    check_profile(&profile, &password);

    // A form left open until its session ended: sent, it comes back as typed, with a fresh
    // token and one line saying why; sent again, it works.
    driver.go(&format!("{base}new"));
    driver.type_into("#label", "Laptop");
    driver.click("#svc-imap");
    driver.delete_cookies();
    driver.click("button.primary[type=submit]");
    driver.wait_for_text("This form had expired");
    assert_eq!(
        driver.script("return document.getElementById('label').value;"),
        json!("Laptop")
    );
    assert_eq!(
        driver.script("return document.getElementById('svc-imap').checked;"),
        json!(true)
    );
    assert!(driver.source().contains("Signed in as alice"));
    assert_eq!(site.labels("alice"), ["iPhone"]);
    driver.click("button.primary[type=submit]");
    driver.wait_for_text("id=\"password\"");
    assert_eq!(site.labels("alice"), ["iPhone", "Laptop"]);
}

#[test]
fn in_a_real_browser_language_time_zone_labels_and_error_pages() {
    let Some(driver) =
        driver_or_skip("in_a_real_browser_language_time_zone_labels_and_error_pages")
    else {
        return;
    };
    let site = Site::start("", &format!("{HEADER_MODE}{SITE}"));
    let (id, _) = site.create("alice", "phone");
    site.db()
        .execute(
            "UPDATE app_passwords SET created_at = ?1 WHERE id = ?2",
            rusqlite::params![KNOWN_TIME, id],
        )
        .unwrap();
    driver.behind_proxy(
        &site,
        &[
            ("X-Remote-User", "alice"),
            ("Accept-Language", "ja,en-US;q=0.8"),
        ],
    );
    let base = format!("http://127.0.0.1:{}/", site.port);

    // Japanese from Accept-Language, times in the site's zone and the Japanese format.
    driver.go(&base);
    assert_eq!(driver.text("h1"), "アプリパスワード一覧");
    assert_eq!(
        driver.script("return document.documentElement.lang;"),
        json!("ja")
    );
    assert_eq!(
        driver.text(&format!("#cred-{id} time")),
        "2026年12月1日 22:39 JST"
    );
    let style = driver.script(
        "const s = getComputedStyle(document.querySelector('main p')); return [s.lineBreak, s.wordBreak];",
    );
    assert_eq!(style[0], "strict", "{style}");
    // `word-break: auto-phrase` where this Chromium knows it.
    assert!(style[1] == "auto-phrase" || style[1] == "normal", "{style}");

    // The switcher: English, and it stays English.
    driver.click("a[hreflang=en]");
    driver.wait_for_text("Your app passwords");
    assert_eq!(
        driver.text(&format!("#cred-{id} time")),
        "1 December 2026, 22:39 JST"
    );
    driver.click("a[href=new]");
    driver.wait_for_text("Create an app password");
    assert_eq!(
        driver.script("return document.documentElement.lang;"),
        json!("en")
    );

    // A label with a direction override is refused, saying which character.
    driver.type_into("#label", "phone\u{202e}LTR");
    driver.click("button.primary[type=submit]");
    driver.wait_for_text("role=\"alert\"");
    assert!(
        driver.text("[role=alert]").contains("U+202E"),
        "{}",
        driver.source()
    );
    assert_eq!(site.labels("alice"), ["phone"]);

    // A form too large, a method not allowed: pages, not blank screens.
    driver.script(
        "const f = document.querySelector('form[data-once]'); \
         document.getElementById('label').value = 'x'.repeat(20000); f.submit();",
    );
    driver.wait_for_text("Request too large");
    assert_eq!(driver.text("h1"), "Request too large");
    driver.go(&base);
    driver.script(
        "const f = document.createElement('form'); f.method = 'post'; f.action = 'logo'; \
         document.body.append(f); f.submit();",
    );
    driver.wait_for_text("Not possible here");
    assert!(
        driver
            .source()
            .contains("cannot handle that kind of request")
    );
}

/// `scripts/screenshots.sh`: the main pages at phone width in both languages (and the list
/// at desktop width) into `$APPPW_SCREENSHOTS`.
#[test]
fn screenshots() {
    let Some(dir) = std::env::var_os("APPPW_SCREENSHOTS").map(PathBuf::from) else {
        println!("SKIP screenshots: set APPPW_SCREENSHOTS=DIR (scripts/screenshots.sh)");
        return;
    };
    if !root_or_skip("screenshots") {
        return;
    }
    let Some(driver) = driver_or_skip("screenshots") else {
        return;
    };
    std::fs::create_dir_all(&dir).unwrap();
    let dir = Some(dir.as_path());
    let pam = PamService::matrix(&[("alice", NORMAL_PW)]);
    let site = Site::start(
        ", \"127.0.0.0/8\"",
        &format!("{}{SITE}", pam_web_toml(&pam, "", "")),
    );
    let base = format!("http://127.0.0.1:{}/", site.port);
    for lang in ["en", "ja"] {
        let (id, _) = site.create("alice", "Thunderbird");
        site.db()
            .execute(
                "UPDATE app_passwords SET created_at = ?1, last_used_at = ?1 + 86400, last_used_ip = ?2, \
                 last_used_service = 'imap' WHERE id = ?3",
                rusqlite::params![KNOWN_TIME - 30 * 86400, OFF_IP, id],
            )
            .unwrap();
        driver.behind_proxy(&site, &[("Accept-Language", lang)]);
        driver.delete_cookies();
        driver.go(&format!("{base}signin"));
        driver.screenshots(dir, &format!("signin-{lang}"), false);
        driver.type_into("#user", "alice");
        driver.type_into("#password", "wrong");
        driver.click("button[type=submit]");
        driver.wait_for_text("role=\"alert\"");
        driver.screenshots(dir, &format!("signin-error-{lang}"), false);
        driver.type_into("#password", NORMAL_PW);
        driver.click("button[type=submit]");
        driver.wait_for_text("class=\"cards\"");
        driver.screenshots(dir, &format!("list-{lang}"), lang == "en");
        driver.go(&format!("{base}new"));
        driver.screenshots(dir, &format!("new-{lang}"), false);
        driver.type_into(
            "#label",
            if lang == "en" {
                "iPhone"
            } else {
                "自宅の iPad"
            },
        );
        driver.click("#svc-imap");
        driver.click("#svc-smtp");
        driver.click("button.primary[type=submit]");
        driver.wait_for_text("id=\"password\"");
        driver.screenshots(dir, &format!("created-{lang}"), false);
        driver.go(&format!("{base}delete?id={id}"));
        driver.screenshots(dir, &format!("delete-{lang}"), false);
        driver.go(&format!("{base}new"));
        driver.type_into("#label", "Laptop");
        driver.delete_cookies();
        driver.click("button.primary[type=submit]");
        driver.wait_for_text("class=\"notice\"");
        driver.screenshots(dir, &format!("session-ended-{lang}"), false);
        let out = site.apppw(&["revoke", "alice", "--all"], "");
        assert!(out.status.success());
    }
}
