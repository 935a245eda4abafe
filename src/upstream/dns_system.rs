//! The system's resolver settings, as c-ares (Envoy's default resolver) reads
//! them: the nameservers, search domains and `ndots` of `/etc/resolv.conf`, the
//! names of `/etc/hosts` (looked up before DNS), the special `localhost` names
//! (RFC 6761: answered locally, never asked of a nameserver), and which address
//! families have a non-loopback interface (for `filter_unroutable_families`).
//! Both files are read at each resolution, so edits to them apply at the next.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The port nameservers listen on.
pub const DNS_PORT: u16 = 53;
/// c-ares's nameserver when resolv.conf names none.
pub const DEFAULT_NAMESERVER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DNS_PORT);
/// resolv.conf's `ndots` when it sets none; c-ares caps it at 15.
const DEFAULT_NDOTS: usize = 1;
const MAX_NDOTS: usize = 15;
/// Files larger than this are read no further (a hosts file is a few lines).
const MAX_FILE_BYTES: u64 = 1 << 20;

/// What `/etc/resolv.conf` says.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ResolvConf {
    /// In file order; empty when it names none.
    pub nameservers: Vec<SocketAddr>,
    pub search: Vec<String>,
    pub ndots: usize,
}

impl ResolvConf {
    /// The system's, or an empty one when the file cannot be read; as in c-ares
    /// (and libc), the `LOCALDOMAIN` environment variable replaces its search
    /// domains and `RES_OPTIONS` adds to its options.
    pub fn system() -> ResolvConf {
        let mut text = read_small("/etc/resolv.conf");
        if let Ok(domains) = std::env::var("LOCALDOMAIN") {
            text.push_str(&format!("\nsearch {domains}\n"));
        }
        if let Ok(options) = std::env::var("RES_OPTIONS") {
            text.push_str(&format!("\noptions {options}\n"));
        }
        ResolvConf::parse(&text)
    }

    /// Reads resolv.conf's `nameserver`, `search`, `domain` and `options ndots:`
    /// lines; the last `search` or `domain` line wins, as in libc and c-ares.
    pub fn parse(text: &str) -> ResolvConf {
        let mut conf = ResolvConf { ndots: DEFAULT_NDOTS, ..ResolvConf::default() };
        for line in text.lines() {
            let line = line.split(['#', ';']).next().unwrap_or("");
            let mut words = line.split_whitespace();
            match words.next() {
                Some("nameserver") => {
                    // An IPv6 address may carry a zone (`fe80::1%eth0`), which is dropped.
                    let ip = words.next().map(|w| w.split('%').next().unwrap_or(w)).and_then(|w| w.parse().ok());
                    if let Some(ip) = ip {
                        conf.nameservers.push(SocketAddr::new(ip, DNS_PORT));
                    }
                }
                Some("search") => conf.search = words.map(str::to_owned).collect(),
                Some("domain") => conf.search = words.next().map(str::to_owned).into_iter().collect(),
                Some("options") => {
                    for option in words {
                        if let Some(n) = option.strip_prefix("ndots:").and_then(|n| n.parse::<usize>().ok()) {
                            conf.ndots = n.min(MAX_NDOTS);
                        }
                    }
                }
                _ => {}
            }
        }
        conf
    }
}

/// The addresses `/etc/hosts` gives `name`, in file order.
pub fn hosts_file_addresses(name: &str) -> Vec<IpAddr> {
    hosts_addresses(&read_small("/etc/hosts"), name)
}

/// The addresses a hosts file's `text` gives `name` (matched without case, a
/// trailing dot ignored).
pub fn hosts_addresses(text: &str, name: &str) -> Vec<IpAddr> {
    let name = name.strip_suffix('.').unwrap_or(name);
    let mut found = Vec::new();
    for line in text.lines() {
        let mut words = line.split('#').next().unwrap_or("").split_whitespace();
        let Some(ip) = words.next().and_then(|w| w.parse::<IpAddr>().ok()) else {
            continue;
        };
        if words.any(|w| w.strip_suffix('.').unwrap_or(w).eq_ignore_ascii_case(name)) && !found.contains(&ip) {
            found.push(ip);
        }
    }
    found
}

/// `localhost` and the names under it, which c-ares answers with the loopback
/// address when the hosts file has none.
pub fn is_localhost(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name).to_ascii_lowercase();
    name == "localhost" || name.ends_with(".localhost")
}

/// The loopback address of a family.
pub fn loopback(v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::LOCALHOST)
    } else {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    }
}

/// Whether some non-loopback interface has an IPv4 and an IPv6 address, as
/// Envoy's c-ares resolver checks them; both when the interfaces cannot be listed.
pub fn routable_families() -> (bool, bool) {
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a list freed below by freeifaddrs.
    if unsafe { libc::getifaddrs(&mut list) } != 0 {
        return (true, true);
    }
    let (mut v4, mut v6) = (false, false);
    let mut at = list;
    while !at.is_null() {
        // SAFETY: `at` is a node of the list getifaddrs returned, not yet freed.
        let entry = unsafe { &*at };
        if !entry.ifa_addr.is_null() {
            // SAFETY: a non-null ifa_addr points at a sockaddr of its sa_family.
            match i32::from(unsafe { (*entry.ifa_addr).sa_family }) {
                libc::AF_INET => {
                    // SAFETY: an AF_INET address is a sockaddr_in.
                    let sin = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in) };
                    v4 |= !Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr)).is_loopback();
                }
                libc::AF_INET6 => {
                    // SAFETY: an AF_INET6 address is a sockaddr_in6.
                    let sin6 = unsafe { &*(entry.ifa_addr as *const libc::sockaddr_in6) };
                    v6 |= !Ipv6Addr::from(sin6.sin6_addr.s6_addr).is_loopback();
                }
                _ => {}
            }
        }
        at = entry.ifa_next;
    }
    // SAFETY: `list` came from getifaddrs and is freed once.
    unsafe { libc::freeifaddrs(list) };
    (v4, v6)
}

/// A small system file's text; empty when it cannot be read.
fn read_small(path: &str) -> String {
    use std::io::Read;
    let mut text = String::new();
    if let Ok(file) = std::fs::File::open(path) {
        let _ = file.take(MAX_FILE_BYTES).read_to_string(&mut text);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_lines_are_read_as_libc_reads_them() {
        let conf = ResolvConf::parse(
            "# comment\nnameserver 10.0.0.2\nnameserver fe80::1%eth0 ; zone\nnameserver bogus\n\
             domain first.example\nsearch a.example b.example\noptions rotate ndots:3 timeout:1\n",
        );
        assert_eq!(conf.nameservers, vec![SocketAddr::from(([10, 0, 0, 2], 53)), "[fe80::1]:53".parse().unwrap()]);
        assert_eq!(conf.search, vec!["a.example", "b.example"]);
        assert_eq!(conf.ndots, 3);
        assert_eq!(ResolvConf::parse("options ndots:99").ndots, 15);
        assert_eq!(ResolvConf::parse("").ndots, 1);
    }

    #[test]
    fn hosts_lines_give_each_name_its_addresses() {
        let hosts = "127.0.0.1 localhost\n::1 localhost ip6-localhost\n10.1.1.1 Web.Test web # alias\n\
                     10.1.1.2 web\nnot-an-ip web\n#10.9.9.9 web\n";
        let ips = |n| hosts_addresses(hosts, n);
        assert_eq!(ips("web"), vec![IpAddr::from([10, 1, 1, 1]), IpAddr::from([10, 1, 1, 2])]);
        assert_eq!(ips("WEB.test."), vec![IpAddr::from([10, 1, 1, 1])]);
        assert_eq!(ips("localhost"), vec![IpAddr::from([127, 0, 0, 1]), IpAddr::V6(Ipv6Addr::LOCALHOST)]);
        assert!(ips("other").is_empty());
        assert!(is_localhost("LocalHost.") && is_localhost("a.localhost") && !is_localhost("localhost.com"));
    }
}
