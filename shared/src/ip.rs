//! Client IP addresses and their optional truncation for privacy.
//!
//! Owns the per-brand truncation rule (IPv4 to /24, IPv6 to /48). Does not
//! read headers: the edge takes the address from `CF-Connecting-IP`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

/// What a brand allows us to store of a player's IP address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IpStorage {
    /// Store the full address.
    #[default]
    Full,
    /// Store only the network: IPv4 /24, IPv6 /48.
    Truncated,
}

impl IpStorage {
    /// Applies the rule.
    pub fn apply(&self, ip: IpAddr) -> IpAddr {
        match self {
            IpStorage::Full => ip,
            IpStorage::Truncated => truncate(ip),
        }
    }
}

/// IPv4 to its /24, IPv6 to its /48 (the usual anonymisation prefixes).
pub fn truncate(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::V4(Ipv4Addr::new(a, b, c, 0))
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_keeps_the_network_only() {
        let v4: IpAddr = "203.0.113.77".parse().expect("ip");
        let v6: IpAddr = "2001:db8:abcd:12:1:2:3:4".parse().expect("ip");
        assert_eq!(IpStorage::Truncated.apply(v4).to_string(), "203.0.113.0");
        assert_eq!(
            IpStorage::Truncated.apply(v6).to_string(),
            "2001:db8:abcd::"
        );
        assert_eq!(IpStorage::Full.apply(v4), v4);
    }
}
