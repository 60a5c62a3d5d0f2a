//! The checkpassword protocol as Dovecot 2.3 speaks it: arguments, the credentials on fd 3,
//! the environment, and the exit codes.

use std::ffi::OsString;
use std::io::Read;
use std::path::PathBuf;
use zeroize::Zeroizing;

/// Dovecot never sends more than this; more means the caller is not Dovecot.
pub const MAX_INPUT: usize = 512;

/// Exit statuses other than success (success is the reply program's own exit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Credential rejected or unknown user.
    Refused = 1,
    /// Called wrongly: bad arguments or malformed fd 3 input.
    Usage = 2,
    /// Lookup mode: no such user.
    UnknownUser = 3,
    /// Store, config or PAM failure: try again later.
    TempFail = 111,
}

impl Exit {
    /// The process exit status.
    #[must_use]
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// The command line: `[--config FILE] REPLY-PROGRAM [ARGS...]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    /// A normal invocation.
    Run {
        /// `--config FILE`.
        config: Option<PathBuf>,
        /// The program to exec on success (Dovecot's `checkpassword-reply`).
        reply: OsString,
        /// Its arguments.
        reply_args: Vec<OsString>,
    },
    /// `--help`.
    Help,
    /// `--version`.
    Version,
}

/// One-line usage, printed with usage errors.
pub const USAGE: &str = "usage: apppw-checkpassword [--config FILE] REPLY-PROGRAM [ARGS...]";

/// Parses the arguments after the program name. Options end at the first non-option (the
/// reply program); everything after it belongs to the reply program.
pub fn parse_args(args: impl IntoIterator<Item = OsString>) -> Result<Args, String> {
    let mut args = args.into_iter();
    let mut config = None;
    let reply = loop {
        let Some(arg) = args.next() else {
            return Err("missing REPLY-PROGRAM".into());
        };
        let text = arg.to_string_lossy();
        match text.as_ref() {
            "--config" | "-c" => match args.next() {
                Some(path) => config = Some(PathBuf::from(path)),
                None => return Err("--config needs a FILE".into()),
            },
            "--help" | "-h" => return Ok(Args::Help),
            "--version" | "-V" => return Ok(Args::Version),
            "--" => match args.next() {
                Some(reply) => break reply,
                None => return Err("missing REPLY-PROGRAM".into()),
            },
            t if t.starts_with("--config=") => {
                config = Some(PathBuf::from(&t["--config=".len()..]));
            }
            t if t.starts_with('-') && t.len() > 1 => return Err(format!("unknown option {t}")),
            _ => break arg,
        }
    };
    Ok(Args::Run {
        config,
        reply,
        reply_args: args.collect(),
    })
}

/// Why the fd 3 input was not usable.
#[derive(Debug)]
pub enum InputError {
    /// fd 3 is not open.
    NotOpen,
    /// Reading failed.
    Read(std::io::Error),
    /// More than [`MAX_INPUT`] bytes.
    TooLong,
    /// Not `user\0password\0`.
    Malformed(&'static str),
}

impl std::fmt::Display for InputError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InputError::NotOpen => write!(
                f,
                "file descriptor 3 is not open: this program is run by Dovecot's checkpassword \
                 passdb/userdb, which passes user and password on it"
            ),
            InputError::Read(e) => write!(f, "cannot read file descriptor 3: {e}"),
            InputError::TooLong => {
                write!(f, "input on file descriptor 3 exceeds {MAX_INPUT} bytes")
            }
            InputError::Malformed(what) => {
                write!(f, "malformed input on file descriptor 3: {what}")
            }
        }
    }
}

/// Reads the whole input (until end of file), refusing more than [`MAX_INPUT`] bytes. The
/// buffer is wiped when dropped: it holds the password.
pub fn read_input(mut source: impl Read) -> Result<Zeroizing<Vec<u8>>, InputError> {
    // One byte more than allowed, so that "too long" is detected without reading further.
    let mut buf = Zeroizing::new(vec![0u8; MAX_INPUT + 1]);
    let mut len = 0;
    loop {
        let Some(free) = buf.get_mut(len..).filter(|b| !b.is_empty()) else {
            return Err(InputError::TooLong);
        };
        match source.read(free) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(InputError::Read(e)),
        }
    }
    // Shrinking keeps the capacity, which Zeroizing wipes in full.
    buf.truncate(len);
    Ok(buf)
}

/// User and password borrowed from the input buffer.
#[derive(Clone, Copy)]
pub struct Credentials<'a> {
    /// The user name (not yet checked for UTF-8 or control characters).
    pub user: &'a [u8],
    /// The password; empty in lookup mode.
    pub password: &'a [u8],
}

/// Splits `user\0password\0[more fields]`.
pub fn parse_input(buf: &[u8]) -> Result<Credentials<'_>, InputError> {
    let mut fields = buf.splitn(3, |&b| b == 0);
    let user = fields.next().unwrap_or_default();
    let (Some(password), Some(_rest)) = (fields.next(), fields.next()) else {
        return Err(InputError::Malformed(
            "expected user NUL password NUL (user or password not NUL-terminated)",
        ));
    };
    if user.is_empty() {
        return Err(InputError::Malformed("empty user name"));
    }
    Ok(Credentials { user, password })
}

/// What the environment Dovecot sets tells about the attempt.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CallEnv {
    /// Client address (`TCPREMOTEIP`, else `REMOTE_IP`).
    pub client: Option<String>,
    /// `SERVICE` (imap, pop3, smtp, ...).
    pub service: Option<String>,
    /// `AUTHORIZED=1`: a passdb/userdb lookup, not an authentication.
    pub lookup: bool,
    /// `MASTER_USER`: the master user of a master-user login.
    pub master_user: Option<String>,
}

impl CallEnv {
    /// Reads the variables through `get` (the process environment in production).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> CallEnv {
        let non_empty = |k: &str| get(k).filter(|v| !v.is_empty());
        CallEnv {
            client: non_empty("TCPREMOTEIP").or_else(|| non_empty("REMOTE_IP")),
            service: non_empty("SERVICE"),
            lookup: get("AUTHORIZED").as_deref() == Some("1"),
            master_user: non_empty("MASTER_USER"),
        }
    }

    /// From the process environment. Values that are not UTF-8 count as absent (an absent
    /// client address is off campus).
    pub fn from_process() -> CallEnv {
        CallEnv::from_lookup(|k| std::env::var(k).ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Result<Args, String> {
        parse_args(list.iter().map(OsString::from))
    }

    #[test]
    fn arguments() {
        assert_eq!(
            args(&[
                "--config",
                "/etc/x.toml",
                "/usr/lib/dovecot/checkpassword-reply"
            ]),
            Ok(Args::Run {
                config: Some("/etc/x.toml".into()),
                reply: "/usr/lib/dovecot/checkpassword-reply".into(),
                reply_args: vec![],
            })
        );
        assert_eq!(
            args(&["--config=/c", "reply", "--config", "x"]),
            Ok(Args::Run {
                config: Some("/c".into()),
                reply: "reply".into(),
                reply_args: vec!["--config".into(), "x".into()],
            })
        );
        assert!(args(&[]).is_err());
        assert!(args(&["--config"]).is_err());
        assert!(args(&["--config", "/c"]).is_err());
        assert!(args(&["--bogus", "reply"]).is_err());
        assert_eq!(args(&["--help"]), Ok(Args::Help));
    }

    #[test]
    fn input_is_bounded() {
        assert_eq!(read_input(&[b'a'; 512][..]).unwrap().len(), 512);
        assert!(matches!(
            read_input(&[b'a'; 513][..]),
            Err(InputError::TooLong)
        ));
        assert!(matches!(
            read_input(&[b'a'; 5000][..]),
            Err(InputError::TooLong)
        ));
    }

    #[test]
    fn input_fields() {
        let c = parse_input(b"alice\0secret\0\0").unwrap();
        assert_eq!((c.user, c.password), (&b"alice"[..], &b"secret"[..]));
        let c = parse_input(b"alice\0secret\0").unwrap();
        assert_eq!(c.password, b"secret");
        let c = parse_input(b"alice\0\0\0").unwrap();
        assert_eq!(c.password, b"");
        for bad in [&b""[..], b"alice", b"alice\0secret", b"\0secret\0\0"] {
            assert!(parse_input(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn environment() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            CallEnv::from_lookup(move |k| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_owned())
            })
        };
        let e = env(&[
            ("TCPREMOTEIP", "203.0.113.9"),
            ("REMOTE_IP", "192.0.2.1"),
            ("SERVICE", "imap"),
        ]);
        assert_eq!(e.client.as_deref(), Some("203.0.113.9"));
        assert_eq!(e.service.as_deref(), Some("imap"));
        assert!(!e.lookup);
        let e = env(&[
            ("TCPREMOTEIP", ""),
            ("REMOTE_IP", "192.0.2.1"),
            ("AUTHORIZED", "1"),
        ]);
        assert_eq!(e.client.as_deref(), Some("192.0.2.1"));
        assert!(e.lookup);
        assert!(!env(&[("AUTHORIZED", "2")]).lookup);
        assert_eq!(env(&[]), CallEnv::default());
    }
}

/// Properties of the fd 3 reader and parser and of the argument parser, over generated input.
/// More cases: `PROPTEST_CASES=100000 cargo test --release -p apppw-checkpassword`.
#[cfg(test)]
mod properties {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// Hands out `data` in chunks of the given sizes, with `Interrupted` now and then, like a
    /// pipe written to in pieces.
    struct Chunked<'a> {
        data: &'a [u8],
        sizes: Vec<usize>,
        calls: usize,
        interrupt: bool,
    }

    impl Read for Chunked<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            self.calls += 1;
            if self.interrupt && self.calls % 3 == 0 {
                return Err(std::io::ErrorKind::Interrupted.into());
            }
            let want = self.sizes[self.calls % self.sizes.len()];
            let n = want.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Bytes with many NULs, so that every shape of `user\0password\0...` comes up.
    fn nul_heavy(max: usize) -> impl Strategy<Value = Vec<u8>> {
        vec(
            prop_oneof![3 => Just(0u8), 3 => b'a'..=b'z', 1 => any::<u8>()],
            0..max,
        )
    }

    fn no_nul(min: usize, max: usize) -> impl Strategy<Value = Vec<u8>> {
        vec(1u8..=255, min..max)
    }

    proptest! {
        #[test]
        fn read_input_returns_exactly_what_was_sent_up_to_512_bytes(
            data in vec(any::<u8>(), 0..1100),
            sizes in vec(1usize..700, 1..6),
            interrupt: bool,
        ) {
            let source = Chunked { data: &data, sizes, calls: 0, interrupt };
            match read_input(source) {
                Ok(buf) => {
                    prop_assert!(data.len() <= MAX_INPUT);
                    prop_assert_eq!(&buf[..], &data[..]);
                }
                Err(InputError::TooLong) => prop_assert!(data.len() > MAX_INPUT),
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }

        #[test]
        fn parse_input_yields_clean_fields_or_an_error(
            buf in prop_oneof![nul_heavy(600), vec(any::<u8>(), 0..600)],
        ) {
            let nuls = buf.iter().filter(|&&b| b == 0).count();
            match parse_input(&buf) {
                Ok(c) => {
                    prop_assert!(!c.user.is_empty());
                    prop_assert!(!c.user.contains(&0) && !c.password.contains(&0));
                    let mut prefix = c.user.to_vec();
                    prefix.push(0);
                    prefix.extend_from_slice(c.password);
                    prefix.push(0);
                    prop_assert!(buf.starts_with(&prefix));
                }
                // Exactly the inputs without two terminated fields or with an empty user.
                Err(InputError::Malformed(_)) => prop_assert!(nuls < 2 || buf[0] == 0),
                Err(e) => prop_assert!(false, "unexpected {e}"),
            }
        }

        #[test]
        fn every_well_formed_input_is_parsed_back(
            user in no_nul(1, 100),
            password in no_nul(0, 200),
            rest in vec(any::<u8>(), 0..100),
        ) {
            let buf = [&user[..], b"\0", &password, b"\0", &rest].concat();
            let c = parse_input(&buf).unwrap();
            prop_assert_eq!(c.user, &user[..]);
            prop_assert_eq!(c.password, &password[..]);
        }

        #[test]
        fn what_is_read_and_parsed_fits_in_512_bytes(buf in nul_heavy(700)) {
            if let Ok(read) = read_input(&buf[..]) {
                if let Ok(c) = parse_input(&read) {
                    prop_assert!(c.user.len() + c.password.len() + 2 <= MAX_INPUT);
                }
            }
        }

        #[test]
        fn arguments_end_with_the_reply_program_and_its_arguments(
            args in vec(
                prop_oneof![
                    Just("--config".to_owned()),
                    Just("-c".to_owned()),
                    Just("--".to_owned()),
                    Just("--config=/etc/apppw/apppw.toml".to_owned()),
                    Just("--help".to_owned()),
                    Just("-".to_owned()),
                    "-[a-zA-Z-]{1,8}",
                    "[a-z/]{1,12}",
                    "\\PC{0,12}",
                ],
                0..8,
            )
        ) {
            let parsed = parse_args(args.iter().map(OsString::from));
            if let Ok(Args::Run { reply, reply_args, config }) = parsed {
                let n = reply_args.len() + 1;
                prop_assert!(args.len() >= n);
                let tail: Vec<OsString> = args[args.len() - n..].iter().map(OsString::from).collect();
                prop_assert_eq!(&tail[0], &reply);
                prop_assert_eq!(&tail[1..], &reply_args[..]);
                // Options come only before the reply program; one that looks like an option
                // is the reply program only after `--`.
                let before = &args[..args.len() - n];
                let text = reply.to_string_lossy();
                prop_assert!(
                    !text.starts_with('-') || text == "-" || before.last().is_some_and(|a| a == "--")
                );
                prop_assert_eq!(
                    config.is_some(),
                    before.iter().any(|a| a == "--config" || a == "-c" || a.starts_with("--config="))
                );
            }
        }
    }
}
