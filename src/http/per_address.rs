//! The per-address connection cap (SPEC §5 "Connections"): one address —
//! an IPv4 address or an IPv6 /64, as the throttle counts clients — may
//! hold at most `cap` connections on a listener at once, so a flood of idle
//! connections from one place can never take every slot of the listener
//! and keep other clients waiting. Peers in `exempt` (the partner
//! listener's trusted proxies, which carry many clients each) are not
//! capped. The table holds an entry per address with a connection open,
//! and no more.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use ipnet::IpNet;
use parking_lot::Mutex;

use crate::login::client::{self, ClientKey};

/// Open connections per address of one listener.
#[derive(Debug)]
pub struct PerAddress {
    cap: usize,
    exempt: Arc<[IpNet]>,
    open: Arc<Mutex<HashMap<ClientKey, usize>>>,
}

/// One connection counted against its address; dropping it (when the
/// connection ends) gives the place back.
#[derive(Debug)]
pub struct AddressSlot {
    key: Option<ClientKey>,
    open: Arc<Mutex<HashMap<ClientKey, usize>>>,
}

impl PerAddress {
    /// At most `cap` connections per address, `exempt` peers uncapped.
    pub fn new(cap: usize, exempt: Arc<[IpNet]>) -> Self {
        Self {
            cap,
            exempt,
            open: Arc::default(),
        }
    }

    /// A place for one more connection from `peer`, or None when the
    /// address holds `cap` already (close the new connection).
    pub fn take(&self, peer: IpAddr) -> Option<AddressSlot> {
        if client::is_trusted(&self.exempt, peer) {
            return Some(AddressSlot {
                key: None,
                open: self.open.clone(),
            });
        }
        let key = ClientKey::from_ip(peer);
        let mut open = self.open.lock();
        let count = open.entry(key.clone()).or_insert(0);
        if *count >= self.cap {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            key: Some(key),
            open: self.open.clone(),
        })
    }

    /// Addresses with a connection open (for tests).
    pub fn addresses(&self) -> usize {
        self.open.lock().len()
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let Some(key) = self.key.take() else {
            return;
        };
        let mut open = self.open.lock();
        if let Some(count) = open.get_mut(&key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn one_address_holds_at_most_the_cap() {
        let p = PerAddress::new(2, Arc::from([]));
        let a = p.take(ip("203.0.113.1")).unwrap();
        let b = p.take(ip("203.0.113.1")).unwrap();
        assert!(p.take(ip("203.0.113.1")).is_none(), "the third is refused");
        assert!(
            p.take(ip("::ffff:203.0.113.1")).is_none(),
            "mapped is the same"
        );
        let other = p.take(ip("203.0.113.2"));
        assert!(other.is_some(), "another address is not affected");
        drop(a);
        let c = p.take(ip("203.0.113.1"));
        assert!(c.is_some(), "a place comes back when a connection ends");
        drop((b, c, other));
        assert_eq!(p.addresses(), 0, "nothing kept for closed connections");
    }

    #[test]
    fn ipv6_counts_per_64_and_proxies_are_exempt() {
        let p = PerAddress::new(1, Arc::from(["10.0.0.0/8".parse::<IpNet>().unwrap()]));
        let _a = p.take(ip("2001:db8:1:2::1")).unwrap();
        assert!(p.take(ip("2001:db8:1:2::ffff")).is_none());
        assert!(p.take(ip("2001:db8:1:3::1")).is_some());
        let proxied: Vec<_> = (0..5).map(|_| p.take(ip("10.1.2.3"))).collect();
        assert!(proxied.iter().all(Option::is_some));
        assert_eq!(p.addresses(), 1, "exempt peers take no entry");
        drop(proxied);
        assert_eq!(p.addresses(), 1);
    }
}
