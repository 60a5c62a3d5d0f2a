//! The adapter against a PAM double and a real (temporary) database.

use super::*;
use apppw::hash::Params;
use apppw::store::{NewCredential, Store};
use std::ffi::CString;

const FAST: Params = Params {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};
const CAMPUS: &str = "192.0.2.10";
const EDUROAM: &str = "192.0.2.200";
const OFF: &str = "203.0.113.9";
const NORMAL: &str = "Winter2026!";

/// A PAM handle that answers from fields and records what the module did.
struct FakePam {
    user: Result<String, i32>,
    password: Result<String, i32>,
    rhost: Option<String>,
    service: Option<String>,
    prompts: usize,
    lines: Vec<String>,
    warnings: Vec<String>,
    /// `PAM_USER` as set by the module.
    set_user: Option<String>,
}

impl FakePam {
    fn new(user: &str, password: &str, rhost: Option<&str>) -> FakePam {
        FakePam {
            user: Ok(user.into()),
            password: Ok(password.into()),
            rhost: rhost.map(Into::into),
            service: Some("imap".into()),
            prompts: 0,
            lines: Vec::new(),
            warnings: Vec::new(),
            set_user: None,
        }
    }

    fn everything_logged(&self) -> String {
        format!("{:?} {:?}", self.lines, self.warnings)
    }
}

/// The code a double answers with (`PamResultCode` is neither `Clone` nor `Copy`).
fn code(raw: i32) -> PamResultCode {
    PamResultCode::try_from(raw).unwrap()
}

impl Pam for FakePam {
    fn user(&mut self) -> Result<String, PamResultCode> {
        self.user.clone().map_err(code)
    }
    fn authtok(&mut self) -> Result<Zeroizing<Vec<u8>>, PamResultCode> {
        self.prompts += 1;
        match &self.password {
            Ok(p) => Ok(Zeroizing::new(p.as_bytes().to_vec())),
            Err(raw) => Err(code(*raw)),
        }
    }
    fn rhost(&self) -> Option<String> {
        self.rhost.clone()
    }
    fn service(&self) -> Option<String> {
        self.service.clone()
    }
    fn set_user(&mut self, user: &str) -> Result<(), PamResultCode> {
        self.set_user = Some(user.to_owned());
        Ok(())
    }
    fn log(&mut self, prefix: &str, event: &Event<'_>) {
        self.lines.push(format!("{prefix}: {}", event.line()));
    }
    fn warn(&mut self, prefix: &str, message: &str) {
        self.warnings.push(format!("{prefix}: {message}"));
    }
}

/// A config and database in a temp directory.
struct World {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl World {
    fn new() -> World {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("apppw.toml");
        // The admission gate in the temp directory: these tests go through it as logins do.
        let gate = dir.path().join("argon2-gate");
        std::fs::write(
            &config,
            format!(
                "database = \"apppw.db\"\n[network]\ncampus = [\"192.0.2.0/24\"]\n\
                 except = [\"192.0.2.128/25\"]\n[argon2]\nmemory_kib = 1024\niterations = 1\n\
                 gate_file = {:?}\n",
                gate.display().to_string()
            ),
        )
        .unwrap();
        World { dir, config }
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("apppw.db")
    }

    /// Stores a new app password and returns it grouped, as the CLI prints it.
    fn add(
        &self,
        user: &str,
        label: &str,
        expires_at: Option<i64>,
        services: Option<&[String]>,
    ) -> String {
        let mut store = Store::open_for_admin(&self.db()).unwrap();
        let pw = apppw::secret::generate().unwrap();
        let hash = Argon2Kdf::new().hash_new(FAST, pw.as_bytes()).unwrap();
        store
            .create(&NewCredential {
                user,
                label,
                tag: pw.tag(),
                hash: &hash,
                created_at: 1,
                expires_at,
                services,
            })
            .unwrap();
        pw.grouped().to_string()
    }

    fn arg(&self) -> CString {
        CString::new(format!("config={}", self.config.display())).unwrap()
    }

    fn run(&self, pam: &mut FakePam) -> PamResultCode {
        let arg = self.arg();
        authenticate(pam, &[arg.as_c_str()])
    }
}

#[test]
fn app_password_is_accepted_from_anywhere_and_logged_without_the_password() {
    let w = World::new();
    let pw = w.add("alice", "phone", None, None);
    for rhost in [
        Some(OFF),
        Some(CAMPUS),
        Some(EDUROAM),
        None,
        Some("mail.example.org"),
    ] {
        let mut pam = FakePam::new("alice", &pw, rhost);
        assert_eq!(w.run(&mut pam), PamResultCode::PAM_SUCCESS, "{rhost:?}");
        assert_eq!(pam.prompts, 1);
        assert_eq!(pam.lines.len(), 1, "one line per decision");
        let line = &pam.lines[0];
        assert!(
            line.starts_with("pam_apppw(imap:auth): service=imap user=alice"),
            "{line}"
        );
        assert!(
            line.contains("result=accepted reason=app-password label=phone"),
            "{line}"
        );
        let logged = pam.everything_logged();
        assert!(
            !logged.contains(&pw) && !logged.contains(&pw.replace(' ', "")),
            "{logged}"
        );
    }
}

#[test]
fn normal_password_continues_on_campus_only() {
    let w = World::new();
    w.add("alice", "phone", None, None);
    let mut pam = FakePam::new("alice", NORMAL, Some(CAMPUS));
    assert_eq!(w.run(&mut pam), PamResultCode::PAM_IGNORE);
    assert!(
        pam.lines[0].contains("result=continue reason=primary-on-campus"),
        "{:?}",
        pam.lines
    );
    for rhost in [
        Some(EDUROAM),
        Some(OFF),
        None,
        Some(""),
        Some("campus-host.example.org"),
    ] {
        let mut pam = FakePam::new("alice", NORMAL, rhost);
        assert_eq!(w.run(&mut pam), PamResultCode::PAM_AUTH_ERR, "{rhost:?}");
        assert!(pam.lines[0].contains("result=refused reason=primary-off-campus-refused"));
        assert!(!pam.everything_logged().contains(NORMAL));
    }
}

#[test]
fn report_mode_ignores_off_campus_normal_passwords_and_says_would_refuse() {
    let w = World::new();
    let pw = w.add("alice", "phone", None, None);
    let text = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(
        &w.config,
        format!("{text}[enforcement]\nmode = \"report\"\n"),
    )
    .unwrap();
    let mut pam = FakePam::new("alice", NORMAL, Some(OFF));
    assert_eq!(w.run(&mut pam), PamResultCode::PAM_IGNORE);
    assert_eq!(pam.lines.len(), 1, "{:?}", pam.lines);
    assert!(
        pam.lines[0].ends_with(&format!(
            "rhost={OFF} result=would-refuse reason=primary-off-campus-refused detail=report-mode"
        )),
        "{:?}",
        pam.lines
    );
    assert!(pam.warnings.is_empty(), "{:?}", pam.warnings);
    let mut pam = FakePam::new("alice", &pw, Some(OFF));
    assert_eq!(w.run(&mut pam), PamResultCode::PAM_SUCCESS);
}

#[test]
fn wrong_expired_and_restricted_app_passwords() {
    let w = World::new();
    let good = w.add("alice", "phone", None, None);
    let expired = w.add("alice", "old", Some(1_000), None);
    let smtp_only = w.add("alice", "printer", None, Some(&["smtp".to_owned()]));

    let wrong = format!("{}zzzz zzzz zzzz zzzz zzzz", &good[..5]);
    let mut pam = FakePam::new("alice", &wrong, Some(OFF));
    assert_eq!(w.run(&mut pam), PamResultCode::PAM_AUTH_ERR);
    assert!(pam.lines[0].contains("reason=no-match"));

    let mut pam = FakePam::new("alice", &expired, Some(OFF));
    assert_eq!(w.run(&mut pam), PamResultCode::PAM_AUTH_ERR);
    assert!(pam.lines[0].contains("reason=expired"));

    let mut pam = FakePam::new("alice", &smtp_only, Some(OFF));
    assert_eq!(w.run(&mut pam), PamResultCode::PAM_AUTH_ERR);
    assert!(pam.lines[0].contains("reason=service-not-allowed"));
    let mut pam = FakePam::new("alice", &smtp_only, Some(OFF));
    pam.service = Some("smtp".into());
    assert_eq!(w.run(&mut pam), PamResultCode::PAM_SUCCESS);
    assert!(pam.lines[0].starts_with("pam_apppw(smtp:auth): "));

    // On campus an app password that does not decide falls through to the normal password,
    // and the line says why.
    let mut pam = FakePam::new("alice", &expired, Some(CAMPUS));
    assert_eq!(w.run(&mut pam), PamResultCode::PAM_IGNORE);
    assert!(pam.lines[0].contains("result=continue reason=primary-on-campus detail=expired"));

    // Someone else's password is not a match.
    let mut pam = FakePam::new("bob", &good, Some(OFF));
    assert_eq!(w.run(&mut pam), PamResultCode::PAM_AUTH_ERR);
}

#[test]
fn missing_or_corrupt_database() {
    let w = World::new();
    let pw = "abcd efgh ijkl mnop qrst uvwx";
    let mut pam = FakePam::new("alice", pw, Some(OFF));
    assert_eq!(w.run(&mut pam), PamResultCode::PAM_AUTHINFO_UNAVAIL);
    assert!(pam.lines[0].contains("result=tempfail reason=store-unavailable"));
    assert!(
        pam.warnings.iter().any(|m| m.contains("does not exist")),
        "{:?}",
        pam.warnings
    );

    let mut pam = FakePam::new("alice", pw, Some(CAMPUS));
    assert_eq!(w.run(&mut pam), PamResultCode::PAM_IGNORE);

    std::fs::write(
        w.db(),
        b"this is not a database, just text long enough to look like one",
    )
    .unwrap();
    let mut pam = FakePam::new("alice", pw, Some(OFF));
    assert_eq!(w.run(&mut pam), PamResultCode::PAM_AUTHINFO_UNAVAIL);
}

#[test]
fn bad_arguments_and_configs_end_the_stack_without_asking() {
    let w = World::new();
    let cases: Vec<Vec<CString>> = vec![
        vec![w.arg(), CString::new("debug").unwrap()],
        vec![CString::new("use_first_pass").unwrap()],
        vec![CString::new("conifg=/etc/apppw/apppw.toml").unwrap()],
        vec![CString::new("config=").unwrap()],
        vec![w.arg(), w.arg()],
        vec![CString::new("config=/nonexistent/apppw.toml").unwrap()],
    ];
    for args in &cases {
        let args: Vec<&CStr> = args.iter().map(CString::as_c_str).collect();
        // On campus the normal password would otherwise be tried: it must not be.
        let mut pam = FakePam::new("alice", NORMAL, Some(CAMPUS));
        assert_eq!(
            authenticate(&mut pam, &args),
            PamResultCode::PAM_SERVICE_ERR,
            "{args:?}"
        );
        assert_eq!(pam.prompts, 0, "{args:?}");
        assert!(pam.lines.is_empty());
        assert_eq!(pam.warnings.len(), 1, "{args:?}");
    }

    std::fs::write(&w.config, "[network]\ncampus = [\"192.0.2.0/33\"]\n").unwrap();
    let mut pam = FakePam::new("alice", NORMAL, Some(CAMPUS));
    assert_eq!(w.run(&mut pam), PamResultCode::PAM_SERVICE_ERR);
    assert!(pam.warnings[0].contains("line 2"), "{:?}", pam.warnings);
    assert!(pam.warnings[0].starts_with("pam_apppw(imap:auth): "));
}

/// An app password belongs to the canonical name: typed as `ALICE` it is accepted, and the
/// application continues as `alice`. With `case_sensitive = true`, `ALICE` is someone else.
#[test]
fn user_names_are_canonical_and_pam_user_follows() {
    let w = World::new();
    let pw = w.add("alice", "phone", None, None);
    let mut pam = FakePam::new("ALICE", &pw, Some(OFF));
    assert_eq!(w.run(&mut pam), PamResultCode::PAM_SUCCESS);
    assert_eq!(pam.set_user.as_deref(), Some("alice"));
    let mut pam = FakePam::new("alice", &pw, Some(OFF));
    assert_eq!(w.run(&mut pam), PamResultCode::PAM_SUCCESS);
    assert_eq!(pam.set_user, None, "already canonical: left alone");
    // A refusal never renames.
    let mut pam = FakePam::new("ALICE", NORMAL, Some(CAMPUS));
    assert_eq!(w.run(&mut pam), PamResultCode::PAM_IGNORE);
    assert_eq!(pam.set_user, None);

    let text = std::fs::read_to_string(&w.config).unwrap();
    std::fs::write(&w.config, format!("{text}[users]\ncase_sensitive = true\n")).unwrap();
    let mut pam = FakePam::new("ALICE", &pw, Some(OFF));
    assert_eq!(w.run(&mut pam), PamResultCode::PAM_AUTH_ERR);
}

/// A config or database someone else may change ends the stack, on campus too.
#[test]
fn untrusted_files_end_the_stack() {
    use std::os::unix::fs::PermissionsExt;
    let w = World::new();
    let pw = w.add("alice", "phone", None, None);
    let set = |p: &std::path::Path, m: u32| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap();
    };
    set(&w.db(), 0o666);
    for (password, rhost) in [(pw.as_str(), OFF), (pw.as_str(), CAMPUS)] {
        let mut pam = FakePam::new("alice", password, Some(rhost));
        assert_eq!(w.run(&mut pam), PamResultCode::PAM_SERVICE_ERR, "{rhost}");
        assert!(
            pam.lines[0].contains("result=error reason=untrusted-file"),
            "{:?}",
            pam.lines
        );
        assert!(
            pam.warnings
                .iter()
                .any(|m| m.contains("apppw.db") && m.contains("chmod o-w")),
            "{:?}",
            pam.warnings
        );
    }
    set(&w.db(), 0o660);
    set(&w.config, 0o666);
    let mut pam = FakePam::new("alice", &pw, Some(OFF));
    assert_eq!(w.run(&mut pam), PamResultCode::PAM_SERVICE_ERR);
    assert_eq!(pam.prompts, 0);
    assert!(pam.warnings[0].contains("apppw.toml"), "{:?}", pam.warnings);
}

#[test]
fn a_failed_argon2_self_test_is_a_service_error_for_every_password() {
    let w = World::new();
    let pw = w.add("alice", "phone", None, None);
    // In this test's thread only, the known-answer test now expects a wrong tag.
    apppw::hash::seam::break_self_test_in_this_thread();
    for (user, password) in [("alice", pw.as_str()), ("nosuchuser", pw.as_str())] {
        for rhost in [OFF, CAMPUS] {
            let mut pam = FakePam::new(user, password, Some(rhost));
            assert_eq!(
                w.run(&mut pam),
                PamResultCode::PAM_SERVICE_ERR,
                "{user} from {rhost}"
            );
            assert!(pam.lines.is_empty(), "{:?}", pam.lines);
            assert_eq!(pam.warnings.len(), 1, "{:?}", pam.warnings);
            assert!(
                pam.warnings[0].contains("Argon2id self-test failed"),
                "{:?}",
                pam.warnings
            );
            assert!(!pam.everything_logged().contains(password));
        }
    }
}

#[test]
fn conversation_failures_never_succeed() {
    let w = World::new();
    let mut pam = FakePam::new("alice", NORMAL, Some(CAMPUS));
    pam.password = Err(PamResultCode::PAM_CONV_ERR as i32);
    assert_eq!(w.run(&mut pam), PamResultCode::PAM_CONV_ERR);

    let mut pam = FakePam::new("alice", NORMAL, Some(CAMPUS));
    pam.user = Err(PamResultCode::PAM_CONV_AGAIN as i32);
    assert_eq!(w.run(&mut pam), PamResultCode::PAM_INCOMPLETE);
    assert_eq!(pam.prompts, 0);

    // Even a PAM layer that misreports an error as success or ignore does not open the door.
    for bogus in [
        PamResultCode::PAM_SUCCESS as i32,
        PamResultCode::PAM_IGNORE as i32,
    ] {
        let mut pam = FakePam::new("alice", NORMAL, Some(CAMPUS));
        pam.password = Err(bogus);
        assert_eq!(w.run(&mut pam), PamResultCode::PAM_AUTH_ERR);
    }
}

#[test]
fn bad_input_is_refused_even_on_campus() {
    let w = World::new();
    let long = "a".repeat(1025);
    for (user, password) in [
        ("alice", long.as_str()),
        ("alice", "abc\ndef"),
        ("", NORMAL),
    ] {
        let mut pam = FakePam::new(user, password, Some(CAMPUS));
        assert_eq!(w.run(&mut pam), PamResultCode::PAM_AUTH_ERR, "{user:?}");
    }
}

#[test]
fn only_accepted_is_success() {
    assert_eq!(
        pam_code(&Decision::Accepted {
            id: 1,
            label: "x".into()
        }),
        PamResultCode::PAM_SUCCESS
    );
    assert_eq!(
        pam_code(&Decision::TryPrimary(Reason::NoMatch)),
        PamResultCode::PAM_IGNORE
    );
    assert_eq!(
        pam_code(&Decision::Refused(Reason::NoMatch)),
        PamResultCode::PAM_AUTH_ERR
    );
    assert_eq!(
        pam_code(&Decision::Unavailable("x".into())),
        PamResultCode::PAM_AUTHINFO_UNAVAIL
    );
    assert_eq!(
        pam_code(&Decision::PassedOn {
            would_refuse: Reason::NotAppPassword,
            because: apppw::Relaxed::ReportMode
        }),
        PamResultCode::PAM_IGNORE
    );
}

/// Module arguments over generated input. More cases:
/// `PROPTEST_CASES=100000 cargo test --release -p pam_apppw`.
mod properties {
    use super::*;
    use proptest::collection::vec;
    use proptest::prelude::*;

    /// Arguments as a PAM configuration line may carry them (never a NUL: they are C strings).
    fn argument() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(b"config=/nonexistent/apppw.toml".to_vec()),
            Just(b"config=".to_vec()),
            Just(b"conifg=/etc/apppw/apppw.toml".to_vec()),
            Just(b"debug".to_vec()),
            "(config|CONFIG|Config| config)=?[ -~]{0,20}".prop_map(String::into_bytes),
            vec(1u8..=255, 0..40),
        ]
    }

    proptest! {
        /// Exactly zero arguments, or one `config=FILE` with a non-empty FILE, are accepted;
        /// FILE is taken byte for byte. Refusals name the argument on one line.
        #[test]
        fn only_a_single_config_file_argument_is_accepted(args in vec(argument(), 0..4)) {
            let owned: Vec<CString> = args.iter().map(|a| CString::new(a.clone()).unwrap()).collect();
            let borrowed: Vec<&CStr> = owned.iter().map(CString::as_c_str).collect();
            match config_argument(&borrowed) {
                Ok(None) => prop_assert!(args.is_empty()),
                Ok(Some(path)) => {
                    prop_assert_eq!(args.len(), 1);
                    let file = args[0].strip_prefix(b"config=");
                    prop_assert!(file.is_some_and(|f| !f.is_empty()));
                    prop_assert_eq!(path.as_os_str().as_bytes(), file.unwrap_or_default());
                }
                Err(message) => {
                    let valid = args.len() == 1
                        && args[0].strip_prefix(b"config=").is_some_and(|f| !f.is_empty());
                    prop_assert!(!valid && !args.is_empty());
                    prop_assert!(!message.chars().any(char::is_control), "{message:?}");
                }
            }
        }

        /// A bad argument ends the stack before the password is asked for; no argument list
        /// makes a normal password a success.
        #[test]
        fn bad_arguments_end_the_stack_without_asking(args in vec(argument(), 1..4)) {
            let owned: Vec<CString> = args.iter().map(|a| CString::new(a.clone()).unwrap()).collect();
            let borrowed: Vec<&CStr> = owned.iter().map(CString::as_c_str).collect();
            let mut pam = FakePam::new("alice", NORMAL, Some(CAMPUS));
            let code = authenticate(&mut pam, &borrowed);
            prop_assert!(code != PamResultCode::PAM_SUCCESS);
            if config_argument(&borrowed).is_err() {
                prop_assert_eq!(code, PamResultCode::PAM_SERVICE_ERR);
                prop_assert_eq!(pam.prompts, 0);
            }
        }
    }
}
