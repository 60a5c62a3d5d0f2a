//! Audit lines for every change and sign-in, to syslog (`authpriv`, like the other apppw
//! programs) and to stderr (the service journal):
//!
//! ```text
//! apppw-web: user=alice action=create label=iPhone id=3 client=203.0.113.9 result=ok
//! ```
//!
//! Values are escaped and bounded by `apppw::audit::escape`; passwords never appear.

use apppw::audit::escape;
use std::fmt::Write as _;

/// Prefix of every line.
pub const PROG: &str = "apppw-web";

/// One audit line: `user`, `action`, then `fields` (`label`, `id`, `client`, ...), `result`.
pub fn record(user: &str, action: &str, fields: &[(&str, &str)], result: &str) {
    let mut line = format!("user={} action={}", escape(user), escape(action));
    for (k, v) in fields {
        let _ = write!(line, " {k}={}", escape(v));
    }
    let _ = write!(line, " result={}", escape(result));
    apppw::audit::warn(PROG, &line);
    eprintln!("{PROG}: {line}");
}

/// A problem an administrator should see (database unusable, sendmail failing, ...).
pub fn problem(message: &str) {
    apppw::audit::warn(PROG, message);
    let bounded: String = message
        .chars()
        .take(512)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    eprintln!("{PROG}: {bounded}");
}
