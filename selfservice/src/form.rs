//! Form bodies and cookies, with the values wiped when dropped: a sign-in form holds the
//! normal password. (`axum::Form` would hand the values to serde as plain `String`s that are
//! freed without being wiped.)

use axum::body::Body;
use http_body_util::BodyExt;
use zeroize::{Zeroize, Zeroizing};

/// Largest request body read (forms are tiny).
pub const MAX_BODY: usize = 16 * 1024;

/// Why a body could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyError {
    /// Larger than [`MAX_BODY`].
    TooLarge,
    /// The connection failed or timed out while reading.
    Broken,
}

/// Reads a request body of at most [`MAX_BODY`] bytes into memory that is wiped on drop. The
/// chunks hyper read are wiped too where this is the only reference to them.
pub async fn read_body(body: Body) -> Result<Zeroizing<Vec<u8>>, BodyError> {
    let mut body = body;
    let mut out = Zeroizing::new(Vec::new());
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if is_length_limit(&e) {
                BodyError::TooLarge
            } else {
                BodyError::Broken
            }
        })?;
        if let Ok(data) = frame.into_data() {
            if out.len() + data.len() > MAX_BODY {
                return Err(BodyError::TooLarge);
            }
            out.extend_from_slice(&data);
            if let Ok(mut owned) = data.try_into_mut() {
                owned.zeroize();
            }
        }
    }
    Ok(out)
}

/// Did the body fail because tower-http's length limit was reached?
fn is_length_limit(e: &axum::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(e);
    while let Some(s) = source {
        if s.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = s.source();
    }
    false
}

/// A cookie's value from the request headers.
#[must_use]
pub fn cookie<'h>(headers: &'h axum::http::HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|h| h.to_str().ok())
        .flat_map(|h| h.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v)
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
        let mut h = axum::http::HeaderMap::new();
        h.append("cookie", "x=1; apppw=abc".parse().unwrap());
        h.append("cookie", "y=2".parse().unwrap());
        assert_eq!(cookie(&h, "apppw"), Some("abc"));
        assert_eq!(cookie(&h, "y"), Some("2"));
        assert_eq!(cookie(&h, "z"), None);
    }

    #[tokio::test]
    async fn bodies_over_the_limit_are_refused() {
        let ok = read_body(Body::from(vec![b'a'; MAX_BODY])).await.unwrap();
        assert_eq!(ok.len(), MAX_BODY);
        let big = read_body(Body::from(vec![b'a'; MAX_BODY + 1])).await;
        assert_eq!(big.unwrap_err(), BodyError::TooLarge);
    }
}
