//! The PAM stacks that use `pam_apppw.so`: control flags and module arguments.
//!
//! The documented line is
//! `auth [success=done ignore=ignore default=die] pam_apppw.so config=/etc/apppw/apppw.toml`.
//! What each return value of the module must do there:
//!
//! | module returns | must be | else |
//! |---|---|---|
//! | `PAM_SUCCESS` (app password) | `done` | `ok`: the next module sees the app password and refuses it |
//! | `PAM_IGNORE` (on campus) | `ignore` | the normal password is refused on campus too |
//! | `PAM_AUTH_ERR` (off campus) | `die` | `ignore` (`sufficient`, `optional`): the next module accepts the normal password from everywhere; `bad`: the next modules run needlessly |

use super::Doctor;
use apppw::config::Config;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The module's file name.
const MODULE: &str = "pam_apppw.so";
/// Longest `@include` chain followed.
const MAX_INCLUDE_DEPTH: usize = 8;

/// One non-comment line of a PAM file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Line {
    /// 1-based line number (of the first physical line).
    pub number: usize,
    /// `auth`, `account`, ... (without a leading `-`), or `@include`.
    pub kind: String,
    /// The control field as written.
    pub control: String,
    /// The module path or name.
    pub module: String,
    /// Module arguments.
    pub args: Vec<String>,
}

/// Parses a PAM configuration file: comments, `\`-continued lines, `[...]` controls.
pub(super) fn parse(text: &str) -> Vec<Line> {
    let mut lines = Vec::new();
    let mut logical = String::new();
    let mut start = 0;
    for (i, raw) in text.lines().enumerate() {
        if logical.is_empty() {
            start = i + 1;
        }
        let content = raw.split('#').next().unwrap_or("");
        if let Some(head) = content.strip_suffix('\\') {
            logical.push_str(head);
            logical.push(' ');
            continue;
        }
        logical.push_str(content);
        if let Some(line) = parse_line(&logical, start) {
            lines.push(line);
        }
        logical.clear();
    }
    lines
}

fn parse_line(text: &str, number: usize) -> Option<Line> {
    let text = text.trim();
    let (kind, rest) = text.split_once(char::is_whitespace)?;
    let rest = rest.trim_start();
    if kind == "@include" {
        return Some(Line {
            number,
            kind: kind.into(),
            control: String::new(),
            module: rest.split_whitespace().next()?.into(),
            args: Vec::new(),
        });
    }
    let (control, rest) = if let Some(inner) = rest.strip_prefix('[') {
        let (inside, after) = inner.split_once(']')?;
        (format!("[{inside}]"), after)
    } else {
        let (control, after) = rest.split_once(char::is_whitespace)?;
        (control.to_owned(), after)
    };
    let mut words = rest.split_whitespace();
    let module = words.next()?.to_owned();
    Some(Line {
        number,
        kind: kind.trim_start_matches('-').to_owned(),
        control,
        module,
        args: words.map(str::to_owned).collect(),
    })
}

/// Is this the apppw module?
fn is_apppw(module: &str) -> bool {
    Path::new(module).file_name().is_some_and(|f| f == MODULE)
}

/// The actions of a control field for the return values that matter here.
fn actions(control: &str) -> Option<BTreeMap<String, String>> {
    let expanded = match control {
        "required" => "success=ok new_authtok_reqd=ok ignore=ignore default=bad",
        "requisite" => "success=ok new_authtok_reqd=ok ignore=ignore default=die",
        "sufficient" => "success=done new_authtok_reqd=done default=ignore",
        "optional" => "success=ok new_authtok_reqd=ok default=ignore",
        c if c.starts_with('[') => c.trim_start_matches('[').trim_end_matches(']'),
        // include, substack or a typo: not something this module can sit behind.
        _ => return None,
    };
    let pairs: BTreeMap<String, String> = expanded
        .split_whitespace()
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_ascii_lowercase()))
        .collect();
    let of = |rv: &str| {
        pairs
            .get(rv)
            .or_else(|| pairs.get("default"))
            .cloned()
            .unwrap_or_else(|| "bad".into())
    };
    Some(
        ["success", "ignore", "auth_err"]
            .into_iter()
            .map(|rv| (rv.to_owned(), of(rv)))
            .collect(),
    )
}

/// Checks every file in `dir` that has an `auth` line with `pam_apppw.so`.
/// `checked`: the config file the doctor loaded itself (its problems are reported once).
pub(super) fn check_dir(d: &mut Doctor, dir: &Path, checked: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        d.note(format!(
            "{} cannot be read: PAM stacks not checked",
            dir.display()
        ));
        return;
    };
    let mut files: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    let mut stacks = 0;
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for line in parse(&text) {
            if line.kind == "auth" && is_apppw(&line.module) {
                stacks += 1;
                check_line(d, &file, &line, checked);
            }
        }
    }
    if stacks == 0 {
        d.note(format!(
            "no PAM stack in {} uses {MODULE} (fine with Dovecot's checkpassword passdb only)",
            dir.display()
        ));
    }
}

const DOCUMENTED: &str = "auth [success=done ignore=ignore default=die] pam_apppw.so \
                          config=/etc/apppw/apppw.toml";

fn check_line(d: &mut Doctor, file: &Path, line: &Line, checked: &Path) {
    let place = format!("{} line {}", file.display(), line.number);
    let fix = format!("write the line as documented: {DOCUMENTED}");
    match actions(&line.control) {
        None => d.find(
            "pam-control",
            &place,
            format!(
                "control `{}` cannot stand in front of the normal-password module",
                line.control
            ),
            &fix,
        ),
        Some(a) => {
            match a["auth_err"].as_str() {
                "die" => {}
                "ignore" => d.find(
                    "pam-refusal-ignored",
                    &place,
                    format!(
                        "control `{}` ignores the module's refusal, so the next module accepts \
                         the normal password from everywhere",
                        line.control
                    ),
                    &fix,
                ),
                other => d.find(
                    "pam-default-die",
                    &place,
                    format!(
                        "missing default=die: a refusal (normal password off campus) does \
                         `{other}` instead of ending the stack"
                    ),
                    &fix,
                ),
            }
            if a["success"] != "done" {
                d.find(
                    "pam-success-done",
                    &place,
                    format!(
                        "missing success=done: an accepted app password does `{}` and goes on \
                         to the next module, which refuses it",
                        a["success"]
                    ),
                    &fix,
                );
            }
            if a["ignore"] != "ignore" && a["auth_err"] != "ignore" {
                d.find(
                    "pam-ignore",
                    &place,
                    format!(
                        "missing ignore=ignore: on campus the module steps aside (PAM_IGNORE), \
                         but `{}` refuses the normal password there too",
                        a["ignore"]
                    ),
                    &fix,
                );
            }
        }
    }
    let mut config = None;
    for arg in &line.args {
        match arg.strip_prefix("config=") {
            Some(path) if !path.is_empty() && config.is_none() => config = Some(path),
            _ => d.find(
                "pam-argument",
                &place,
                format!(
                    "module argument `{arg}` is refused by the module: every password, the \
                     normal one included, is refused through this stack"
                ),
                "the only argument is config=FILE, given once",
            ),
        }
    }
    match config {
        None => d.find(
            "pam-config-missing",
            &place,
            "no config= argument: the module reads /etc/apppw/apppw.toml, which may not be \
             the file you checked",
            "name the file: config=/etc/apppw/apppw.toml",
        ),
        Some(path) if same_file(Path::new(path), checked) => {}
        Some(path) => {
            // As the module loads it: trust rule included, environment never.
            if let Err(e) = Config::load_for_pam_module(Some(Path::new(path))) {
                d.find(
                    "pam-config-invalid",
                    &place,
                    format!("config={path} does not load, so every login through this stack is refused: {e}"),
                    "fix the file or the path",
                );
            }
        }
    }
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    }
}

/// What the auth stack of a PAM service does with a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Stack {
    /// It runs `pam_apppw.so` (directly or through `@include`, `include`, `substack`).
    Apppw,
    /// It only denies (`pam_deny.so`): nobody logs in through it.
    Denies,
    /// It checks passwords without apppw.
    Other,
}

/// The auth stack of PAM service `service` in `dir`; a missing file means Linux-PAM's
/// `other` (on Debian: `common-auth`, i.e. `pam_unix`).
pub(super) fn service_stack(dir: &Path, service: &str) -> Stack {
    let file = dir.join(service);
    let file = if file.exists() {
        file
    } else {
        dir.join("other")
    };
    let modules = auth_modules(dir, &file, 0);
    if modules.iter().any(|m| is_apppw(m)) {
        Stack::Apppw
    } else if modules
        .iter()
        .all(|m| Path::new(m).file_name().is_some_and(|f| f == "pam_deny.so"))
    {
        Stack::Denies
    } else {
        Stack::Other
    }
}

/// The modules of a file's auth stack, includes followed.
fn auth_modules(dir: &Path, file: &Path, depth: usize) -> Vec<String> {
    if depth > MAX_INCLUDE_DEPTH {
        return Vec::new();
    }
    let Ok(text) = std::fs::read_to_string(file) else {
        return Vec::new();
    };
    let mut modules = Vec::new();
    for l in parse(&text) {
        let path = |name: &str| {
            if Path::new(name).is_absolute() {
                PathBuf::from(name)
            } else {
                dir.join(name)
            }
        };
        match (l.kind.as_str(), l.control.as_str()) {
            ("@include", _) | ("auth", "include" | "substack") => {
                modules.extend(auth_modules(dir, &path(&l.module), depth + 1));
            }
            ("auth", _) => modules.push(l.module),
            _ => {}
        }
    }
    modules
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_controls_comments_and_continuations() {
        let lines = parse(
            "# comment\n\
             auth [success=done ignore=ignore default=die] pam_apppw.so config=/x.toml # why\n\
             -auth   sufficient \\\n  /lib/security/pam_apppw.so\n\
             @include common-auth\n\
             account required pam_unix.so\n",
        );
        assert_eq!(lines.len(), 4);
        assert_eq!(lines[0].number, 2);
        assert_eq!(lines[0].control, "[success=done ignore=ignore default=die]");
        assert_eq!(lines[0].args, ["config=/x.toml"]);
        assert_eq!((lines[1].kind.as_str(), lines[1].number), ("auth", 3));
        assert_eq!(lines[1].control, "sufficient");
        assert!(is_apppw(&lines[1].module));
        assert_eq!(lines[2].kind, "@include");
        assert_eq!(lines[2].module, "common-auth");
    }

    #[test]
    fn control_keywords_expand_like_linux_pam() {
        let a = actions("sufficient").unwrap();
        assert_eq!(
            (a["success"].as_str(), a["auth_err"].as_str()),
            ("done", "ignore")
        );
        let a = actions("required").unwrap();
        assert_eq!(
            (a["success"].as_str(), a["auth_err"].as_str()),
            ("ok", "bad")
        );
        let a = actions("[success=done ignore=ignore default=die]").unwrap();
        assert_eq!(
            (
                a["success"].as_str(),
                a["ignore"].as_str(),
                a["auth_err"].as_str()
            ),
            ("done", "ignore", "die")
        );
        let a = actions("[success=done default=die]").unwrap();
        assert_eq!(a["ignore"], "die");
        assert!(actions("include").is_none());
    }
}
