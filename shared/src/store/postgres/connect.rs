//! How a connection to PostgreSQL is made: the URL's plan (`pgurl.rs`), the timeouts sent in
//! the startup packet, the password file (trusted like the config), and TLS through OpenSSL
//! only in a program that enabled it.

use super::*;

/// Reads the password file named by `database_password_file`: it decides which database is
/// believed, so it must pass [`crate::trust`] like the config; refused as well when every user
/// may read it.
fn read_password_file(path: &Path) -> Result<Zeroizing<String>, StoreError> {
    use crate::trust::{self, CheckError, Identity, Parent};
    use std::io::Read;
    use std::os::unix::fs::PermissionsExt;
    let err = |problem: String| StoreError::PasswordFile {
        path: path.to_path_buf(),
        problem,
    };
    let file =
        trust::open(path, &Identity::of_process(), Parent::Checked).map_err(|e| match e {
            // A configuration error, like an untrusted config: see `StoreError::is_configuration`.
            CheckError::Untrusted(t) => StoreError::Untrusted(t),
            CheckError::Io { source, .. } => err(format!("cannot be read: {source}")),
        })?;
    let mode = file.meta.permissions().mode();
    if mode & 0o006 != 0 {
        return Err(err(format!(
            "is readable or writable by every user (mode {:o}); run chmod o-rw on it \
             (e.g. root:apppw mode 0640)",
            mode & 0o777
        )));
    }
    let mut text = Zeroizing::new(String::new());
    file.file
        .take(4096)
        .read_to_string(&mut text)
        .map_err(|e| err(format!("cannot be read: {e}")))?;
    let password = Zeroizing::new(text.trim_end_matches(['\n', '\r']).to_owned());
    if password.is_empty() {
        return Err(err("is empty".into()));
    }
    Ok(password)
}

/// Connects with TLS: the OpenSSL connector, once [`enable_tls`] has made it this process's.
type TlsConnect = fn(&postgres::Config, &Tls) -> Result<Result<Client, postgres::Error>, String>;

/// This process's way to connect with TLS; unset in a program that never enables it, which
/// then does not link OpenSSL at all (see `super::enable_postgres_tls`).
static TLS_CONNECT: OnceLock<TlsConnect> = OnceLock::new();

/// Makes OpenSSL this process's TLS for PostgreSQL.
pub(in crate::store) fn enable_tls() {
    let _ = TLS_CONNECT.set(|config, settings| Ok(config.connect(tls::connector(settings)?)));
}

pub(super) fn connect(target: &PgTarget, mode: Mode) -> Result<Client, StoreError> {
    let unavailable = |message: String| StoreError::Unavailable {
        database: target.url.clone(),
        message,
    };
    let plan = Plan::new(&target.url).map_err(|m| unavailable(format!("the URL {m}")))?;
    let mut config = plan.config.clone();
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_tcp_user_timeout().is_none() {
        config.tcp_user_timeout(TCP_USER_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("apppw");
    }
    // Server settings travel in the startup packet: no extra round trip per login.
    let (statement, lock) = match mode {
        Mode::Login | Mode::ReadOnly => LOGIN_TIMEOUTS,
        Mode::Admin => ADMIN_TIMEOUTS,
    };
    let mut options = format!("-c statement_timeout={statement} -c lock_timeout={lock}");
    if mode == Mode::ReadOnly {
        options.push_str(" -c default_transaction_read_only=on");
    }
    if let Some(own) = config.get_options() {
        // The site's own options come last, so that they win.
        options = format!("{options} {own}");
    }
    config.options(&options);
    if let Some(file) = &target.password_file {
        let password = read_password_file(file)?;
        config.password(password.as_bytes());
    }
    let connected = match &plan.tls {
        None => config.connect(NoTls),
        Some(settings) => match TLS_CONNECT.get() {
            Some(connect_tls) => connect_tls(&config, settings).map_err(unavailable)?,
            None => return Err(StoreError::NoTls(target.url.clone())),
        },
    };
    connected.map_err(|e| {
        let mut message = describe(&e);
        if let Some(hint) = plan.hint(&message) {
            message.push_str(&hint);
        }
        unavailable(message)
    })
}
