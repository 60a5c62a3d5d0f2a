//! The documentation cannot rot silently: every configuration block in `README.md` and
//! `docs/*.md` says how it is checked, in its fence's info string, and this file checks it.
//!
//! | info string | check |
//! |---|---|
//! | `toml check=apppw.toml` | parses with apppw's own loader (`apppw::Config::parse`) |
//! | `toml check=web.toml` | parses with the self-service page's loader (`WebConfig::parse`) |
//! | `dovecot check=dovecot-2.3` | `doveconf -n -c FILE` of this machine's Dovecot 2.3: exit 0, nothing on stderr |
//! | `dovecot check=dovecot-2.4` | the same with Dovecot 2.4 in the Debian 13 root of `scripts/trixie-root.sh` |
//! | `pam check=pam` | every line is a Linux-PAM line whose module (or included file) is installed; `pam_apppw.so` only as documented |
//! | `ini check=pgbouncer` | PgBouncer starts with it (only the paths of this machine replaced) |
//! | `LANG same-as=PATH` | the block is a run of whole lines of `PATH` (a file the tests use) |
//! | `LANG run-by=PATH` | the test file `PATH` reads the block from the page and runs it |
//!
//! A shell block after `<!-- tested: NAME -->` is run by the test that looks for that marker
//! (`tests/tests/package.rs` runs the README's quick start for Debian 13).
//!
//! A block may carry several `check=`. A block in a configuration language (`toml`, `ini`,
//! `conf`, `dovecot`, `pam`, `postfix`), or one that looks like apppw, Dovecot or PAM
//! configuration whatever its language, fails the test when it carries none. Every block needs a
//! language (`text` for the rest). Links between the pages must lead to a file and a heading, and
//! the code paths and test functions the pages name must exist.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw_integration_tests::trixie::{self, Jail};
use apppw_integration_tests::{is_root, workspace};
use std::collections::BTreeSet;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Languages whose blocks must say how they are checked.
const CONFIG_LANGUAGES: &[&str] = &["toml", "ini", "conf", "dovecot", "pam", "postfix"];
/// The checks `check=` may name.
const CHECKS: &[&str] = &[
    "apppw.toml",
    "web.toml",
    "dovecot-2.3",
    "dovecot-2.4",
    "pam",
    "pgbouncer",
];
/// Linux-PAM's modules on Debian (amd64).
const PAM_MODULES: &str = "/usr/lib/x86_64-linux-gnu/security";
/// The one documented control of the `pam_apppw.so` line.
const APPPW_CONTROL: &str = "[success=done ignore=ignore default=die]";

/// One fenced block of a page.
#[derive(Debug, Clone)]
struct Block {
    /// The page, relative to the workspace.
    page: PathBuf,
    /// 1-based line of the opening fence.
    line: usize,
    /// The first word of the info string (`toml`, `sh`, ...), or empty.
    language: String,
    /// `check=` values.
    checks: Vec<String>,
    /// `same-as=` value.
    same_as: Option<String>,
    /// `run-by=` value: the test file that reads this block from the page and runs it.
    run_by: Option<String>,
    /// The content, each line ending in `\n`, the fence's indentation removed.
    text: String,
}

impl Block {
    fn place(&self) -> String {
        format!("{}:{}", self.page.display(), self.line)
    }
}

/// `README.md` and `docs/*.md`, relative to the workspace.
fn pages() -> Vec<PathBuf> {
    let mut pages = vec![PathBuf::from("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(workspace().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .map(|p| p.strip_prefix(workspace()).unwrap().to_path_buf())
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

fn read(page: &Path) -> String {
    std::fs::read_to_string(workspace().join(page)).unwrap()
}

/// The fenced blocks of one page's text.
fn parse_blocks(page: &Path, text: &str) -> Vec<Block> {
    let mut blocks = Vec::new();
    let mut open: Option<(Block, usize)> = None;
    for (i, line) in text.lines().enumerate() {
        let indent = line.len() - line.trim_start().len();
        let trimmed = line.trim_start();
        match &mut open {
            None => {
                if let Some(info) = trimmed.strip_prefix("```") {
                    let mut words = info.split_whitespace();
                    let mut block = Block {
                        page: page.to_path_buf(),
                        line: i + 1,
                        language: String::new(),
                        checks: Vec::new(),
                        same_as: None,
                        run_by: None,
                        text: String::new(),
                    };
                    if let Some(first) = words.clone().next().filter(|w| !w.contains('=')) {
                        block.language = first.to_owned();
                        words.next();
                    }
                    for word in words {
                        match word.split_once('=') {
                            Some(("check", v)) => block.checks.push(v.to_owned()),
                            Some(("same-as", v)) => block.same_as = Some(v.to_owned()),
                            Some(("run-by", v)) => block.run_by = Some(v.to_owned()),
                            _ => panic!(
                                "{}:{}: unknown word `{word}` in the info string",
                                page.display(),
                                i + 1
                            ),
                        }
                    }
                    open = Some((block, indent));
                }
            }
            Some((block, fence_indent)) => {
                if trimmed.starts_with("```") && trimmed.trim_end().chars().all(|c| c == '`') {
                    blocks.push(open.take().unwrap().0);
                } else {
                    let cut = indent.min(*fence_indent);
                    block.text.push_str(&line[cut..]);
                    block.text.push('\n');
                }
            }
        }
    }
    assert!(
        open.is_none(),
        "{}: a fence is never closed",
        page.display()
    );
    blocks
}

/// Every block of every page.
fn all_blocks() -> Vec<Block> {
    pages()
        .iter()
        .flat_map(|p| parse_blocks(p, &read(p)))
        .collect()
}

/// The blocks that carry `check=name`; at least one must exist.
fn checked(name: &str) -> Vec<Block> {
    let blocks: Vec<Block> = all_blocks()
        .into_iter()
        .filter(|b| b.checks.iter().any(|c| c == name))
        .collect();
    assert!(!blocks.is_empty(), "no block says check={name}");
    blocks
}

/// Whether a block of another language holds configuration anyway.
fn looks_like_config(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim();
        let words: Vec<&str> = l.split_whitespace().collect();
        let dovecot =
            matches!(words.first(), Some(&("passdb" | "userdb" | "service"))) && l.ends_with('{');
        let pam = matches!(
            words.first(),
            Some(&("auth" | "account" | "password" | "session"))
        ) && words.iter().any(|w| w.ends_with(".so"));
        let toml = l.starts_with("database =")
            || l.starts_with("[network]")
            || l.starts_with("[signin]")
            || l.starts_with("[enforcement]");
        dovecot || pam || toml
    })
}

/// Fails with every problem at once, one per line.
fn report(what: &str, problems: &[String]) {
    assert!(problems.is_empty(), "{what}:\n{}", problems.join("\n---\n"));
}

#[test]
fn every_config_block_says_how_it_is_checked() {
    let mut problems = Vec::new();
    let mut marked = 0;
    for b in all_blocks() {
        if b.language.is_empty() {
            problems.push(format!(
                "{}: a block without a language (say `text` for plain text)",
                b.place()
            ));
        }
        for c in &b.checks {
            if !CHECKS.contains(&c.as_str()) {
                problems.push(format!("{}: unknown check={c}", b.place()));
            }
        }
        if let Some(path) = &b.same_as {
            if !workspace().join(path).is_file() {
                problems.push(format!("{}: same-as={path}: no such file", b.place()));
            }
        }
        if let Some(test) = &b.run_by {
            let named = std::fs::read_to_string(workspace().join(test))
                .is_ok_and(|t| t.contains(&b.page.display().to_string()));
            if !named {
                problems.push(format!(
                    "{}: run-by={test}: that file does not read {}",
                    b.place(),
                    b.page.display()
                ));
            }
        }
        let marker = !b.checks.is_empty() || b.same_as.is_some() || b.run_by.is_some();
        marked += usize::from(marker);
        let config = CONFIG_LANGUAGES.contains(&b.language.as_str())
            || (!matches!(b.language.as_str(), "sh" | "console") && looks_like_config(&b.text));
        if config && !marker {
            problems.push(format!(
                "{}: a {} configuration block that nothing checks: add check=... or \
                 same-as=... to its info string (see tests/tests/docs.rs)\n{}",
                b.place(),
                if b.language.is_empty() {
                    "(no language)"
                } else {
                    &b.language
                },
                b.text
            ));
        }
    }
    report("unchecked blocks", &problems);
    assert!(marked >= 20, "only {marked} checked blocks found");
}

#[test]
fn tested_markers_name_a_test_that_runs_the_block() {
    let tests: String = std::fs::read_dir(workspace().join("tests/tests"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect();
    let mut problems = Vec::new();
    let mut found = 0;
    for page in pages() {
        for (i, line) in read(&page).lines().enumerate() {
            if let Some(marker) = line.trim().strip_prefix("<!-- tested:") {
                found += 1;
                if !tests.contains(&format!("\"{}", line.trim())) {
                    problems.push(format!(
                        "{}:{}: no test in tests/tests looks for{marker}",
                        page.display(),
                        i + 1
                    ));
                }
            }
        }
    }
    report("tested markers without their test", &problems);
    assert!(found > 0, "no <!-- tested: ... --> marker found");
}

#[test]
fn apppw_toml_blocks_load_with_apppws_own_parser() {
    let mut problems = Vec::new();
    for b in checked("apppw.toml") {
        if let Err(e) = apppw::Config::parse(Path::new("/etc/apppw/apppw.toml"), &b.text) {
            problems.push(format!("{}: {e}\n{}", b.place(), b.text));
        }
    }
    report("apppw.toml blocks that do not load", &problems);
}

#[test]
fn web_toml_blocks_load_with_the_pages_own_parser() {
    let mut problems = Vec::new();
    for b in checked("web.toml") {
        if let Err(e) =
            apppw_web::webconfig::WebConfig::parse(Path::new("/etc/apppw/web.toml"), &b.text)
        {
            problems.push(format!("{}: {e}\n{}", b.place(), b.text));
        }
    }
    report("web.toml blocks that do not load", &problems);
}

/// `doveconf -n -c FILE` through `command`; `None` if it accepted the file silently.
fn doveconf(mut command: Command, file: &Path) -> Option<String> {
    let out = command
        .args(["-n", "-c"])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    (!out.status.success() || !stderr.trim().is_empty())
        .then(|| format!("doveconf: {}: {stderr}", out.status))
}

#[test]
fn dovecot_23_blocks_pass_doveconf() {
    let test = "dovecot_23_blocks_pass_doveconf";
    // doveconf has no --version; the dovecot of the same package has.
    let version = Command::new("/usr/sbin/dovecot").arg("--version").output();
    let version = match version {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).into_owned(),
        _ => {
            eprintln!("SKIP {test}: Dovecot is not installed (scripts/setup.sh installs it)");
            return;
        }
    };
    if !version.starts_with("2.3.") {
        eprintln!("SKIP {test}: this machine's Dovecot is {version}, not 2.3");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut problems = Vec::new();
    for (i, b) in checked("dovecot-2.3").iter().enumerate() {
        let file = dir.path().join(format!("block{i}.conf"));
        std::fs::write(&file, &b.text).unwrap();
        if let Some(e) = doveconf(Command::new("doveconf"), &file) {
            problems.push(format!("{}: {e}\n{}", b.place(), b.text));
        }
    }
    report("Dovecot 2.3 blocks that doveconf refuses", &problems);
}

#[test]
fn dovecot_24_blocks_pass_doveconf_of_debian_13() {
    let test = "dovecot_24_blocks_pass_doveconf_of_debian_13";
    let blocks = checked("dovecot-2.4");
    if !trixie::available(test) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let jail = Jail::new(&[dir.path()]);
    let mut problems = Vec::new();
    for (i, b) in blocks.iter().enumerate() {
        let file = dir.path().join(format!("block{i}.conf"));
        // 2.4 wants its version first; the block is what follows it in dovecot.conf.
        std::fs::write(
            &file,
            format!(
                "dovecot_config_version = 2.4.1\ndovecot_storage_version = 2.4.1\n{}",
                b.text
            ),
        )
        .unwrap();
        if let Some(e) = doveconf(jail.command("doveconf"), &file) {
            problems.push(format!("{}: {e}\n{}", b.place(), b.text));
        }
    }
    report("Dovecot 2.4 blocks that doveconf refuses", &problems);
}

/// What Linux-PAM accepts as a return value name in a `[value=action]` control.
const PAM_VALUES: &[&str] = &[
    "success",
    "open_err",
    "symbol_err",
    "service_err",
    "system_err",
    "buf_err",
    "perm_denied",
    "auth_err",
    "cred_insufficient",
    "authinfo_unavail",
    "user_unknown",
    "maxtries",
    "new_authtok_reqd",
    "acct_expired",
    "session_err",
    "cred_unavail",
    "cred_expired",
    "cred_err",
    "no_module_data",
    "conv_err",
    "authtok_err",
    "authtok_recover_err",
    "authtok_lock_busy",
    "authtok_disable_aging",
    "try_again",
    "ignore",
    "abort",
    "authtok_expired",
    "module_unknown",
    "bad_item",
    "conv_again",
    "incomplete",
    "default",
];

/// The next whitespace-separated word of `rest`, which moves past it.
fn next_word<'a>(rest: &mut &'a str) -> &'a str {
    let s = rest.trim_start();
    let end = s.find(char::is_whitespace).unwrap_or(s.len());
    let (word, after) = s.split_at(end);
    *rest = after.trim_start();
    word
}

/// The problems of one PAM file's text, line by line.
fn pam_problems(text: &str, modules: &Path, includes: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let at = |what: String| format!("line {}: {what}: {raw}", i + 1);
        let mut rest = line;
        let kind = next_word(&mut rest);
        if kind == "@include" {
            let file = next_word(&mut rest);
            if !includes.join(file).is_file() {
                problems.push(at(format!(
                    "{} does not exist",
                    includes.join(file).display()
                )));
            }
            continue;
        }
        if !matches!(
            kind.trim_start_matches('-'),
            "auth" | "account" | "password" | "session"
        ) {
            problems.push(at(format!("`{kind}` is not a PAM management group")));
            continue;
        }
        let control = if rest.starts_with('[') {
            let Some(end) = rest.find(']') else {
                problems.push(at("`[` without `]`".into()));
                continue;
            };
            let c = &rest[..=end];
            rest = rest[end + 1..].trim_start();
            c
        } else {
            next_word(&mut rest)
        };
        if let Some(inner) = control.strip_prefix('[') {
            for pair in inner.trim_end_matches(']').split_whitespace() {
                let ok = pair.split_once('=').is_some_and(|(v, a)| {
                    PAM_VALUES.contains(&v.to_ascii_lowercase().as_str())
                        && (matches!(a, "ignore" | "bad" | "die" | "ok" | "done" | "reset")
                            || a.parse::<u32>().is_ok_and(|n| n > 0))
                });
                if !ok {
                    problems.push(at(format!("`{pair}` is not a Linux-PAM value=action")));
                }
            }
        } else if !matches!(
            control,
            "required" | "requisite" | "sufficient" | "optional" | "include" | "substack"
        ) {
            problems.push(at(format!("`{control}` is not a PAM control")));
            continue;
        }
        let module = next_word(&mut rest);
        let args: Vec<&str> = rest.split_whitespace().collect();
        if matches!(control, "include" | "substack") {
            if !includes.join(module).is_file() {
                problems.push(at(format!(
                    "{} does not exist",
                    includes.join(module).display()
                )));
            }
            continue;
        }
        if Path::new(module)
            .file_name()
            .is_some_and(|f| f == "pam_apppw.so")
        {
            let documented = control.split_whitespace().collect::<Vec<_>>().join(" ");
            if kind != "auth" || documented != APPPW_CONTROL {
                problems.push(at(format!(
                    "pam_apppw.so belongs in an `auth {APPPW_CONTROL}` line (docs/pam.md)"
                )));
            }
            if args.len() != 1 || !args[0].starts_with("config=/") {
                problems.push(at("pam_apppw.so takes exactly one config=/PATH".into()));
            }
            continue;
        }
        let path = if module.starts_with('/') {
            PathBuf::from(module)
        } else {
            modules.join(module)
        };
        if !path.is_file() {
            problems.push(at(format!("{} is not installed", path.display())));
        }
    }
    problems
}

#[test]
fn pam_blocks_are_stacks_of_installed_modules() {
    let test = "pam_blocks_are_stacks_of_installed_modules";
    let blocks = checked("pam");
    if !Path::new(PAM_MODULES).join("pam_unix.so").is_file() {
        eprintln!("SKIP {test}: no Linux-PAM modules in {PAM_MODULES}");
        return;
    }
    let mut problems = Vec::new();
    for b in blocks {
        let found = pam_problems(&b.text, Path::new(PAM_MODULES), Path::new("/etc/pam.d"));
        if !found.is_empty() {
            problems.push(format!("{}:\n{}", b.place(), found.join("\n")));
        }
    }
    report("PAM blocks with mistakes", &problems);
}

/// The values of these `[pgbouncer]` keys are the site's paths: replaced by this machine's.
fn pgbouncer_config(block: &str, dir: &Path, port: u16) -> String {
    let site = |key: &str| match key {
        "unix_socket_dir" => Some(dir.display().to_string()),
        "auth_file" => Some(dir.join("users.txt").display().to_string()),
        "server_tls_ca_file" => Some("/etc/ssl/certs/ca-certificates.crt".into()),
        _ => None,
    };
    let mut out = String::new();
    for line in block.lines() {
        let key = line.split('=').next().unwrap_or("").trim();
        match site(key) {
            Some(value) if line.contains('=') => out.push_str(&format!("{key} = {value}\n")),
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    // Where this run listens and logs (the block's last section is [pgbouncer]).
    out.push_str(&format!(
        "listen_port = {port}\nlogfile = {d}/pgbouncer.log\npidfile = {d}/pgbouncer.pid\n",
        d = dir.display()
    ));
    out
}

/// Starts PgBouncer with `config` and stops it; `None` if it came up.
fn pgbouncer_starts(program: &Path, dir: &Path, config: &str) -> Option<String> {
    let file = dir.join("pgbouncer.ini");
    std::fs::write(&file, config).unwrap();
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    };
    let mut child = cmd
        .arg(&file)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = dir.join("pgbouncer.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    let result = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("process up") {
            break None;
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            break Some(format!("pgbouncer exited with {status}: {stderr}{text}"));
        }
        if Instant::now() > deadline {
            break Some(format!("pgbouncer did not come up in 10 s: {text}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    if let Ok(pid) = std::fs::read_to_string(dir.join("pgbouncer.pid")) {
        let _ = Command::new("kill").arg(pid.trim()).status();
    }
    let _ = child.kill();
    let _ = child.wait();
    result
}

#[test]
fn pgbouncer_blocks_start_pgbouncer() {
    let test = "pgbouncer_blocks_start_pgbouncer";
    let blocks = checked("pgbouncer");
    let program = Path::new("/usr/sbin/pgbouncer");
    if !program.exists() {
        eprintln!("SKIP {test}: pgbouncer is not installed (scripts/setup.sh installs it)");
        return;
    }
    let mut problems = Vec::new();
    for b in blocks {
        let dir = tempfile::tempdir().unwrap();
        if is_root() {
            let uid = apppw_integration_tests::dovecot::user_id("postgres")
                .expect("the postgres user (package postgresql)");
            std::os::unix::fs::chown(dir.path(), Some(uid), None).unwrap();
        }
        std::fs::write(dir.path().join("users.txt"), "\"apppw\" \"\"\n").unwrap();
        let config = pgbouncer_config(
            &b.text,
            dir.path(),
            apppw_integration_tests::dovecot::free_port(),
        );
        if let Some(e) = pgbouncer_starts(program, dir.path(), &config) {
            problems.push(format!("{}: {e}\n{config}", b.place()));
        }
    }
    report("PgBouncer blocks PgBouncer refuses", &problems);
}

#[test]
fn copied_blocks_are_runs_of_whole_lines_of_their_files() {
    let mut problems = Vec::new();
    let mut copies = 0;
    for b in all_blocks() {
        let Some(path) = &b.same_as else { continue };
        copies += 1;
        let Ok(file) = std::fs::read_to_string(workspace().join(path)) else {
            problems.push(format!("{}: cannot read {path}", b.place()));
            continue;
        };
        if !format!("\n{file}").contains(&format!("\n{}", b.text)) {
            problems.push(format!(
                "{}: not a run of whole lines of {path}:\n{}",
                b.place(),
                b.text
            ));
        }
    }
    report("copied blocks that differ from their files", &problems);
    assert!(copies > 0, "no block says same-as=");
}

/// GitHub's anchor of a heading: lowercase, punctuation dropped, spaces to `-`.
fn anchor(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a page's headings (outside fenced blocks).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut fenced = false;
    let mut set = BTreeSet::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            set.insert(anchor(line.trim_start_matches('#')));
        }
    }
    set
}

/// The markdown link targets of a text outside fenced blocks, with their line numbers.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut fenced = false;
    let mut found = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let mut rest = line;
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            found.push((i + 1, after[..end].to_owned()));
            rest = &after[end..];
        }
    }
    found
}

#[test]
fn links_lead_to_a_file_and_a_heading() {
    let mut problems = Vec::new();
    for page in pages() {
        let text = read(&page);
        for (line, target) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, fragment) = target.split_once('#').unwrap_or((&target, ""));
            let file = if path.is_empty() {
                workspace().join(&page)
            } else {
                workspace().join(page.parent().unwrap()).join(path)
            };
            if !file.exists() {
                problems.push(format!("{}:{line}: {target}: no such file", page.display()));
                continue;
            }
            if !fragment.is_empty() {
                let target_text = std::fs::read_to_string(&file).unwrap_or_default();
                if !anchors(&target_text).contains(fragment) {
                    problems.push(format!(
                        "{}:{line}: {target}: no heading with that anchor",
                        page.display()
                    ));
                }
            }
        }
    }
    report("links that lead nowhere", &problems);
}

/// The backquoted words of a line.
fn code_spans(line: &str) -> Vec<&str> {
    line.split('`').skip(1).step_by(2).collect()
}

#[test]
fn named_files_and_test_functions_exist() {
    const TOP: &[&str] = &[
        "shared/",
        "apppw/",
        "checkpassword/",
        "pam_apppw/",
        "pamauth/",
        "selfservice/",
        "tests/",
        "packaging/",
        "scripts/",
        "bench/",
        "docs/",
    ];
    let keys = std::fs::read_to_string(workspace().join("packaging/man/apppw.toml.5")).unwrap();
    let mut problems = Vec::new();
    for page in pages() {
        let text = read(&page);
        let mut fenced = false;
        for (i, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                fenced = !fenced;
            }
            if fenced {
                continue;
            }
            let spans = code_spans(line);
            let paths: Vec<&str> = spans
                .iter()
                .copied()
                .filter(|s| TOP.iter().any(|t| s.starts_with(t) && s.len() > t.len()))
                .filter(|s| {
                    s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "_./-".contains(c))
                })
                .collect();
            // A page may tell the history of a file that is gone, if the line says so.
            let history = line.contains(" is gone") || line.contains(" was removed");
            for p in &paths {
                if !history && !workspace().join(p).exists() {
                    problems.push(format!("{}:{}: {p}: no such file", page.display(), i + 1));
                }
            }
            // A test function is named next to its file: `tests/tests/x.rs` `the_test_name`.
            let sources: Vec<String> = paths
                .iter()
                .filter(|p| p.ends_with(".rs"))
                .filter_map(|p| std::fs::read_to_string(workspace().join(p)).ok())
                .collect();
            if sources.is_empty() {
                continue;
            }
            for name in spans.iter().filter(|s| {
                s.matches('_').count() >= 4
                    && s.chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    && !keys.contains(*s)
            }) {
                if !sources
                    .iter()
                    .any(|src| src.contains(&format!("fn {name}(")))
                {
                    problems.push(format!(
                        "{}:{}: no `fn {name}` in {}",
                        page.display(),
                        i + 1,
                        paths.join(", ")
                    ));
                }
            }
        }
    }
    report(
        "files and tests the pages name that do not exist",
        &problems,
    );
}

/// The README is what an admin reads first, in five minutes: the details belong in docs/.
#[test]
fn the_readme_stays_short() {
    let lines = read(Path::new("README.md")).lines().count();
    assert!(
        lines <= 200,
        "README.md has {lines} lines; move details to docs/"
    );
}

/// The checkers above must be able to fail: each refuses a broken block.
#[test]
fn the_checks_refuse_broken_blocks() {
    assert!(
        apppw::Config::parse(
            Path::new("/etc/apppw/apppw.toml"),
            "[network]\ncampsu = [\"192.0.2.0/24\"]\n"
        )
        .is_err()
    );
    assert!(
        apppw_web::webconfig::WebConfig::parse(
            Path::new("/etc/apppw/web.toml"),
            "[signin]\nmode = \"sso\"\n"
        )
        .is_err()
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("common-auth"), "").unwrap();
    std::fs::write(dir.path().join("pam_unix.so"), "").unwrap();
    let good = "auth [success=done ignore=ignore default=die] pam_apppw.so config=/etc/apppw/apppw.toml\n\
                @include common-auth\nauth required pam_unix.so try_first_pass\n";
    assert_eq!(
        pam_problems(good, dir.path(), dir.path()),
        Vec::<String>::new()
    );
    for broken in [
        "auth sufficient pam_apppw.so config=/etc/apppw/apppw.toml\n",
        "auth [success=done ignore=ignore default=die] pam_apppw.so debug\n",
        "auth [success=done ignore=ignore defualt=die] pam_unix.so\n",
        "auth required pam_unxi.so\n",
        "auht required pam_unix.so\n",
        "@include common-auht\n",
    ] {
        assert_eq!(
            pam_problems(broken, dir.path(), dir.path()).len(),
            1,
            "{broken}"
        );
    }
    let b = |text: &str| parse_blocks(Path::new("x.md"), text);
    let blocks = b("text\n```toml check=apppw.toml\nmode = 1\n```\n  ```pam\n  auth x\n  ```\n");
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0].checks, ["apppw.toml"]);
    assert_eq!(
        (blocks[1].language.as_str(), blocks[1].text.as_str()),
        ("pam", "auth x\n")
    );
    assert!(looks_like_config("passdb {\n  driver = pam\n}\n"));
    assert!(!looks_like_config("apppw list\n"));
    assert_eq!(
        anchor(" The normal password on campus: `[primary] pam_service`"),
        "the-normal-password-on-campus-primary-pam_service"
    );
}
