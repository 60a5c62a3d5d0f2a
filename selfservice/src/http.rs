//! Requests and responses as the application sees them, independent of the HTTP server crate,
//! plus form and cookie parsing.

use std::net::IpAddr;
use zeroize::Zeroize;

/// Largest request body read (forms are tiny).
pub const MAX_BODY: usize = 16 * 1024;

/// Request methods the application distinguishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// GET (and HEAD, answered like GET).
    Get,
    /// POST.
    Post,
    /// Anything else.
    Other,
}

/// One request.
#[derive(Debug, Clone)]
pub struct Request {
    /// Method.
    pub method: Method,
    /// Path without the query (`/new`).
    pub path: String,
    /// Query string without `?`.
    pub query: String,
    /// Headers, names lower-case.
    pub headers: Vec<(String, String)>,
    /// Body (at most [`MAX_BODY`] bytes).
    pub body: Vec<u8>,
    /// The TCP peer.
    pub peer: Option<IpAddr>,
}

impl Request {
    /// A request for tests and the server adapter.
    #[must_use]
    pub fn new(method: Method, url: &str, peer: Option<IpAddr>) -> Request {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        Request {
            method,
            path: path.to_owned(),
            query: query.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            peer,
        }
    }

    /// The first header of that name (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        named(&self.headers, name).next()
    }

    /// All headers of that name, in order.
    pub fn headers_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        named(&self.headers, name)
    }

    /// A cookie's value.
    #[must_use]
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.headers_named("cookie")
            .flat_map(|h| h.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
    }

    /// The body as an urlencoded form.
    #[must_use]
    pub fn form(&self) -> Form {
        Form::parse(&self.body)
    }

    /// The query as a form.
    #[must_use]
    pub fn query_form(&self) -> Form {
        Form::parse(self.query.as_bytes())
    }
}

/// One response.
#[derive(Debug, Clone)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Headers.
    pub headers: Vec<(String, String)>,
    /// Body.
    pub body: Vec<u8>,
}

impl Response {
    /// An HTML page.
    #[must_use]
    pub fn html(status: u16, body: String) -> Response {
        Response {
            status,
            headers: vec![("Content-Type".into(), "text/html; charset=utf-8".into())],
            body: body.into_bytes(),
        }
    }

    /// `303 See Other` to a relative location.
    #[must_use]
    pub fn redirect(location: &str) -> Response {
        Response {
            status: 303,
            headers: vec![("Location".into(), location.into())],
            body: Vec::new(),
        }
    }

    /// Adds a header.
    #[must_use]
    pub fn with(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The first header of that name (case-insensitive).
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        named(&self.headers, name).next()
    }
}

/// The values of the headers called `name` (case-insensitive), in order.
fn named<'h>(headers: &'h [(String, String)], name: &str) -> impl Iterator<Item = &'h str> {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// A decoded `application/x-www-form-urlencoded` body.
#[derive(Debug, Clone, Default)]
pub struct Form {
    fields: Vec<(String, String)>,
}

impl Form {
    /// Parses a body; undecodable fields are dropped.
    #[must_use]
    pub fn parse(body: &[u8]) -> Form {
        let fields = body
            .split(|&b| b == b'&')
            .filter(|p| !p.is_empty())
            .filter_map(|pair| {
                let (k, v) = match pair.iter().position(|&b| b == b'=') {
                    Some(i) => (&pair[..i], &pair[i + 1..]),
                    None => (pair, &b""[..]),
                };
                Some((decode(k)?, decode(v)?))
            })
            .collect();
        Form { fields }
    }

    /// The first value of a field.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// All values of a field (checkboxes).
    #[must_use]
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

impl Drop for Form {
    fn drop(&mut self) {
        // A sign-in form holds the normal password.
        for (_, value) in &mut self.fields {
            value.zeroize();
        }
    }
}

/// Percent-decoding with `+` as space; `None` for bad escapes or invalid UTF-8.
fn decode(s: &[u8]) -> Option<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        match s[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_decode() {
        let f = Form::parse(b"label=My+phone%21&service=imap&service=smtp&empty=&bad=%zz");
        assert_eq!(f.get("label"), Some("My phone!"));
        assert_eq!(f.all("service"), vec!["imap", "smtp"]);
        assert_eq!(f.get("empty"), Some(""));
        assert_eq!(f.get("bad"), None);
        assert_eq!(Form::parse("x=%C3%A9".as_bytes()).get("x"), Some("é"));
        assert_eq!(Form::parse(b"x=%FF").get("x"), None);
    }

    #[test]
    fn cookies_are_found_in_any_cookie_header() {
        let mut r = Request::new(Method::Get, "/a?b=c", None);
        r.headers.push(("Cookie".into(), "x=1; apppw=abc".into()));
        r.headers.push(("cookie".into(), "y=2".into()));
        assert_eq!(r.cookie("apppw"), Some("abc"));
        assert_eq!(r.cookie("y"), Some("2"));
        assert_eq!(r.cookie("z"), None);
        assert_eq!(r.path, "/a");
        assert_eq!(r.query_form().get("b"), Some("c"));
    }
}
