//! The command-line interface definition (also used to generate the man page).

use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Application passwords for mail servers.
///
/// Each user gets one random app password per device. Off campus only app passwords log in;
/// on campus the normal password works too.
#[derive(Debug, Parser)]
#[command(
    name = "apppw",
    version,
    after_help = "Config lookup: --config FILE, then $APPPW_CONFIG, then /etc/apppw/apppw.toml \
                  (the PAM module reads only its config= argument or that default).\n\
                  User names are lowercased unless the config says [users] case_sensitive = true.\n\
                  create, revoke and migrate each log one authpriv line naming the admin.\n\
                  Exit status: 0 success, 1 failure, 2 usage error."
)]
pub struct Cli {
    /// Configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an app password and print it (once).
    Create {
        /// Login name of the user.
        user: String,
        /// Name of the device or client, unique per user (e.g. "phone").
        label: String,
        /// Expiry: a duration (90d, 12h, 2w) or a date (2027-03-31, valid through that day UTC).
        #[arg(long, value_name = "WHEN")]
        expires: Option<String>,
        /// Only accept it for these services (comma-separated: imap,pop3,smtp,sieve,...).
        #[arg(long, value_name = "LIST", value_delimiter = ',')]
        services: Option<Vec<String>>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// List app passwords (never the passwords themselves).
    List {
        /// Only this user's.
        user: Option<String>,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Delete an app password; effective for the very next login attempt. Also flushes the
    /// user from Dovecot's auth cache (doveadm auth cache flush; see [dovecot] in apppw.toml(5));
    /// a failed flush is a warning.
    Revoke {
        /// Login name of the user.
        user: String,
        /// Label or id (see `apppw list`).
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        label_or_id: Option<String>,
        /// Delete all of the user's app passwords.
        #[arg(long)]
        all: bool,
    },
    /// Say whether an address counts as campus or off-campus, and which rule decided it.
    Explain {
        /// Client address (IPv4, IPv6, [IPv6], IPv6%zone, ::ffff:IPv4).
        ip: String,
    },
    /// Read one password line from stdin and print the decision a login would get
    /// (without recording a use). Exit 0 only if an app password matched.
    Verify {
        /// Login name of the user.
        user: String,
        /// Client address of the simulated login.
        #[arg(long, value_name = "IP")]
        ip: String,
        /// Service of the simulated login (imap, smtp, ...).
        #[arg(long, value_name = "SERVICE")]
        service: Option<String>,
    },
    /// Upgrade the config's database to the current schema and report what needs the
    /// admin (user names not in canonical form); with --check only report; with --from copy
    /// every app password from an SQLite file into PostgreSQL (hashes stay hashes; the
    /// passwords themselves were never stored), refusing a target that already has app
    /// passwords unless --force is given.
    Migrate {
        /// Change nothing: report the schema version and the user names that are not in
        /// canonical form (their app passwords no longer log in). Exit 1 if anything needs
        /// the admin.
        #[arg(long, conflicts_with = "from")]
        check: bool,
        /// The SQLite database to copy from.
        #[arg(long, value_name = "FILE")]
        from: Option<PathBuf>,
        /// The PostgreSQL database to copy into, as postgresql://USER@HOST/DBNAME (default:
        /// `database` of the config).
        #[arg(long, value_name = "URL", requires = "from")]
        to: Option<String>,
        /// File holding the PostgreSQL password (default: `database_password_file` of the
        /// config, when the target is the config's database).
        #[arg(long, value_name = "FILE", requires = "from")]
        password_file: Option<PathBuf>,
        /// Copy into a database that already has app passwords: add those whose user does
        /// not have that label yet, skip the others (running it twice changes nothing).
        #[arg(long, requires = "from")]
        force: bool,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn config_may_follow_the_verb() {
        let cli = Cli::try_parse_from(["apppw", "list", "--config", "/x.toml"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("/x.toml")));
        let cli =
            Cli::try_parse_from(["apppw", "--config", "/y.toml", "explain", "1.2.3.4"]).unwrap();
        assert_eq!(cli.config, Some(PathBuf::from("/y.toml")));
    }

    #[test]
    fn revoke_needs_exactly_one_target() {
        assert!(Cli::try_parse_from(["apppw", "revoke", "alice"]).is_err());
        assert!(Cli::try_parse_from(["apppw", "revoke", "alice", "x", "--all"]).is_err());
        assert!(Cli::try_parse_from(["apppw", "revoke", "alice", "--all"]).is_ok());
    }

    #[test]
    fn migrate_modes() {
        let cli = Cli::try_parse_from(["apppw", "migrate", "--from", "/a.db", "--force"]).unwrap();
        let Command::Migrate {
            from, to, force, ..
        } = cli.command
        else {
            panic!("not migrate")
        };
        assert_eq!(
            (from, to, force),
            (Some(PathBuf::from("/a.db")), None, true)
        );
        assert!(Cli::try_parse_from(["apppw", "migrate"]).is_ok());
        assert!(Cli::try_parse_from(["apppw", "migrate", "--check"]).is_ok());
        assert!(Cli::try_parse_from(["apppw", "migrate", "--check", "--from", "/a.db"]).is_err());
        assert!(Cli::try_parse_from(["apppw", "migrate", "--force"]).is_err());
        assert!(Cli::try_parse_from(["apppw", "migrate", "--to", "postgresql://x/y"]).is_err());
    }

    #[test]
    fn services_split_on_commas() {
        let cli =
            Cli::try_parse_from(["apppw", "create", "a", "b", "--services", "imap,smtp"]).unwrap();
        let Command::Create { services, .. } = cli.command else {
            panic!("not create")
        };
        assert_eq!(services, Some(vec!["imap".into(), "smtp".into()]));
    }
}
