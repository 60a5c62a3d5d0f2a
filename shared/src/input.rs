//! Bounds on what the front-ends accept from the outside world.
//!
//! Oversized or control-character input is rejected, never truncated: a truncated password
//! could match a different credential, and a user name with a newline could forge log lines.

/// Longest password candidate accepted (OpenSSH uses the same cap).
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// Longest user name accepted.
pub const MAX_USER_BYTES: usize = 256;

/// Why an input was rejected before any lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadInput {
    /// Empty user name.
    EmptyUser,
    /// User name longer than [`MAX_USER_BYTES`].
    UserTooLong,
    /// User name with NUL, a control character or invalid UTF-8.
    UserMalformed,
    /// Password longer than [`MAX_PASSWORD_BYTES`].
    PasswordTooLong,
    /// Password with NUL or a control character.
    PasswordMalformed,
}

impl BadInput {
    /// Short code used in log lines.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            BadInput::EmptyUser => "empty-user",
            BadInput::UserTooLong => "user-too-long",
            BadInput::UserMalformed => "user-malformed",
            BadInput::PasswordTooLong => "password-too-long",
            BadInput::PasswordMalformed => "password-malformed",
        }
    }
}

/// Checks a user name: non-empty, at most [`MAX_USER_BYTES`], no control characters.
pub fn check_user(user: &str) -> Result<(), BadInput> {
    if user.is_empty() {
        return Err(BadInput::EmptyUser);
    }
    if user.len() > MAX_USER_BYTES {
        return Err(BadInput::UserTooLong);
    }
    if user.chars().any(char::is_control) {
        return Err(BadInput::UserMalformed);
    }
    Ok(())
}

/// Checks a password candidate: at most [`MAX_PASSWORD_BYTES`], no NUL or control bytes.
/// Bytes above 0x7f are allowed (primary passwords may be UTF-8).
pub fn check_password(password: &[u8]) -> Result<(), BadInput> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(BadInput::PasswordTooLong);
    }
    if password.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(BadInput::PasswordMalformed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_bounds() {
        assert_eq!(check_user(""), Err(BadInput::EmptyUser));
        assert_eq!(check_user("a\nb"), Err(BadInput::UserMalformed));
        assert_eq!(check_user(&"x".repeat(257)), Err(BadInput::UserTooLong));
        assert_eq!(check_user(&"x".repeat(256)), Ok(()));
        assert_eq!(check_user("alice@example.org"), Ok(()));
    }

    #[test]
    fn password_bounds() {
        assert_eq!(
            check_password(&[b'a'; 1025]),
            Err(BadInput::PasswordTooLong)
        );
        assert_eq!(check_password(&[b'a'; 1024]), Ok(()));
        assert_eq!(check_password(b"ab\0cd"), Err(BadInput::PasswordMalformed));
        assert_eq!(check_password(b"ab\ncd"), Err(BadInput::PasswordMalformed));
        assert_eq!(check_password(b"ab\x7f"), Err(BadInput::PasswordMalformed));
        assert_eq!(check_password("pässwörd 1".as_bytes()), Ok(()));
        assert_eq!(check_password(b""), Ok(()));
    }
}
