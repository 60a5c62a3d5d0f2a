//! What `doveconf -n` says about the way Dovecot reaches apppw (Dovecot 2.3 and 2.4 syntax).
//!
//! - A passdb reaches apppw: `driver = checkpassword` running `apppw-checkpassword`, or
//!   `passdb pam` whose PAM service runs `pam_apppw.so`. Any other passdb (not a master or
//!   deny passdb, not limited with `allow_nets`) accepts passwords from everywhere.
//! - With `auth_cache_size` above 0, a cached `passdb pam` result must be keyed by service and
//!   client address, or a success on campus is served to the same user off campus (2.3: the
//!   `cache_key=` argument; 2.4 caches by default with a key of user and PAM service only, so
//!   `use_cache = no` is needed).
//! - `login_trusted_networks` (and `haproxy_trusted_networks`) name the proxies whose clients'
//!   addresses Dovecot believes; a client inside them can claim any address.
//!
//! `doveconf -n -P` prints secrets too (`-P`, so that `cache_key` is not hidden): they are
//! parsed here and never printed.

use super::Doctor;
use super::as_user::{self, Identity};
use super::pam::{Stack, service_stack};
use apppw::config::Config;
use ipnet::IpNet;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A section of `doveconf -n` output: `passdb { ... }`, `passdb pam { ... }`,
/// `service auth { ... }`.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Section {
    /// `passdb`, `service`, ... (empty for the top level).
    pub kind: String,
    /// The name after the kind, if any.
    pub name: Option<String>,
    /// `key = value` lines, in order.
    pub settings: Vec<(String, String)>,
    /// Nested sections.
    pub children: Vec<Section>,
}

impl Section {
    /// The value of `key`, also in its 2.4 long form (`passdb_pam_service_name` for
    /// `service_name` in a passdb).
    fn get(&self, key: &str) -> Option<&str> {
        self.settings
            .iter()
            .rev()
            .find(|(k, _)| {
                k == key
                    || k.strip_prefix("passdb_pam_") == Some(key)
                    || k.strip_prefix("passdb_") == Some(key)
            })
            .map(|(_, v)| v.as_str())
    }

    fn sections<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = &'a Section> {
        self.children.iter().filter(move |c| c.kind == kind)
    }

    /// Every `key = value` in this section and below, flattened (for `fields { ... }`).
    fn all_settings(&self) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = self
            .settings
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        for c in &self.children {
            out.extend(c.all_settings());
        }
        out
    }
}

/// Parses `doveconf -n` output.
pub(super) fn parse(text: &str) -> Section {
    let mut stack = vec![Section::default()];
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line == "}" {
            if stack.len() > 1 {
                if let Some(done) = stack.pop() {
                    if let Some(parent) = stack.last_mut() {
                        parent.children.push(done);
                    }
                }
            }
            continue;
        }
        if let Some(head) = line.strip_suffix('{') {
            let mut words = head.split_whitespace();
            stack.push(Section {
                kind: words.next().unwrap_or("").to_owned(),
                name: words.next().map(str::to_owned),
                ..Section::default()
            });
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            if let Some(top) = stack.last_mut() {
                top.settings
                    .push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
    }
    while stack.len() > 1 {
        if let Some(done) = stack.pop() {
            if let Some(parent) = stack.last_mut() {
                parent.children.push(done);
            }
        }
    }
    stack.pop().unwrap_or_default()
}

/// The variables a Dovecot template uses, by their long names (`%r` is `remote_ip`,
/// `%{rip}` too, `%Lu` is `user`).
pub(super) fn template_variables(template: &str) -> Vec<String> {
    let short = |c: char| -> Option<&'static str> {
        Some(match c {
            'u' => "user",
            'n' => "username",
            'd' => "domain",
            's' => "protocol",
            'r' => "remote_ip",
            'l' => "local_ip",
            'a' => "local_port",
            'b' => "remote_port",
            'p' => "pid",
            'm' => "mechanism",
            'w' => "password",
            _ => return None,
        })
    };
    let mut vars = Vec::new();
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        // Modifiers of 2.3 (`%Lu`, `%2.1u`, `%-5n`) come before the variable letter.
        while chars
            .peek()
            .is_some_and(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '.' || *c == '-')
        {
            chars.next();
        }
        match chars.next() {
            Some('{') => {
                let name: String = chars.by_ref().take_while(|c| *c != '}').collect();
                // 2.4 filters (`%{user | lower}`) and 2.3 prefixes (`%{auth:...}`) aside.
                let name = name.split('|').next().unwrap_or("").trim().to_owned();
                vars.push(match name.as_str() {
                    "rip" | "real_rip" | "remote_ip" | "real_remote_ip" => "remote_ip".into(),
                    "service" | "protocol" => "protocol".into(),
                    _ => name,
                });
            }
            Some(c) => {
                if let Some(name) = short(c) {
                    vars.push(name.into());
                }
            }
            None => {}
        }
    }
    vars
}

/// Dovecot's configuration as `doveconf -n` shows it.
pub(super) struct Dovecot {
    config: Section,
    version: (u32, u32),
    pam_dir: PathBuf,
    /// A passdb runs `apppw-checkpassword`.
    checkpassword: bool,
}

/// Runs `doveconf -n -P` and checks the passdbs and the auth cache. `None` when Dovecot is
/// not installed or its config cannot be read (noted or found).
pub(super) fn inspect(d: &mut Doctor, paths: &super::Paths) -> Option<Dovecot> {
    let mut cmd = Command::new(&paths.doveconf);
    if let Some(file) = &paths.dovecot_config {
        cmd.arg("-c").arg(file);
    }
    let out = match cmd.args(["-n", "-P"]).output() {
        Ok(out) => out,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            d.note(format!(
                "Dovecot is not installed here ({} not found): its settings were not checked",
                paths.doveconf.display()
            ));
            return None;
        }
        Err(e) => {
            d.note(format!("cannot run {}: {e}", paths.doveconf.display()));
            return None;
        }
    };
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        d.find(
            "dovecot-config",
            "doveconf -n",
            format!("Dovecot's configuration does not load: {}", err.trim()),
            "fix it as the message says (doveconf -n shows the same)",
        );
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let config = parse(&text);
    let version = text
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("# "))
        .and_then(|l| {
            let mut parts = l.split(|c: char| !c.is_ascii_digit());
            Some((parts.next()?.parse().ok()?, parts.next()?.parse().ok()?))
        })
        .unwrap_or(if config.get("dovecot_config_version").is_some() {
            (2, 4)
        } else {
            (2, 3)
        });
    let mut dovecot = Dovecot {
        config,
        version,
        pam_dir: paths.pam_dir.clone(),
        checkpassword: false,
    };
    dovecot.check_passdbs(d);
    Some(dovecot)
}

/// How one passdb relates to apppw.
struct Passdb<'a> {
    section: &'a Section,
    index: usize,
    driver: String,
}

impl Passdb<'_> {
    fn describe(&self) -> String {
        match &self.section.name {
            Some(name) => format!("passdb {name} (driver {})", self.driver),
            None => format!("passdb #{} (driver {})", self.index + 1, self.driver),
        }
    }

    fn yes(&self, key: &str) -> bool {
        self.section.get(key) == Some("yes")
    }
}

impl Dovecot {
    fn is_24(&self) -> bool {
        self.version >= (2, 4)
    }

    /// The protocols whose PAM services `%s` / `%{protocol}` stand for.
    fn protocols(&self) -> Vec<String> {
        let mut list: Vec<String> = self
            .config
            .get("protocols")
            .unwrap_or("imap pop3 submission")
            .split_whitespace()
            .filter(|p| *p != "lmtp" && *p != "lda" && !p.starts_with('$'))
            .map(str::to_owned)
            .collect();
        // Postfix SMTP AUTH through Dovecot SASL uses the service name "smtp".
        let postfix = self.config.sections("service").any(|s| {
            s.name.as_deref() == Some("auth")
                && s.children
                    .iter()
                    .any(|l| l.name.as_deref().is_some_and(|n| n.contains("postfix")))
        });
        if postfix && !list.iter().any(|p| p == "smtp") {
            list.push("smtp".into());
        }
        list
    }

    /// The PAM services a `passdb pam` uses.
    fn pam_services(&self, p: &Passdb<'_>) -> Vec<String> {
        let template = if self.is_24() {
            p.section
                .get("service_name")
                .or_else(|| self.config.get("passdb_pam_service_name"))
                .unwrap_or("dovecot")
                .to_owned()
        } else {
            // 2.3: the last argument, unless it is an option; `*` means the protocol.
            match p
                .section
                .get("args")
                .unwrap_or("")
                .split_whitespace()
                .next_back()
            {
                Some("*") => "%s".into(),
                Some(a) if !a.contains('=') && !a.starts_with('-') => a.to_owned(),
                _ => "dovecot".into(),
            }
        };
        if template_variables(&template)
            .iter()
            .any(|v| v == "protocol")
        {
            self.protocols()
                .into_iter()
                .map(|proto| {
                    template
                        .replace("%{protocol}", &proto)
                        .replace("%{service}", &proto)
                        .replace("%s", &proto)
                })
                .collect()
        } else {
            vec![template]
        }
    }

    fn passdbs(&self) -> Vec<Passdb<'_>> {
        self.config
            .sections("passdb")
            .enumerate()
            .map(|(index, section)| Passdb {
                section,
                index,
                driver: section
                    .get("driver")
                    .map(str::to_owned)
                    .or_else(|| section.name.clone())
                    .unwrap_or_default(),
            })
            .collect()
    }

    fn check_passdbs(&mut self, d: &mut Doctor) {
        let mut reaching = 0;
        let cache_on = self
            .config
            .get("auth_cache_size")
            .is_some_and(|v| v.trim_start_matches('0').trim() != "" && !v.starts_with("0 "));
        let mut checkpassword = false;
        for p in self.passdbs() {
            if p.yes("master") || p.yes("deny") {
                continue;
            }
            let limited = p.section.all_settings().iter().any(|(k, v)| {
                *k == "allow_nets" || v.split_whitespace().any(|w| w.starts_with("allow_nets="))
            });
            match p.driver.as_str() {
                "checkpassword" => {
                    let program = p
                        .section
                        .get("args")
                        .unwrap_or("")
                        .split_whitespace()
                        .next();
                    if program.is_some_and(|a| Path::new(a).ends_with("apppw-checkpassword")) {
                        reaching += 1;
                        checkpassword = true;
                        continue;
                    }
                }
                "pam" => {
                    let services = self.pam_services(&p);
                    let stacks: Vec<Stack> = services
                        .iter()
                        .map(|s| service_stack(&self.pam_dir, s))
                        .collect();
                    if stacks.contains(&Stack::Apppw) {
                        reaching += 1;
                        self.check_cache(d, &p, cache_on);
                    }
                    // A service that only denies (e.g. a missing file and a deny-all `other`)
                    // lets nobody in: broken for its protocol, but no way around apppw.
                    let without: Vec<&str> = services
                        .iter()
                        .zip(&stacks)
                        .filter(|(_, stack)| **stack == Stack::Other)
                        .map(|(s, _)| s.as_str())
                        .collect();
                    if without.is_empty() || limited {
                        continue;
                    }
                    let names = without;
                    d.find(
                        "dovecot-passdb-bypass",
                        format!("doveconf -n: {}", p.describe()),
                        format!(
                            "the PAM service {} does not run pam_apppw.so ({}), so this passdb \
                             accepts the normal password from everywhere",
                            names.join(", "),
                            self.pam_dir.display()
                        ),
                        "put the documented pam_apppw.so line first in that service's auth \
                         stack, or limit the passdb to campus with allow_nets",
                    );
                    continue;
                }
                _ => {}
            }
            if !limited {
                d.find(
                    "dovecot-passdb-bypass",
                    format!("doveconf -n: {}", p.describe()),
                    "this passdb does not go through apppw, so it accepts passwords from \
                     everywhere",
                    "remove it, or limit it to campus with allow_nets (docs/dovecot.md: \"Without \
                     pam_service: a passdb chain\")",
                );
            }
        }
        self.checkpassword = checkpassword;
        if reaching == 0 {
            d.find(
                "dovecot-no-passdb",
                "doveconf -n",
                "no passdb reaches apppw: neither apppw-checkpassword nor a PAM service with \
                 pam_apppw.so",
                "add the passdb of docs/dovecot.md (Dovecot 2.3: checkpassword or pam; 2.4: passdb pam)",
            );
        }
    }

    /// With the auth cache on, a cached `passdb pam` result must be keyed by service and
    /// client address.
    fn check_cache(&self, d: &mut Doctor, p: &Passdb<'_>, cache_on: bool) {
        if !cache_on {
            return;
        }
        let (key_vars, how) = if self.is_24() {
            let off = p.section.get("use_cache") == Some("no")
                || self.config.get("passdb_use_cache") == Some("no");
            if off {
                return;
            }
            // 2.4: the key is the user and the PAM service name, plus what the passdb's
            // fields use.
            let mut vars = template_variables(p.section.get("service_name").unwrap_or("dovecot"));
            for (_, v) in p.section.children.iter().flat_map(Section::all_settings) {
                vars.extend(template_variables(v));
            }
            (
                vars,
                "set use_cache = no in this passdb (the key cannot be given the client address otherwise)",
            )
        } else {
            let Some(key) = p
                .section
                .get("args")
                .unwrap_or("")
                .split_whitespace()
                .find_map(|a| a.strip_prefix("cache_key="))
            else {
                return; // 2.3 caches passdb pam only with a cache_key
            };
            (
                template_variables(key),
                "include the client address and the service: args = cache_key=%u%r%s %s",
            )
        };
        let missing: Vec<&str> = [("remote_ip", "client address"), ("protocol", "service")]
            .into_iter()
            .filter(|(v, _)| !key_vars.iter().any(|k| k == v))
            .map(|(_, what)| what)
            .collect();
        if !missing.is_empty() {
            d.find(
                "dovecot-cache-key",
                format!("doveconf -n: {}", p.describe()),
                format!(
                    "the auth cache is on (auth_cache_size) and this passdb's cache key lacks \
                     the {}: a normal password accepted on campus is served from the cache to \
                     the same user off campus",
                    missing.join(" and the ")
                ),
                how,
            );
        }
    }

    /// Trusted proxies: none may cover every address, none may be a network whose clients
    /// are off campus by the config (they could claim a campus address).
    pub(super) fn check_trusted_networks(&self, d: &mut Doctor, config: &Config) {
        for key in ["login_trusted_networks", "haproxy_trusted_networks"] {
            let Some(value) = self.config.get(key) else {
                continue;
            };
            for word in value.split([' ', ',']).filter(|w| !w.is_empty()) {
                let Ok(net) = word
                    .parse::<IpNet>()
                    .or_else(|_| word.parse::<std::net::IpAddr>().map(IpNet::from))
                else {
                    continue;
                };
                let net = apppw::network::canonical_net(net);
                if net.prefix_len() == 0 {
                    d.find(
                        "dovecot-trusted-everything",
                        format!("doveconf -n: {key}"),
                        format!(
                            "{key} contains {net}: every client may claim any address (IMAP \
                             ID x-originating-ip, XCLIENT, PROXY), a campus one included"
                        ),
                        format!("list only your proxies' addresses in {key}"),
                    );
                    continue;
                }
                if let Some(except) = config
                    .network
                    .except()
                    .iter()
                    .find(|e| e.contains(&net.network()) || net.contains(&e.network()))
                {
                    d.find(
                        "dovecot-trusted-except",
                        format!("doveconf -n: {key}"),
                        format!(
                            "{key} entry {net} overlaps the except network {except}: clients \
                             there (off campus by the config) may claim a campus address"
                        ),
                        format!("list only your proxies' addresses in {key}"),
                    );
                }
            }
        }
    }

    /// The user Dovecot runs `apppw-checkpassword` as, with the groups it gives that process
    /// (`service auth`: its user, primary group and `extra_groups`; supplementary groups of
    /// the user are dropped). `None` without a checkpassword passdb.
    pub(super) fn checkpassword_identity(&self, d: &mut Doctor) -> Option<Identity> {
        if !self.checkpassword {
            return None;
        }
        let auth = self
            .config
            .sections("service")
            .find(|s| s.name.as_deref() == Some("auth"));
        let setting = |key: &str| auth.and_then(|s| s.get(key)).filter(|v| !v.is_empty());
        let default_user = self
            .config
            .get("default_internal_user")
            .unwrap_or("dovecot");
        let user = match setting("user") {
            Some("$default_internal_user") | None => default_user,
            Some(u) => u,
        };
        let Some((uid, primary)) = as_user::user_ids(user) else {
            d.find(
                "dovecot-user",
                "doveconf -n: service auth",
                format!("Dovecot's auth user {user} does not exist"),
                "install Dovecot's package (it creates the user) or fix service auth { user }",
            );
            return None;
        };
        let gid = match setting("group") {
            Some(g) => as_user::group_id(g).unwrap_or(primary),
            None => primary,
        };
        let mut groups = vec![gid];
        for name in setting("extra_groups").unwrap_or("").split([' ', ',']) {
            if name.is_empty() {
                continue;
            }
            match as_user::group_id(name) {
                Some(g) if !groups.contains(&g) => groups.push(g),
                Some(_) => {}
                None => d.find(
                    "dovecot-group",
                    "doveconf -n: service auth",
                    format!("extra_groups names the group {name}, which does not exist"),
                    "create it (the package makes apppw) or fix extra_groups",
                ),
            }
        }
        Some(Identity {
            user: user.to_owned(),
            uid,
            gid,
            group_names: groups.iter().map(|g| as_user::group_name(*g)).collect(),
            groups,
            role: "as Dovecot runs apppw-checkpassword".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_and_settings() {
        let c = parse(
            "# 2.3.19.1 (9b53102964): /etc/dovecot/dovecot.conf\n\
             auth_cache_size = 10 M\n\
             passdb {\n  args = cache_key=%u%r%s %s\n  driver = pam\n}\n\
             service auth {\n  extra_groups = apppw\n  unix_listener /var/spool/postfix/private/auth {\n    mode = 0660\n  }\n}\n\
             passdb pam {\n  service_name = %{protocol}\n  fields {\n    x = %{remote_ip}\n  }\n}\n",
        );
        assert_eq!(c.get("auth_cache_size"), Some("10 M"));
        let passdbs: Vec<&Section> = c.sections("passdb").collect();
        assert_eq!(passdbs.len(), 2);
        assert_eq!(passdbs[0].get("driver"), Some("pam"));
        assert_eq!(passdbs[1].name.as_deref(), Some("pam"));
        assert_eq!(passdbs[1].children[0].kind, "fields");
        let auth = c.sections("service").next().unwrap();
        assert_eq!(
            auth.children[0].name.as_deref(),
            Some("/var/spool/postfix/private/auth")
        );
    }

    #[test]
    fn template_variables_in_both_syntaxes() {
        assert_eq!(
            template_variables("%u%r%s"),
            ["user", "remote_ip", "protocol"]
        );
        assert_eq!(template_variables("%Lu-%{rip}"), ["user", "remote_ip"]);
        assert_eq!(
            template_variables("%{user | lower}:%{protocol}:%{remote_ip}"),
            ["user", "protocol", "remote_ip"]
        );
        assert!(template_variables("dovecot").is_empty());
        assert_eq!(template_variables("100%%"), Vec::<String>::new());
    }
}
