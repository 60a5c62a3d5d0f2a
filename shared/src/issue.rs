//! Issuing an app password, for every front-end that creates them (`apppw create`, the
//! self-service page): validate the label and services, generate, hash, insert, and retry on a
//! lookup-tag collision.

use crate::config::Config;
use crate::hash::Argon2Kdf;
use crate::secret::{self, AppPassword};
use crate::store::{Credential, NewCredential, Store, StoreError};

/// Longest label, in characters.
pub const MAX_LABEL_CHARS: usize = 64;
/// Tries to find a free lookup tag.
const TAG_TRIES: usize = 8;

/// Why a label is not acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelError {
    /// Empty or only spaces.
    Empty,
    /// Too long or with control characters.
    Invalid,
    /// With a character that is invisible or changes the direction of the text around it
    /// (the first one found).
    Invisible(char),
}

/// A character a label must not contain although it is no control character: one that
/// shows nothing or reorders what is around it. A label is shown in the web page, the CLI's
/// table and notification mails; `U+202E` would make "phone" read "enohp" there, and a
/// zero-width space would make two labels that look the same.
///
/// Refused: format characters (`Cf`: the bidi embeddings, overrides and isolates, zero-width
/// space and joiners, the word joiner, invisible operators, the byte order mark, soft hyphen,
/// tag characters...), line and paragraph separators, private-use and unassigned code points,
/// and the letters and marks that draw nothing (Hangul fillers, the combining grapheme joiner,
/// the braille blank, variation selectors' lookalikes aside). The categories come from the
/// Unicode tables of `unicode-properties`.
#[must_use]
pub fn is_invisible(c: char) -> bool {
    use unicode_properties::{GeneralCategory as G, UnicodeGeneralCategory};
    matches!(
        c.general_category(),
        G::Format | G::LineSeparator | G::ParagraphSeparator | G::PrivateUse | G::Unassigned
    ) || matches!(
        c,
        '\u{034f}' | '\u{115f}' | '\u{1160}' | '\u{17b4}' | '\u{17b5}' | '\u{180b}'
            ..='\u{180f}' | '\u{2800}' | '\u{3164}' | '\u{ffa0}'
    )
}

/// Labels: non-blank, at most 64 characters, no control characters, nothing invisible or
/// direction-changing ([`is_invisible`]). One rule for every front-end.
pub fn check_label(label: &str) -> Result<(), LabelError> {
    if label.trim().is_empty() {
        return Err(LabelError::Empty);
    }
    if label.chars().count() > MAX_LABEL_CHARS || label.chars().any(char::is_control) {
        return Err(LabelError::Invalid);
    }
    if let Some(c) = label.chars().find(|&c| is_invisible(c)) {
        return Err(LabelError::Invisible(c));
    }
    Ok(())
}

/// Why creating failed.
#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    /// The database.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Hashing.
    #[error(transparent)]
    Hash(#[from] crate::hash::HashError),
    /// The OS random generator.
    #[error("random generator: {0}")]
    Random(secret::RandomError),
    /// Every generated tag collided.
    #[error("could not find a free lookup tag after {TAG_TRIES} tries")]
    NoFreeTag,
}

/// Generates, hashes and stores a new app password for `user`, under its canonical name
/// ([`Config::canonical_user`]). The returned password is shown once and dropped (zeroized).
pub fn create(
    config: &Config,
    store: &mut Store,
    user: &str,
    label: &str,
    expires_at: Option<i64>,
    services: Option<&[String]>,
    now: i64,
) -> Result<(Credential, AppPassword), CreateError> {
    let user = &config.canonical_user(user);
    // Through the host's admission gate, like a login's verification: a create during a login
    // burst waits its turn (or fails with `HashError::Busy`, "try again").
    let mut kdf = Argon2Kdf::with_gate(&config.gate);
    // A new tag collides with one of the user's other tags with probability n / 26^4; retry.
    for _ in 0..TAG_TRIES {
        let password = secret::generate().map_err(CreateError::Random)?;
        let hash = kdf.hash_new(config.argon2, password.as_bytes())?;
        let created = store.create(&NewCredential {
            user,
            label,
            tag: password.tag(),
            hash: &hash,
            created_at: now,
            expires_at,
            services,
        });
        match created {
            Ok(cred) => return Ok((cred, password)),
            Err(StoreError::TagCollision) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Err(CreateError::NoFreeTag)
}

/// Normalises a list of service names (lowercase, deduplicated). Names are letters, digits,
/// `-` and `_`, at most 32 bytes; the list must not be empty.
pub fn normalise_services<S: AsRef<str>>(list: &[S]) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for s in list {
        let s = s.as_ref().trim().to_ascii_lowercase();
        let ok = !s.is_empty()
            && s.len() <= 32
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !ok {
            return Err(format!(
                "invalid service {s:?}: use names like imap, pop3, smtp, sieve, separated by commas"
            ));
        }
        if !out.contains(&s) {
            out.push(s);
        }
    }
    if out.is_empty() {
        return Err("at least one service name is needed".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_are_normalised() {
        assert_eq!(
            normalise_services(&["IMAP", " smtp", "imap"]),
            Ok(vec!["imap".to_owned(), "smtp".to_owned()])
        );
        assert!(normalise_services(&["im ap"]).is_err());
        assert!(normalise_services::<&str>(&[]).is_err());
    }

    #[test]
    fn create_retries_nothing_on_success_and_stores_the_hash() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::parse(std::path::Path::new("/t.toml"), "").unwrap();
        config.database = crate::config::Database::Sqlite(dir.path().join("a.db"));
        config.argon2.memory_kib = 1024;
        config.argon2.iterations = 1;
        let mut store = Store::open_for_admin(&config.database).unwrap();
        let (cred, pw) = create(&config, &mut store, "Alice", "phone", None, None, 5).unwrap();
        assert_eq!(cred.user, "alice", "stored under the canonical name");
        assert_eq!(cred.label, "phone");
        assert_eq!(cred.created_at, 5);
        assert!(matches!(
            create(&config, &mut store, "alice", "phone", None, None, 6),
            Err(CreateError::Store(StoreError::DuplicateLabel { .. }))
        ));
        drop(pw);
    }

    #[test]
    fn labels_follow_the_cli_rule() {
        assert_eq!(check_label("  "), Err(LabelError::Empty));
        assert_eq!(check_label("a\tb"), Err(LabelError::Invalid));
        assert_eq!(check_label(&"é".repeat(65)), Err(LabelError::Invalid));
        assert_eq!(check_label(&"é".repeat(64)), Ok(()));
        assert_eq!(check_label("Thunderbird <home>"), Ok(()));
    }

    #[test]
    fn labels_with_invisible_or_reordering_characters_are_refused() {
        for (label, c) in [
            ("phone\u{202e}LTR", '\u{202e}'),
            ("\u{2066}phone\u{2069}", '\u{2066}'),
            ("pho\u{200b}ne", '\u{200b}'),
            ("pho\u{200d}ne", '\u{200d}'),
            ("\u{feff}phone", '\u{feff}'),
            ("pho\u{00ad}ne", '\u{00ad}'),
            ("phone\u{2028}", '\u{2028}'),
            ("phone\u{e000}", '\u{e000}'),
            ("ph\u{3164}one", '\u{3164}'),
            ("phone\u{e0041}", '\u{e0041}'),
        ] {
            assert_eq!(
                check_label(label),
                Err(LabelError::Invisible(c)),
                "{label:?}"
            );
        }
        for fine in [
            "iPhone 15",
            "自宅の Thunderbird（書斎）",
            "Ноутбук",
            "تلفن",
            "ﾉｰﾄ",
            "é\u{301}",
        ] {
            assert_eq!(check_label(fine), Ok(()), "{fine:?}");
        }
    }
}
