//! Properties of the shared parsers this backend relies on before anything is decided: the
//! configuration file and the app-password format. (Address parsing and the campus policy
//! have theirs in `shared/src/network.rs`.)
//!
//! More cases: `PROPTEST_CASES=100000 cargo test --release -p apppw-checkpassword`.

use apppw::Config;
use apppw::secret::AppPassword;
use proptest::collection::vec;
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

/// What `AppPassword::parse` must do, written independently: drop spaces and dashes; 24
/// ASCII letters remain, or it is not an app password.
fn model(input: &[u8]) -> Option<Vec<u8>> {
    let kept: Vec<u8> = input
        .iter()
        .copied()
        .filter(|&b| b != b' ' && b != b'-')
        .collect();
    (kept.len() == 24 && kept.iter().all(u8::is_ascii_alphabetic))
        .then(|| kept.to_ascii_lowercase())
}

/// Input near the boundary: 23–25 letters of either case with separators sprinkled in, and
/// sometimes one byte swapped for anything.
fn typed() -> impl Strategy<Value = Vec<u8>> {
    (
        vec(
            prop_oneof![8 => prop::char::range('a', 'z'), 4 => prop::char::range('A', 'Z')],
            23..26,
        ),
        vec((0usize..30, prop_oneof![Just(b' '), Just(b'-')]), 0..8),
        proptest::option::of((0usize..40, any::<u8>())),
    )
        .prop_map(|(letters, seps, swap)| {
            let mut v: Vec<u8> = letters.iter().map(|&c| c as u8).collect();
            for (at, sep) in seps {
                v.insert(at.min(v.len()), sep);
            }
            if let Some((at, b)) = swap {
                let at = at % v.len();
                v[at] = b;
            }
            v
        })
}

/// A /len IPv4 network in a small space (so that networks often nest), host bits cleared.
fn v4_net() -> impl Strategy<Value = (u32, u8)> {
    (
        0u32..4,
        0u32..4,
        0u32..4,
        prop::sample::select(vec![8u8, 15, 16, 23, 24, 25, 30, 32]),
    )
        .prop_map(|(b, c, d, len)| {
            let addr = (10 << 24) | (b << 16) | (c << 8) | (d << 6);
            (addr & mask(len), len)
        })
}

fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(len))
    }
}

fn inside(inner: (u32, u8), outer: (u32, u8)) -> bool {
    inner.1 >= outer.1 && inner.0 & mask(outer.1) == outer.0
}

/// A network as an admin may write it: CIDR, or the IPv4-mapped IPv6 form.
fn render((addr, len): (u32, u8), mapped: bool) -> String {
    let ip = Ipv4Addr::from(addr);
    if mapped {
        format!("\"::ffff:{ip}/{}\"", u32::from(len) + 96)
    } else {
        format!("\"{ip}/{len}\"")
    }
}

/// Lines an admin might write, well-formed or not, in any order.
fn toml_ish_line() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        "[0-9]{1,7}",
        "\"[ -~]{0,20}\"",
        Just("[]".to_owned()),
        vec(
            prop_oneof![
                (v4_net(), any::<bool>()).prop_map(|(n, m)| render(n, m)),
                Just("\"2001:db8::/48\"".to_owned()),
                Just("\"2001:db8:1::/64\"".to_owned()),
                Just("\"fe80::1%eth0\"".to_owned()),
                "\"[0-9./:a-f]{0,18}\"",
            ],
            0..4
        )
        .prop_map(|v| format!("[{}]", v.join(", "))),
        "\\PC{0,12}",
    ];
    let key = prop_oneof![
        Just("database"),
        Just("campus"),
        Just("except"),
        Just("pam_service"),
        Just("memory_kib"),
        Just("iterations"),
        Just("parallelism"),
        Just("max_failures_per_client"),
        Just("window_seconds"),
        Just("cooldown_seconds"),
        Just("bogus"),
    ];
    prop_oneof![
        3 => (key, value).prop_map(|(k, v)| format!("{k} = {v}")),
        1 => prop::sample::select(vec![
            "[network]", "[argon2]", "[lockout]", "[primary]", "[network", "[[network]]", "",
        ])
        .prop_map(str::to_owned),
        1 => "\\PC{0,30}",
    ]
}

fn parse(text: &str) -> Result<Config, apppw::config::ConfigError> {
    Config::parse(Path::new("/etc/apppw/apppw.toml"), text)
}

fn v4(ip: IpAddr) -> Option<u32> {
    match ip {
        IpAddr::V4(v4) => Some(u32::from(v4)),
        IpAddr::V6(_) => None,
    }
}

/// The invariant every loaded config keeps: each except network lies inside a campus
/// network, and its first and last addresses (also in their IPv4-mapped form) are off campus.
fn check_loaded(c: &Config) -> Result<(), TestCaseError> {
    for except in c.network.except() {
        let (first, last) = (except.network(), except.broadcast());
        let nested = c.network.campus().iter().any(|campus| {
            campus.prefix_len() <= except.prefix_len()
                && campus.contains(&first)
                && campus.contains(&last)
        });
        prop_assert!(nested, "except {except} is in no campus network");
        for ip in [first, last] {
            prop_assert!(
                !c.network.locate_ip(ip).is_campus(),
                "{ip} of except {except}"
            );
            if let Some(v4) = v4(ip) {
                let mapped = format!("::ffff:{}", Ipv4Addr::from(v4));
                prop_assert!(!c.network.locate(Some(&mapped)).is_campus(), "{mapped}");
            }
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn app_password_parse_accepts_exactly_24_letters_after_separators(
        input in prop_oneof![typed(), vec(any::<u8>(), 0..60)],
    ) {
        let parsed = AppPassword::parse(&input);
        let want = model(&input);
        prop_assert_eq!(parsed.as_ref().map(|p| p.as_bytes().to_vec()), want);
        if let Some(p) = parsed {
            prop_assert_eq!(p.tag().as_bytes(), &p.as_bytes()[..4]);
            // Printed and typed back, it is the same password.
            let again = AppPassword::parse(p.grouped().as_bytes()).unwrap();
            prop_assert_eq!(again.as_bytes(), p.as_bytes());
        }
    }

    #[test]
    fn config_text_never_panics_and_what_loads_is_consistent(
        lines in vec(toml_ish_line(), 0..12),
    ) {
        if let Ok(c) = parse(&lines.join("\n")) {
            check_loaded(&c)?;
        }
    }

    #[test]
    fn arbitrary_config_text_never_panics(text in "\\PC{0,300}") {
        if let Ok(c) = parse(&text) {
            check_loaded(&c)?;
        }
    }

    /// The except check against a model: a config loads exactly when every except network
    /// nests in a campus network, however the networks are written.
    #[test]
    fn except_must_nest_in_campus(
        campus in vec((v4_net(), any::<bool>()), 0..3),
        except in vec((v4_net(), any::<bool>()), 0..3),
    ) {
        let list = |nets: &[((u32, u8), bool)]| {
            nets.iter().map(|&(n, m)| render(n, m)).collect::<Vec<_>>().join(", ")
        };
        let text = format!("[network]\ncampus = [{}]\nexcept = [{}]\n", list(&campus), list(&except));
        let nests = except
            .iter()
            .all(|(e, _)| campus.iter().any(|(c, _)| inside(*e, *c)));
        match parse(&text) {
            Ok(c) => {
                prop_assert!(nests, "loaded:\n{text}");
                check_loaded(&c)?;
                // Campus addresses outside every except network are campus.
                for ((addr, len), _) in &campus {
                    let ip = IpAddr::V4(Ipv4Addr::from(*addr));
                    let excepted = except.iter().any(|(e, _)| inside((*addr, 32), *e));
                    prop_assert_eq!(c.network.locate_ip(ip).is_campus(), !excepted, "{}/{}", ip, len);
                }
            }
            Err(e) => prop_assert!(!nests, "refused {text}: {e}"),
        }
    }
}
