//! Who a request comes from, for throttling (SPEC §2, §5 "Client
//! addresses"): the TCP peer, or — when the peer is a trusted proxy — the
//! rightmost `X-Forwarded-For` entry that is not itself a trusted proxy
//! (entries left of it can be forged by the client). IPv4-mapped IPv6 is the
//! IPv4 address, also when matching trusted proxies; entries may carry a
//! port; IPv6 clients are one client per /64 (a /64 is what one subscriber
//! gets, so counting per /128 would give an attacker endless buckets); an
//! entry that still does not parse is a client of its own, named by its
//! text — never the proxy, whose bucket every partner behind it shares.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use ipnet::IpNet;

/// The longest unparsed `X-Forwarded-For` entry kept as a throttle key;
/// longer ones are cut (the table's memory stays bounded).
const MAX_UNPARSED_LEN: usize = 64;

/// The key a client's failed logins are counted under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ClientKey {
    /// An IPv4 client (IPv4-mapped IPv6 included).
    V4(Ipv4Addr),
    /// An IPv6 client's /64 network (the address with its last 64 bits zero).
    V6Net(Ipv6Addr),
    /// An `X-Forwarded-For` entry that is not an address, by its text.
    Unparsed(Box<str>),
}

impl ClientKey {
    /// The key for an address.
    pub fn from_ip(ip: IpAddr) -> Self {
        match canonical(ip) {
            IpAddr::V4(v4) => Self::V4(v4),
            IpAddr::V6(v6) => {
                Self::V6Net(Ipv6Addr::from_bits(v6.to_bits() & !u128::from(u64::MAX)))
            }
        }
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::V4(ip) => write!(f, "{ip}"),
            Self::V6Net(net) => write!(f, "{net}/64"),
            Self::Unparsed(text) => write!(f, "{text:?}"),
        }
    }
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as the IPv4 address it
/// carries; any other address as it is.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// Reads one `X-Forwarded-For` entry: an address, optionally with a port
/// (`a.b.c.d:port`, `[v6]:port`, `[v6]`), surrounding spaces allowed.
pub fn parse_forwarded(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sock) = entry.parse::<SocketAddr>() {
        return Some(sock.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|e| e.parse::<Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

/// Whether any of `nets` contains `ip` (canonicalised first).
pub fn is_trusted(trusted: &[IpNet], ip: IpAddr) -> bool {
    let ip = canonical(ip);
    trusted.iter().any(|n| n.contains(&ip))
}

/// True when `nets` trusts every address (`0.0.0.0/0` or `::/0`): then any
/// client can choose the address it is counted under.
pub fn trusts_everyone(trusted: &[IpNet]) -> bool {
    trusted.iter().any(|n| n.prefix_len() == 0)
}

/// Who a request comes from: its address (None for an `X-Forwarded-For`
/// entry that is not one), and the key its failures are counted under.
/// A user's allowed networks are checked against the same address the
/// throttle counts (SPEC §15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    ip: Option<IpAddr>,
    key: ClientKey,
}

impl Client {
    /// A client at `ip` (canonical: IPv4-mapped IPv6 is IPv4).
    pub fn from_ip(ip: IpAddr) -> Self {
        Self {
            ip: Some(canonical(ip)),
            key: ClientKey::from_ip(ip),
        }
    }

    /// Its address; None when the request named a client that is not one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }

    /// The key its failures are counted under.
    pub fn key(&self) -> &ClientKey {
        &self.key
    }
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ip {
            Some(ip) => write!(f, "{ip}"),
            None => write!(f, "{}", self.key),
        }
    }
}

/// The client a request comes from. `forwarded` holds the
/// `X-Forwarded-For` header values in the order they arrived.
pub fn client<'a>(
    peer: IpAddr,
    forwarded: impl DoubleEndedIterator<Item = &'a str>,
    trusted: &[IpNet],
) -> Client {
    let mut client = canonical(peer);
    if !is_trusted(trusted, client) {
        return Client::from_ip(client);
    }
    for value in forwarded.rev() {
        for entry in value.rsplit(',') {
            match parse_forwarded(entry) {
                Some(ip) if is_trusted(trusted, ip) => client = canonical(ip),
                Some(ip) => return Client::from_ip(ip),
                None => {
                    let text: String = entry.trim().chars().take(MAX_UNPARSED_LEN).collect();
                    return Client {
                        ip: None,
                        key: ClientKey::Unparsed(text.into()),
                    };
                }
            }
        }
    }
    Client::from_ip(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter()
            .map(|n| {
                n.parse()
                    .unwrap_or_else(|_| IpNet::from(n.parse::<IpAddr>().unwrap()))
            })
            .collect()
    }

    fn key(peer: &str, xff: &[&str], trusted: &[&str]) -> ClientKey {
        client(peer.parse().unwrap(), xff.iter().copied(), &nets(trusted))
            .key()
            .clone()
    }

    fn v4(ip: &str) -> ClientKey {
        ClientKey::V4(ip.parse().unwrap())
    }

    #[test]
    fn a_client_has_the_whole_address_its_key_counts() {
        let trusted = nets(&["10.0.0.1"]);
        let c = client(
            "10.0.0.1".parse().unwrap(),
            ["2001:db8::1:2"].into_iter(),
            &trusted,
        );
        assert_eq!(
            c.ip(),
            Some("2001:db8::1:2".parse().unwrap()),
            "not its /64"
        );
        assert_eq!(c.key(), &key("10.0.0.1", &["2001:db8::1:2"], &["10.0.0.1"]));
        assert_eq!(c.to_string(), "2001:db8::1:2");
        let c = client(
            "::ffff:192.0.2.1".parse().unwrap(),
            std::iter::empty(),
            &trusted,
        );
        assert_eq!(c.ip(), Some("192.0.2.1".parse().unwrap()), "canonical");
        let c = client(
            "10.0.0.1".parse().unwrap(),
            ["unknown"].into_iter(),
            &trusted,
        );
        assert_eq!(c.ip(), None, "an entry that is no address has none");
        assert_eq!(c.to_string(), "\"unknown\"");
    }

    #[test]
    fn untrusted_peers_are_the_client() {
        assert_eq!(
            key("203.0.113.9", &["198.51.100.1"], &[]),
            v4("203.0.113.9")
        );
        assert_eq!(
            key("203.0.113.9", &["198.51.100.1"], &["10.0.0.0/8"]),
            v4("203.0.113.9")
        );
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let t = ["127.0.0.1", "10.0.0.0/8"];
        assert_eq!(key("127.0.0.1", &["198.51.100.7"], &t), v4("198.51.100.7"));
        assert_eq!(
            key("127.0.0.1", &["6.6.6.6, 198.51.100.7, 10.1.2.3"], &t),
            v4("198.51.100.7")
        );
        assert_eq!(
            key("127.0.0.1", &["6.6.6.6", "198.51.100.7"], &t),
            v4("198.51.100.7"),
            "the last header is the nearest hop"
        );
        assert_eq!(
            key("127.0.0.1", &["10.9.9.9"], &t),
            v4("10.9.9.9"),
            "all hops trusted: the leftmost one"
        );
        assert_eq!(key("127.0.0.1", &[], &t), v4("127.0.0.1"));
    }

    #[test]
    fn entries_may_carry_ports_and_spaces() {
        let t = ["127.0.0.1"];
        assert_eq!(
            key("127.0.0.1", &[" 203.0.113.9:5555 "], &t),
            v4("203.0.113.9")
        );
        assert_eq!(
            key("127.0.0.1", &["198.51.100.7:777"], &t),
            v4("198.51.100.7")
        );
        assert_eq!(
            key("127.0.0.1", &["[2001:db8::1]:443"], &t),
            key("127.0.0.1", &["2001:db8::1"], &t)
        );
        assert_eq!(
            key("127.0.0.1", &["[2001:db8::1]"], &t),
            key("127.0.0.1", &["2001:db8::1"], &t)
        );
        assert_eq!(
            key("127.0.0.1", &["198.51.100.7, 127.0.0.1:80"], &t),
            v4("198.51.100.7"),
            "a trusted hop with a port is still trusted"
        );
    }

    #[test]
    fn unparsed_entries_are_their_own_client() {
        let t = ["127.0.0.1"];
        assert_eq!(
            key("127.0.0.1", &["unknown"], &t),
            ClientKey::Unparsed("unknown".into())
        );
        assert_eq!(
            key("127.0.0.1", &["1.2.3.4, _hidden "], &t),
            ClientKey::Unparsed("_hidden".into())
        );
        let long = "x".repeat(500);
        assert_eq!(
            key("127.0.0.1", &[&long], &t),
            ClientKey::Unparsed("x".repeat(MAX_UNPARSED_LEN).into())
        );
    }

    #[test]
    fn ipv4_mapped_peers_are_ipv4() {
        assert_eq!(key("::ffff:203.0.113.9", &[], &[]), v4("203.0.113.9"));
        assert_eq!(
            key("::ffff:127.0.0.1", &["198.51.100.7"], &["127.0.0.1"]),
            v4("198.51.100.7"),
            "a mapped peer matches an IPv4 trusted proxy"
        );
        assert_eq!(
            key("127.0.0.1", &["::ffff:198.51.100.7"], &["127.0.0.1"]),
            v4("198.51.100.7")
        );
        assert_eq!(
            key(
                "127.0.0.1",
                &["::ffff:10.0.0.1"],
                &["127.0.0.1", "10.0.0.0/8"]
            ),
            v4("10.0.0.1"),
            "a mapped hop matches an IPv4 trusted network"
        );
    }

    #[test]
    fn ipv6_clients_are_counted_per_64() {
        let a = key("2001:db8:1:2:aaaa::1", &[], &[]);
        assert_eq!(a, key("2001:db8:1:2:ffff:ffff:ffff:ffff", &[], &[]));
        assert_ne!(a, key("2001:db8:1:3::1", &[], &[]));
        assert_eq!(a, ClientKey::V6Net("2001:db8:1:2::".parse().unwrap()));
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn trusting_everyone_is_detected() {
        assert!(trusts_everyone(&nets(&["10.0.0.1/32", "0.0.0.0/0"])));
        assert!(trusts_everyone(&nets(&["::/0"])));
        assert!(!trusts_everyone(&nets(&["10.0.0.0/8", "::1/128"])));
    }
}
