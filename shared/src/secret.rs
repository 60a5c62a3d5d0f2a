//! The app-password format.
//!
//! An app password is 24 lowercase letters, printed as six groups of four:
//!
//! ```text
//! kqzm tbwa hxrc pvne ufdj lsyo
//! ^^^^ lookup tag       ^^^^^^^^^^^^^^^^^^^^^^^^ 20 secret letters
//! ```
//!
//! - The first group is a **lookup tag**, unique per user and stored in clear next to the
//!   hash. It lets a login attempt find the one stored credential it could match with an indexed
//!   query, so an attempt costs at most one Argon2 verification however many app passwords the
//!   user has. It carries no secret: knowing it leaves the attacker with 26^20 guesses.
//! - The other 20 letters are the secret: 20 × log2(26) ≈ 94 bits from the OS CSPRNG.
//! - The whole 24 letters are hashed with Argon2id.
//!
//! Letters only, so that a phone keyboard never has to switch layouts. On input, ASCII case,
//! spaces and dashes are ignored; anything that is not then exactly 24 letters cannot be an app
//! password and is recognised as such without touching the database or Argon2.

use zeroize::{Zeroize, Zeroizing};

/// The alphabet of app passwords.
pub const ALPHABET: &[u8; 26] = b"abcdefghijklmnopqrstuvwxyz";
/// Letters in the lookup tag.
pub const TAG_LEN: usize = 4;
/// Letters in the secret part.
pub const SECRET_LEN: usize = 20;
/// Letters in a whole app password.
pub const LEN: usize = TAG_LEN + SECRET_LEN;
/// Bits of secret entropy (excluding the tag), rounded down.
pub const SECRET_BITS: u32 = 94;

/// A normalised app password (24 lowercase letters). Zeroized on drop; no `Debug`/`Display`.
pub struct AppPassword {
    letters: Zeroizing<[u8; LEN]>,
}

impl AppPassword {
    /// Generates a new app password from `fill`, a source of uniformly random bytes (the OS
    /// CSPRNG in production, see [`generate`]).
    pub fn generate_with<E>(
        mut fill: impl FnMut(&mut [u8]) -> Result<(), E>,
    ) -> Result<AppPassword, E> {
        let mut letters = Zeroizing::new([0u8; LEN]);
        let mut buf = Zeroizing::new([0u8; 64]);
        let mut filled = 0;
        while filled < LEN {
            fill(&mut buf[..])?;
            // Rejection sampling: 234 = 9 × 26, so `b % 26` is uniform for b < 234.
            for &b in buf.iter() {
                if filled == LEN {
                    break;
                }
                if b < 234 {
                    letters[filled] = ALPHABET[usize::from(b % 26)];
                    filled += 1;
                }
            }
        }
        Ok(AppPassword { letters })
    }

    /// Recognises an app password in user input: ASCII case, spaces and dashes are ignored.
    /// Returns `None` when the input cannot be an app password (wrong length or alphabet).
    #[must_use]
    pub fn parse(input: &[u8]) -> Option<AppPassword> {
        let mut letters = Zeroizing::new([0u8; LEN]);
        let mut n = 0;
        for &b in input {
            let c = match b {
                b' ' | b'-' => continue,
                b'a'..=b'z' => b,
                b'A'..=b'Z' => b.to_ascii_lowercase(),
                _ => return None,
            };
            if n == LEN {
                return None;
            }
            letters[n] = c;
            n += 1;
        }
        (n == LEN).then_some(AppPassword { letters })
    }

    /// The lookup tag (first group).
    #[must_use]
    pub fn tag(&self) -> &str {
        // The letters are ASCII by construction.
        std::str::from_utf8(&self.letters[..TAG_LEN]).unwrap_or("")
    }

    /// The bytes that are hashed.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.letters[..]
    }

    /// The password for display, in groups of four (`abcd efgh ...`). Shown once at creation.
    #[must_use]
    pub fn grouped(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(LEN + LEN / 4));
        for (i, chunk) in self.letters.chunks(4).enumerate() {
            if i > 0 {
                out.push(' ');
            }
            for &b in chunk {
                out.push(char::from(b));
            }
        }
        out
    }
}

/// The OS random number generator failed.
pub use getrandom::Error as RandomError;

/// Generates an app password from the OS CSPRNG.
pub fn generate() -> Result<AppPassword, RandomError> {
    AppPassword::generate_with(getrandom::fill)
}

impl Drop for AppPassword {
    fn drop(&mut self) {
        self.letters.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn generated_passwords_have_the_documented_shape() {
        let pw = generate().unwrap();
        let g = pw.grouped();
        assert_eq!(g.len(), 29);
        let groups: Vec<&str> = g.split(' ').collect();
        assert_eq!(groups.len(), 6);
        assert!(groups.iter().all(|grp| grp.len() == 4));
        assert!(g.bytes().all(|b| b == b' ' || b.is_ascii_lowercase()));
        assert_eq!(pw.tag(), groups[0]);
        // Entropy claim: 20 letters of 26.
        assert!(f64::from(u32::try_from(SECRET_LEN).unwrap()) * 26f64.log2() >= 94.0);
    }

    #[test]
    fn generation_uses_every_letter_and_rejects_biased_bytes() {
        // A source that only yields 250..=255 would be biased; they must all be skipped.
        let mut calls = 0;
        let pw = AppPassword::generate_with(|buf: &mut [u8]| {
            calls += 1;
            for (i, b) in buf.iter_mut().enumerate() {
                *b = if calls == 1 {
                    250
                } else {
                    u8::try_from(i % 26).unwrap()
                };
            }
            Ok::<(), ()>(())
        })
        .unwrap();
        assert_eq!(calls, 2);
        assert_eq!(pw.as_bytes(), b"abcdefghijklmnopqrstuvwx");
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a.as_bytes(), b.as_bytes());
    }

    #[test]
    fn input_ignores_case_spaces_and_dashes() {
        let pw = AppPassword::parse(b"abcd efgh ijkl mnop qrst uvwx").unwrap();
        for variant in [
            &b"abcdefghijklmnopqrstuvwx"[..],
            b"ABCD-EFGH-IJKL-MNOP-QRST-UVWX",
            b" AbCd efgh-ijkl  mnop qrst uvwx ",
        ] {
            assert_eq!(
                AppPassword::parse(variant).unwrap().as_bytes(),
                pw.as_bytes()
            );
        }
        assert_eq!(pw.tag(), "abcd");
    }

    #[test]
    fn other_shapes_are_not_app_passwords() {
        for bad in [
            &b""[..],
            b"Winter2026!",
            b"abcdefghijklmnopqrstuvw",
            b"abcdefghijklmnopqrstuvwxy",
            b"abcd efgh ijkl mnop qrst uvw1",
            b"abcd\tefgh ijkl mnop qrst uvwx",
            "äbcd efgh ijkl mnop qrst uvwx".as_bytes(),
        ] {
            assert!(AppPassword::parse(bad).is_none(), "{bad:?}");
        }
    }

    proptest! {
        #[test]
        fn grouped_output_parses_back(seed: [u8; 32]) {
            let mut it = seed.iter().cycle();
            let pw = AppPassword::generate_with(|buf: &mut [u8]| {
                for b in buf.iter_mut() { *b = *it.next().unwrap_or(&0) % 234; }
                Ok::<(), ()>(())
            }).unwrap();
            let again = AppPassword::parse(pw.grouped().as_bytes()).unwrap();
            prop_assert_eq!(again.as_bytes(), pw.as_bytes());
        }

        #[test]
        fn parse_never_panics(input in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Some(pw) = AppPassword::parse(&input) {
                prop_assert_eq!(pw.as_bytes().len(), LEN);
                prop_assert!(pw.as_bytes().iter().all(u8::is_ascii_lowercase));
            }
        }
    }
}
