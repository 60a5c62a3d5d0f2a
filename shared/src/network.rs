//! Where a client connects from: campus or off campus.
//!
//! An address is on campus when it lies inside a `campus` network and inside no `except`
//! network. Everything else — addresses outside campus, `except` sub-networks such as eduroam or
//! guest Wi-Fi, missing or empty addresses, host names, garbage — is off campus, where only app
//! passwords are accepted.
//!
//! Addresses are canonicalised before matching: IPv4-mapped IPv6 (`::ffff:192.0.2.5`) is the
//! IPv4 address, brackets (`[2001:db8::1]`) and zone suffixes (`fe80::1%eth0`) are removed.

use ipnet::{IpNet, Ipv4Net};
use std::fmt;
use std::net::IpAddr;

/// Parses a client address as given by PAM (`PAM_RHOST`) or Dovecot (`TCPREMOTEIP`).
///
/// Returns `None` for anything that is not a numeric address (host names, empty strings).
#[must_use]
pub fn parse_client_addr(raw: &str) -> Option<IpAddr> {
    let s = raw.trim();
    let s = s
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(s);
    // A zone only makes sense on IPv6; "192.0.2.1%eth0" is not an address.
    let s = match s.split_once('%') {
        Some((addr, zone)) if addr.contains(':') && !zone.is_empty() => addr,
        Some(_) => return None,
        None => s,
    };
    s.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

/// The key of a client in the failure counters (`[lockout] max_failures_per_client`): an
/// IPv4 address as it is, an IPv6 client by its /64, since one IPv6 host may use any address
/// of its /64 (privacy addresses, or rotation on purpose to dodge a per-address count);
/// `-` when there is no numeric address.
#[must_use]
pub fn counter_key(raw: Option<&str>) -> String {
    match raw.and_then(parse_client_addr) {
        Some(IpAddr::V4(ip)) => ip.to_string(),
        Some(IpAddr::V6(ip)) => prefix(IpAddr::V6(ip), 64),
        None => "-".to_owned(),
    }
}

/// The key of a client as a known device (smart lockout): its /24 (IPv4) or /64 (IPv6), so
/// that a phone keeps its standing when its address changes within its home network. `None`
/// without a numeric address.
#[must_use]
pub fn device_key(raw: Option<&str>) -> Option<String> {
    match raw.and_then(parse_client_addr)? {
        ip @ IpAddr::V4(_) => Some(prefix(ip, 24)),
        ip @ IpAddr::V6(_) => Some(prefix(ip, 64)),
    }
}

fn prefix(ip: IpAddr, len: u8) -> String {
    IpNet::new(ip, len).map_or_else(|_| ip.to_string(), |n| n.trunc().to_string())
}

/// Canonicalises a configured network: an IPv4-mapped IPv6 network becomes the IPv4 network.
#[must_use]
pub fn canonical_net(net: IpNet) -> IpNet {
    if let IpNet::V6(v6) = net {
        if v6.prefix_len() >= 96 {
            if let Some(v4) = v6.network().to_ipv4_mapped() {
                if let Ok(n) = Ipv4Net::new(v4, v6.prefix_len() - 96) {
                    return IpNet::V4(n);
                }
            }
        }
    }
    net.trunc()
}

/// The campus definition from `[network]`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NetworkPolicy {
    campus: Vec<IpNet>,
    except: Vec<IpNet>,
}

/// The answer to "where is this client?", with the rule that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// Inside `campus` network `.0`, in no `except` network.
    Campus(IpNet),
    /// Off campus, for the given reason.
    OffCampus(OffCampus),
}

/// Why an address is off campus.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffCampus {
    /// No address was given.
    Missing,
    /// Not a numeric IPv4/IPv6 address (e.g. a host name).
    Unparseable,
    /// In no campus network.
    Outside(IpAddr),
    /// In campus network `.1` but also in except network `.2`.
    Except(IpAddr, IpNet, IpNet),
}

impl Location {
    /// True for [`Location::Campus`].
    #[must_use]
    pub fn is_campus(&self) -> bool {
        matches!(self, Location::Campus(_))
    }
}

impl fmt::Display for Location {
    /// Two lines: `campus` / `off-campus`, then the rule.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Campus(net) => write!(f, "campus\nin campus network {net}"),
            Location::OffCampus(OffCampus::Missing) => {
                write!(f, "off-campus\nno client address given")
            }
            Location::OffCampus(OffCampus::Unparseable) => {
                write!(f, "off-campus\nnot a numeric IP address")
            }
            Location::OffCampus(OffCampus::Outside(ip)) => {
                write!(f, "off-campus\n{ip} is in no campus network")
            }
            Location::OffCampus(OffCampus::Except(ip, campus, except)) => write!(
                f,
                "off-campus\n{ip} is in campus network {campus} but also in except network {except}"
            ),
        }
    }
}

impl NetworkPolicy {
    /// Builds a policy; networks are canonicalised (see [`canonical_net`]).
    #[must_use]
    pub fn new(campus: Vec<IpNet>, except: Vec<IpNet>) -> Self {
        Self {
            campus: campus.into_iter().map(canonical_net).collect(),
            except: except.into_iter().map(canonical_net).collect(),
        }
    }

    /// The campus networks.
    #[must_use]
    pub fn campus(&self) -> &[IpNet] {
        &self.campus
    }

    /// The except networks.
    #[must_use]
    pub fn except(&self) -> &[IpNet] {
        &self.except
    }

    /// Classifies a raw client address (`None` = not given).
    #[must_use]
    pub fn locate(&self, raw: Option<&str>) -> Location {
        let Some(raw) = raw.filter(|s| !s.trim().is_empty()) else {
            return Location::OffCampus(OffCampus::Missing);
        };
        match parse_client_addr(raw) {
            Some(ip) => self.locate_ip(ip),
            None => Location::OffCampus(OffCampus::Unparseable),
        }
    }

    /// Classifies a parsed address.
    #[must_use]
    pub fn locate_ip(&self, ip: IpAddr) -> Location {
        let ip = ip.to_canonical();
        let Some(campus) = self.campus.iter().find(|n| n.contains(&ip)) else {
            return Location::OffCampus(OffCampus::Outside(ip));
        };
        if let Some(except) = self.except.iter().find(|n| n.contains(&ip)) {
            return Location::OffCampus(OffCampus::Except(ip, *campus, *except));
        }
        Location::Campus(*campus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counter_and_device_keys() {
        assert_eq!(counter_key(Some("203.0.113.9")), "203.0.113.9");
        assert_eq!(counter_key(Some("::ffff:203.0.113.9")), "203.0.113.9");
        assert_eq!(
            counter_key(Some("2001:db8:1:2:aaaa::1")),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            counter_key(Some("[2001:db8:1:2:ffff:1:2:3]")),
            counter_key(Some("2001:db8:1:2::9"))
        );
        assert_ne!(
            counter_key(Some("2001:db8:1:2::1")),
            counter_key(Some("2001:db8:1:3::1"))
        );
        assert_eq!(counter_key(None), "-");
        assert_eq!(counter_key(Some("host.example.org")), "-");
        assert_eq!(
            device_key(Some("203.0.113.9")).as_deref(),
            Some("203.0.113.0/24")
        );
        assert_eq!(
            device_key(Some("2001:db8:1:2::77")).as_deref(),
            Some("2001:db8:1:2::/64")
        );
        assert_eq!(device_key(Some("")), None);
    }
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn policy() -> NetworkPolicy {
        NetworkPolicy::new(
            vec![
                "192.0.2.0/24".parse().unwrap(),
                "2001:db8::/48".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
            ],
            vec![
                "192.0.2.128/25".parse().unwrap(),
                "10.99.0.0/16".parse().unwrap(),
                "2001:db8:0:ee::/64".parse().unwrap(),
            ],
        )
    }

    #[test]
    fn parses_the_forms_dovecot_and_pam_give() {
        let v4: IpAddr = "192.0.2.5".parse().unwrap();
        assert_eq!(parse_client_addr("192.0.2.5"), Some(v4));
        assert_eq!(parse_client_addr(" 192.0.2.5 "), Some(v4));
        assert_eq!(parse_client_addr("::ffff:192.0.2.5"), Some(v4));
        assert_eq!(parse_client_addr("[::ffff:192.0.2.5]"), Some(v4));
        let v6: IpAddr = "2001:db8::1".parse().unwrap();
        assert_eq!(parse_client_addr("[2001:db8::1]"), Some(v6));
        assert_eq!(
            parse_client_addr("fe80::1%eth0"),
            Some("fe80::1".parse().unwrap())
        );
        assert_eq!(
            parse_client_addr("[fe80::1%eth0]"),
            Some("fe80::1".parse().unwrap())
        );
        assert_eq!(parse_client_addr("192.0.2.5%eth0"), None);
        assert_eq!(parse_client_addr("fe80::1%"), None);
        assert_eq!(parse_client_addr("mail.example.org"), None);
        assert_eq!(parse_client_addr(""), None);
        assert_eq!(parse_client_addr("[]"), None);
        assert_eq!(parse_client_addr("192.0.2.5:143"), None);
    }

    #[test]
    fn decides_campus_except_and_outside() {
        let p = policy();
        assert!(p.locate(Some("192.0.2.5")).is_campus());
        assert!(p.locate(Some("::ffff:192.0.2.5")).is_campus());
        assert!(p.locate(Some("2001:db8::5")).is_campus());
        assert!(p.locate(Some("[2001:db8::5]")).is_campus());
        assert!(matches!(
            p.locate(Some("192.0.2.200")),
            Location::OffCampus(OffCampus::Except(..))
        ));
        assert!(matches!(
            p.locate(Some("2001:db8:0:ee::9")),
            Location::OffCampus(OffCampus::Except(..))
        ));
        assert!(matches!(
            p.locate(Some("203.0.113.9")),
            Location::OffCampus(OffCampus::Outside(_))
        ));
        assert_eq!(p.locate(None), Location::OffCampus(OffCampus::Missing));
        assert_eq!(p.locate(Some("")), Location::OffCampus(OffCampus::Missing));
        assert_eq!(
            p.locate(Some("campus-gw.example.org")),
            Location::OffCampus(OffCampus::Unparseable)
        );
    }

    #[test]
    fn mapped_networks_in_config_are_ipv4() {
        let p = NetworkPolicy::new(vec!["::ffff:198.51.100.0/120".parse().unwrap()], vec![]);
        assert!(p.locate(Some("198.51.100.7")).is_campus());
        assert!(!p.locate(Some("198.51.101.7")).is_campus());
    }

    #[test]
    fn explanation_names_the_rule() {
        let p = policy();
        let text = p.locate(Some("192.0.2.200")).to_string();
        assert!(text.starts_with("off-campus\n"), "{text}");
        assert!(text.contains("192.0.2.128/25"), "{text}");
        let text = p.locate(Some("192.0.2.1")).to_string();
        assert_eq!(text, "campus\nin campus network 192.0.2.0/24");
    }

    proptest! {
        #[test]
        fn every_except_address_is_off_campus(a: u8, b: u8, c: u8) {
            let p = policy();
            let ip = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 128 | (a & 0x7f)));
            prop_assert!(!p.locate_ip(ip).is_campus());
            let ip = IpAddr::V4(Ipv4Addr::new(10, 99, b, c));
            prop_assert!(!p.locate_ip(ip).is_campus());
        }

        #[test]
        fn ipv4_and_its_mapped_form_decide_the_same(raw: u32) {
            let p = policy();
            let v4 = Ipv4Addr::from(raw);
            let mapped = v4.to_ipv6_mapped();
            prop_assert_eq!(p.locate(Some(&v4.to_string())), p.locate(Some(&mapped.to_string())));
            prop_assert_eq!(p.locate(Some(&v4.to_string())), p.locate(Some(&format!("[{mapped}]"))));
        }

        #[test]
        fn bracketed_and_zoned_ipv6_decide_like_the_bare_address(raw: u128, zone in "[a-z0-9]{1,8}") {
            let p = policy();
            let v6 = Ipv6Addr::from(raw);
            let bare = p.locate(Some(&v6.to_string()));
            prop_assert_eq!(&bare, &p.locate(Some(&format!("[{v6}]"))));
            prop_assert_eq!(&bare, &p.locate(Some(&format!("{v6}%{zone}"))));
        }

        #[test]
        fn host_names_are_off_campus(name in "[a-z][a-z0-9-]{0,20}(\\.[a-z]{2,6}){0,3}") {
            prop_assert!(!policy().locate(Some(&name)).is_campus());
        }

        #[test]
        fn arbitrary_strings_never_panic(s in ".{0,80}") {
            let _ = policy().locate(Some(&s));
        }
    }
}
