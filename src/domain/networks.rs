//! A user's allowed networks (SPEC §15): the addresses its logins may come
//! from. Stored normalised (`2001:DB8:0:0::/32` is `2001:db8::/32`, a bare
//! address is its /32 or /128), each network once, at most
//! [`MAX_NETWORKS`]; a prefix with host bits set (`10.1.2.3/8`) is refused
//! with the network it would mean named, since the operator may have meant
//! the host. None at all means anywhere.

use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

use crate::login::client::canonical;

/// The most networks one user may list.
pub const MAX_NETWORKS: usize = 64;

/// The networks a user's logins may come from; empty: anywhere.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct AllowedNetworks(Vec<IpNet>);

impl AllowedNetworks {
    /// Parses and normalises a list as an operator writes it.
    pub fn parse<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        if items.len() > MAX_NETWORKS {
            return Err(format!(
                "at most {MAX_NETWORKS} networks ({} given)",
                items.len()
            ));
        }
        let mut nets: Vec<IpNet> = Vec::with_capacity(items.len());
        for item in items {
            let net = parse_network(item.as_ref())?;
            if !nets.contains(&net) {
                nets.push(net);
            }
        }
        Ok(Self(nets))
    }

    /// True when no network is listed (logins from anywhere).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a login from `ip` is allowed (IPv4-mapped IPv6 is its IPv4
    /// address). A client with no address (a forwarded entry that is not
    /// one) is inside no network: allowed only when none is listed.
    pub fn allows(&self, ip: Option<IpAddr>) -> bool {
        if self.is_empty() {
            return true;
        }
        let Some(ip) = ip.map(canonical) else {
            return false;
        };
        self.0.iter().any(|n| n.contains(&ip))
    }
}

impl std::fmt::Display for AllowedNetworks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{n}")?;
        }
        Ok(())
    }
}

impl TryFrom<Vec<String>> for AllowedNetworks {
    type Error = String;

    fn try_from(items: Vec<String>) -> Result<Self, String> {
        Self::parse(&items)
    }
}

impl From<AllowedNetworks> for Vec<String> {
    fn from(n: AllowedNetworks) -> Self {
        n.0.iter().map(ToString::to_string).collect()
    }
}

/// One network: `a.b.c.d/n`, `v6/n`, or a bare address (its host network).
fn parse_network(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    let net = match text.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => match text.parse::<IpAddr>() {
            Ok(ip) => IpNet::from(ip),
            Err(_) => {
                return Err(format!(
                    "{text:?} is not a network (use CIDR such as 203.0.113.0/24 or 2001:db8::/32)"
                ));
            }
        },
    };
    if net.trunc() != net {
        return Err(format!(
            "{text} has host bits set: write {} for the network, or {}/{} for the one address",
            net.trunc(),
            net.addr(),
            net.max_prefix_len()
        ));
    }
    Ok(net)
}

#[cfg(test)]
mod tests {
    use super::{AllowedNetworks, MAX_NETWORKS};

    fn nets(items: &[&str]) -> Result<AllowedNetworks, String> {
        AllowedNetworks::parse(items)
    }

    #[test]
    fn networks_are_normalised_once_each() {
        let n = nets(&[
            "2001:DB8:0:0::/32",
            "10.0.0.0/8",
            " 192.0.2.7 ",
            "2001:db8::/32",
        ])
        .unwrap();
        assert_eq!(n.to_string(), "2001:db8::/32,10.0.0.0/8,192.0.2.7/32");
        let back: Vec<String> = n.clone().into();
        assert_eq!(back, ["2001:db8::/32", "10.0.0.0/8", "192.0.2.7/32"]);
        assert_eq!(AllowedNetworks::try_from(back).unwrap(), n);
        assert!(nets(&[]).unwrap().is_empty());
    }

    #[test]
    fn host_bits_bad_text_and_too_many_are_refused() {
        let e = nets(&["10.1.2.3/8"]).unwrap_err();
        assert!(e.contains("10.0.0.0/8") && e.contains("10.1.2.3/32"), "{e}");
        assert!(nets(&["10.0.0.0/33"]).is_err());
        assert!(
            nets(&["example.com"])
                .unwrap_err()
                .contains("not a network")
        );
        let many: Vec<String> = (0..=MAX_NETWORKS)
            .map(|i| format!("10.0.{i}.0/24"))
            .collect();
        assert!(
            AllowedNetworks::parse(&many)
                .unwrap_err()
                .contains("at most 64")
        );
        assert!(AllowedNetworks::parse(&many[..MAX_NETWORKS]).is_ok());
    }

    #[test]
    fn a_login_is_allowed_from_inside_a_listed_network_only() {
        let ip = |text: &str| Some(text.parse().unwrap());
        let anywhere = nets(&[]).unwrap();
        assert!(anywhere.allows(ip("198.51.100.1")));
        assert!(
            anywhere.allows(None),
            "no list: even a client with no address"
        );
        let n = nets(&["203.0.113.0/24", "2001:db8::/32"]).unwrap();
        assert!(n.allows(ip("203.0.113.255")));
        assert!(!n.allows(ip("203.0.114.0")));
        assert!(n.allows(ip("::ffff:203.0.113.9")), "IPv4-mapped");
        assert!(n.allows(ip("2001:db8:ffff::1")));
        assert!(!n.allows(ip("2001:db9::1")));
        assert!(!n.allows(None), "no address is in no network");
    }
}
