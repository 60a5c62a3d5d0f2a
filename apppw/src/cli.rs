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

    /// Print JSON instead of text (every command that prints).
    #[arg(long, global = true)]
    pub json: bool,

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
    },
    /// List app passwords (never the passwords themselves).
    List {
        /// Only this user's.
        user: Option<String>,
        /// Only those that have expired.
        #[arg(long, conflicts_with = "unused_since")]
        expired: bool,
        /// Only those not used for this long (90d, 12w; or since a date, 2026-09-01);
        /// one never used counts from its creation.
        #[arg(long, value_name = "AGE")]
        unused_since: Option<String>,
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
    /// Delete app passwords that have expired, or that have not been used for a time.
    Prune {
        /// Only this user's.
        user: Option<String>,
        /// Those that have expired.
        #[arg(
            long,
            required_unless_present = "unused_since",
            conflicts_with = "unused_since"
        )]
        expired: bool,
        /// Those not used for this long (180d, 26w; or since a date); one never used counts
        /// from its creation.
        #[arg(long, value_name = "AGE")]
        unused_since: Option<String>,
        /// Show what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Exempt a user from the off-campus rule for a while, or list the exemptions.
    ///
    /// Until the time given, the user's normal password is passed on to the normal-password
    /// check off campus too, as in report mode (logged as result=would-refuse). App passwords
    /// work as always. At most 90 days ahead; an ended exemption is ignored.
    Exempt {
        /// Login name of the user.
        #[arg(required_unless_present = "list", conflicts_with = "list")]
        user: Option<String>,
        /// End: a duration (14d, 12h, 2w) or a date (2027-01-31, through that day UTC); at
        /// most 90 days ahead.
        #[arg(
            long,
            value_name = "WHEN",
            required_unless_present = "list",
            conflicts_with = "list"
        )]
        until: Option<String>,
        /// Why (shown by --list), e.g. a ticket number.
        #[arg(long, value_name = "TEXT", conflicts_with = "list")]
        reason: Option<String>,
        /// List every exemption: user, until, reason, who granted it and when.
        #[arg(long)]
        list: bool,
    },
    /// End a user's exemption.
    Unexempt {
        /// Login name of the user.
        user: String,
    },
    /// Who still uses the normal password from off campus (the people to contact).
    ///
    /// Per user: the off-campus normal-password attempts, refused or passed on (report mode,
    /// exemption), the last one's time, address and service, the user's app passwords and
    /// exemption. Most attempts first.
    Report {
        /// How far back: 7d, 12w, or a date (2026-09-01); counted in whole UTC days.
        #[arg(long, value_name = "AGE", default_value = "7d")]
        since: String,
    },
    /// Check the installation for the usual mistakes; each finding with its fix.
    ///
    /// The config (loaded as the front-ends load it) and its campus networks; the database,
    /// opened as Dovecot's auth user with the groups Dovecot gives it (run as root); the
    /// /etc/pam.d stacks with pam_apppw.so; doveconf -n (passdbs, auth cache key, trusted
    /// networks). Exit 0 when clean, 1 with findings.
    Doctor,
    /// Counts of app passwords, exemptions and off-campus normal-password attempts.
    ///
    /// With --prometheus in the node_exporter textfile format: app passwords by state,
    /// exemptions by state, and the off-campus normal-password attempts of today and
    /// yesterday (UTC) by result (refused, would-refuse), from the report table.
    Stats {
        /// Print Prometheus metrics (node_exporter textfile collector).
        #[arg(long)]
        prometheus: bool,
    },
    /// Print a shell completion script (bash, zsh, fish, ...); the package installs them.
    #[command(hide = true)]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
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
    fn json_is_global() {
        let cli = Cli::try_parse_from(["apppw", "report", "--json"]).unwrap();
        assert!(cli.json);
        let cli = Cli::try_parse_from(["apppw", "--json", "explain", "1.2.3.4"]).unwrap();
        assert!(cli.json);
    }

    #[test]
    fn exempt_needs_until_unless_listing() {
        assert!(Cli::try_parse_from(["apppw", "exempt", "alice"]).is_err());
        assert!(Cli::try_parse_from(["apppw", "exempt", "alice", "--until", "14d"]).is_ok());
        assert!(Cli::try_parse_from(["apppw", "exempt", "--list"]).is_ok());
        assert!(Cli::try_parse_from(["apppw", "exempt", "alice", "--list"]).is_err());
    }

    #[test]
    fn prune_needs_one_criterion() {
        assert!(Cli::try_parse_from(["apppw", "prune"]).is_err());
        assert!(Cli::try_parse_from(["apppw", "prune", "--expired"]).is_ok());
        assert!(
            Cli::try_parse_from(["apppw", "prune", "--expired", "--unused-since", "9d"]).is_err()
        );
        assert!(Cli::try_parse_from(["apppw", "prune", "--unused-since", "180d"]).is_ok());
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
