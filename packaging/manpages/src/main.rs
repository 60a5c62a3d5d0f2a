//! Writes `apppw.1` and one page per subcommand (`apppw-create.1`, ...) from the clap
//! definitions of the admin CLI, so that the man pages and `--help` never disagree.
//!
//! Usage: `apppw-manpages OUT_DIR [DATE]` (DATE as YYYY-MM-DD, for reproducible pages).
#![forbid(unsafe_code)]

use apppw_cli::cli::Cli;
use clap::CommandFactory;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, italic, roman};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const MANUAL: &str = "apppw manual";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out_dir), date, None) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: apppw-manpages OUT_DIR [DATE]");
        return ExitCode::from(2);
    };
    let date = date
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_default();
    match write_pages(Path::new(&out_dir), &date) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "apppw-manpages: cannot write to {}: {e}",
                Path::new(&out_dir).display()
            );
            ExitCode::from(1)
        }
    }
}

/// Renders every page into `out_dir` and returns the files written.
fn write_pages(out_dir: &Path, date: &str) -> std::io::Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out_dir)?;
    let mut written = Vec::new();
    for (name, page) in pages(date)? {
        let path = out_dir.join(name);
        std::fs::write(&path, page)?;
        written.push(path);
    }
    Ok(written)
}

/// The pages as (file name, roff source).
fn pages(date: &str) -> std::io::Result<Vec<(String, Vec<u8>)>> {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    let source = format!("apppw {}", cmd.get_version().unwrap_or_default());
    let man = |c: clap::Command| Man::new(c).date(date).source(&source).manual(MANUAL);

    let mut out = Vec::new();
    let main = man(cmd.clone());
    let mut page = Vec::new();
    main.render_title(&mut page)?;
    main.render_name_section(&mut page)?;
    main.render_synopsis_section(&mut page)?;
    main.render_description_section(&mut page)?;
    main.render_options_section(&mut page)?;
    main.render_subcommands_section(&mut page)?;
    main_tail(&cmd).to_writer(&mut page)?;
    main.render_version_section(&mut page)?;
    out.push((main.get_filename(), page));

    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let sub_man = man(sub.clone());
        let mut page = Vec::new();
        sub_man.render(&mut page)?;
        let mut see_also = Roff::new();
        see_also.control("SH", ["SEE ALSO"]);
        see_also.text([
            bold("apppw"),
            roman("(1), "),
            bold("apppw.toml"),
            roman("(5)"),
        ]);
        see_also.to_writer(&mut page)?;
        out.push((sub_man.get_filename(), page));
    }
    Ok(out)
}

/// The sections clap knows nothing about: environment, files, exit status, examples, see also.
fn main_tail(cmd: &clap::Command) -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["ENVIRONMENT"]);
    r.control("TP", []);
    r.text([bold("APPPW_CONFIG")]);
    r.text([roman(
        "Configuration file used when --config is not given. \
         Without either, /etc/apppw/apppw.toml is read.",
    )]);

    r.control("SH", ["FILES"]);
    r.control("TP", []);
    r.text([italic("/etc/apppw/apppw.toml")]);
    r.text([
        roman("Campus networks, database path and Argon2 parameters; see "),
        bold("apppw.toml"),
        roman("(5)."),
    ]);
    r.control("TP", []);
    r.text([italic("/var/lib/apppw/apppw.db")]);
    r.text([roman(
        "The SQLite database (default path), created by the first write. \
         Only Argon2id hashes of app passwords are stored, never the passwords.",
    )]);

    r.control("SH", ["EXIT STATUS"]);
    for (code, meaning) in [
        ("0", "Success (for verify: an app password matched)."),
        ("1", "Failure; one line on standard error says what to do."),
        ("2", "Usage error."),
    ] {
        r.control("TP", []);
        r.text([bold(code)]);
        r.text([roman(meaning)]);
    }

    r.control("SH", ["EXAMPLES"]);
    for (what, example) in [
        (
            "A new app password for the phone of user alice, valid for 90 days, only for IMAP and SMTP:",
            "apppw create alice phone --expires 90d --services imap,smtp",
        ),
        (
            "All app passwords of alice, without secrets:",
            "apppw list alice",
        ),
        (
            "Replace it: create a new one, configure the client, then:",
            "apppw revoke alice phone",
        ),
        (
            "Would a login from this address be on campus?",
            "apppw explain 192.0.2.200",
        ),
        (
            "What would a login with this password from outside get?",
            "apppw verify alice --ip 203.0.113.9 --service imap",
        ),
        (
            "Rolling out: with [enforcement] mode = \"report\", who used the normal password \
             from outside in the last two weeks, and do they have an app password?",
            "apppw report --since 14d",
        ),
        (
            "Give a straggler two more weeks, with the ticket number:",
            "apppw exempt bob --until 14d --reason \"ticket 4711: old scanner\"",
        ),
        (
            "Check the installation (config, database access for Dovecot, PAM stacks, Dovecot):",
            "apppw doctor",
        ),
        (
            "Metrics for node_exporter's textfile collector, e.g. from cron:",
            "apppw stats --prometheus > /var/lib/prometheus/node-exporter/apppw.prom.tmp && \
             mv /var/lib/prometheus/node-exporter/apppw.prom.tmp \
             /var/lib/prometheus/node-exporter/apppw.prom",
        ),
    ] {
        r.control("PP", []);
        r.text([roman(what)]);
        r.control("IP", []);
        r.control("nf", []);
        r.text([roman(example)]);
        r.control("fi", []);
    }

    r.control("SH", ["SEE ALSO"]);
    let mut refs: Vec<_> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .flat_map(|s| [bold(format!("apppw-{}", s.get_name())), roman("(1), ")])
        .collect();
    refs.extend([
        bold("apppw.toml"),
        roman("(5), "),
        bold("apppw-checkpassword"),
        roman("(8), "),
        bold("pam_apppw"),
        roman("(8)"),
    ]);
    r.text(refs);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rendered() -> Vec<(String, String)> {
        pages("2025-01-01")
            .unwrap()
            .into_iter()
            .map(|(n, p)| (n, String::from_utf8(p).unwrap()))
            .collect()
    }

    #[test]
    fn one_page_per_subcommand_plus_the_main_page() {
        let names: Vec<String> = rendered().into_iter().map(|(n, _)| n).collect();
        for expected in [
            "apppw.1",
            "apppw-create.1",
            "apppw-list.1",
            "apppw-revoke.1",
            "apppw-explain.1",
            "apppw-verify.1",
            "apppw-exempt.1",
            "apppw-unexempt.1",
            "apppw-report.1",
            "apppw-doctor.1",
            "apppw-prune.1",
            "apppw-stats.1",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "{expected} missing from {names:?}"
            );
        }
        assert!(!names.iter().any(|n| n.contains("help")), "{names:?}");
        assert!(
            !names.iter().any(|n| n.contains("completions")),
            "{names:?}"
        );
    }

    #[test]
    fn pages_carry_the_clap_help_texts() {
        let pages = rendered();
        let page = |name: &str| &pages.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(page("apppw.1").contains("APPPW_CONFIG"));
        assert!(page("apppw.1").contains(".SH \"EXIT STATUS\""));
        assert!(page("apppw.1").contains(".TH apppw 1 2025-01-01 \"apppw 0."));
        assert!(page("apppw-create.1").contains("\\-\\-expires"));
        assert!(page("apppw-create.1").contains("unique per user"));
        assert!(page("apppw-revoke.1").contains("\\-\\-all"));
        assert!(page("apppw-exempt.1").contains("at most 90 days"));
        assert!(page("apppw-report.1").contains("\\-\\-since"));
        assert!(page("apppw-doctor.1").contains("each finding with its fix"));
        assert!(page("apppw-stats.1").contains("node_exporter"));
    }
}
