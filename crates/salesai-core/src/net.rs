//! Client addresses behind reverse proxies: which connecting addresses are trusted proxies
//! (`SALESAI_TRUSTED_PROXIES`), and the client address they forward in `X-Forwarded-For`.
//!
//! Without a trusted proxy the connecting address is the client. Behind one, every request
//! arrives from the proxy, so anything keyed by address (the sign-in limiter) would treat the
//! whole company as one client; the proxy's `X-Forwarded-For` names the real one. The header is
//! believed only from a trusted proxy, and read from the right: each trusted hop appends the
//! address it saw, so the first address from the right that is not a trusted proxy is the
//! client (anything to its left was written by the client itself and may be forged).

use std::net::IpAddr;

/// An address range: `10.0.0.0/8`, `::1/128`, or one address (`192.0.2.7`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpRange {
    /// The range's first address (its bits past the prefix are zero).
    addr: IpAddr,
    /// How many leading bits every address in the range shares.
    prefix: u8,
}

impl IpRange {
    /// Parses `address` or `address/prefix`; the error says what is wrong.
    pub fn parse(raw: &str) -> Result<IpRange, String> {
        let raw = raw.trim();
        let (addr, prefix) = match raw.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (raw, None),
        };
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{raw:?} is not an IP address or range (like 10.0.0.0/8)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{raw:?} has a prefix that is not 0 to {max}"))?,
        };
        Ok(IpRange {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    /// Whether `ip` is in the range (an IPv4 address mapped into IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }

    /// Parses a comma-separated list (empty parts ignored).
    pub fn parse_list(raw: &str) -> Result<Vec<IpRange>, String> {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(IpRange::parse)
            .collect()
    }
}

impl std::fmt::Display for IpRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let keep = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            IpAddr::V4((bits & keep).into())
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let keep = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            IpAddr::V6((bits & keep).into())
        }
    }
}

/// The client's address: `peer` (the connecting address) unless it is a trusted proxy, then
/// the rightmost address in `forwarded_for` (every `X-Forwarded-For` value, in order) that is
/// not a trusted proxy — or the leftmost when all are. An unreadable entry stops the walk: the
/// client is the last address known good.
pub fn client_address(peer: IpAddr, forwarded_for: &[&str], trusted: &[IpRange]) -> IpAddr {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|r| r.contains(ip));
    if !is_trusted(peer) {
        return canonical(peer);
    }
    let mut client = canonical(peer);
    let hops = forwarded_for
        .iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect::<Vec<_>>();
    for hop in hops.iter().rev() {
        let Some(ip) = parse_hop(hop) else { break };
        client = ip;
        if !is_trusted(ip) {
            break;
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, possibly with a port (`192.0.2.1:443`,
/// `[2001:db8::1]:443`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(canonical(ip));
    }
    if let Ok(sock) = hop.parse::<std::net::SocketAddr>() {
        return Some(canonical(sock.ip()));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ranges_parse_and_contain() {
        let r = IpRange::parse("10.1.0.0/16").unwrap();
        assert!(r.contains(ip("10.1.200.3")) && !r.contains(ip("10.2.0.1")));
        assert!(r.contains(ip("::ffff:10.1.0.9")), "mapped IPv4");
        let one = IpRange::parse("192.0.2.7").unwrap();
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.8")));
        assert!(IpRange::parse("::1").unwrap().contains(ip("::1")));
        assert!(IpRange::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        for bad in ["", "10.0.0.0/33", "proxy", "10.0.0.0/x", "::1/129"] {
            assert!(IpRange::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            IpRange::parse_list("127.0.0.1, 10.0.0.0/8,").unwrap().len(),
            2
        );
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let trusted = IpRange::parse_list("10.0.0.0/8,127.0.0.1").unwrap();
        // No proxy: the header is the client's own words and is ignored.
        assert_eq!(
            client_address(ip("203.0.113.5"), &["1.2.3.4"], &trusted),
            ip("203.0.113.5")
        );
        // One proxy.
        assert_eq!(
            client_address(ip("127.0.0.1"), &["198.51.100.9"], &trusted),
            ip("198.51.100.9")
        );
        // A forged left part and two proxies: the address the first proxy saw.
        assert_eq!(
            client_address(
                ip("10.0.0.2"),
                &["6.6.6.6, 198.51.100.9", "10.0.0.1"],
                &trusted
            ),
            ip("198.51.100.9")
        );
        // Nothing forwarded: the proxy itself.
        assert_eq!(
            client_address(ip("127.0.0.1"), &[], &trusted),
            ip("127.0.0.1")
        );
        // Garbage stops the walk at the last good address.
        assert_eq!(
            client_address(ip("127.0.0.1"), &["198.51.100.9, garbage"], &trusted),
            ip("127.0.0.1")
        );
        assert_eq!(
            client_address(ip("127.0.0.1"), &["[2001:db8::1]:443"], &trusted),
            ip("2001:db8::1")
        );
    }
}
