//! The SSRF guard of every outbound connection a tenant chooses the destination of (webhooks,
//! IMAP mailboxes): it may only reach the public internet. A URL must be http(s); a literal
//! address in it, and every address its name resolves to (checked where the client connects, so
//! DNS rebinding finds the same wall), must be globally reachable: none of the ranges IANA's
//! special-purpose registries mark otherwise (loopback, private, link-local, shared,
//! unique-local, documentation, benchmarking, discard, local-use NAT64, Teredo and the rest of
//! 2001::/23, multicast, reserved). An IPv6 address that carries an IPv4 one (mapped,
//! translated, compatible, NAT64, 6to4) is judged as that IPv4 address. The operator may allow
//! networks (`DOCKET_WEBHOOK_ALLOWED_NETS`). A refusal says that the destination is not
//! allowed, never what a name resolved to.

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::{Arc, LazyLock},
};

use ipnet::IpNet;
use reqwest::{
    Url,
    dns::{Name, Resolve, Resolving},
};

#[derive(Clone, Debug, Default)]
pub struct Guard {
    allowed: Arc<Vec<IpNet>>,
}

/// What every refusal says.
pub const NOT_ALLOWED: &str = "is not an allowed destination: only public internet addresses \
                               can be reached (not loopback, private, link-local or similar)";

impl Guard {
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self {
            allowed: Arc::new(allowed),
        }
    }

    /// May a tenant's outbound connection go to `ip`?
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allowed.iter().any(|net| net.contains(&ip)) || globally_reachable(ip)
    }

    /// Parses a webhook URL and checks what can be checked without resolving its name: the
    /// scheme, a host, and a literal address (the URL parser has already read decimal, octal
    /// and hexadecimal IPv4 forms as the address they mean).
    pub fn check_url(&self, raw: &str) -> Result<Url, String> {
        let url = Url::parse(raw).map_err(|err| format!("not a URL: {err}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err("must be an http:// or https:// URL".into());
        }
        let ip = match url.host() {
            None => return Err("must name a host".into()),
            Some(url::Host::Domain(_)) => None,
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        };
        if let Some(ip) = ip
            && !self.permits(ip)
        {
            return Err(format!("this address {NOT_ALLOWED}"));
        }
        Ok(url)
    }

    /// The addresses of `host:port` a connection may use: every one the name resolves to must
    /// be permitted (a name with one inward address is refused whole, so which address a
    /// client picks cannot matter).
    pub async fn resolve(&self, host: &str, port: u16) -> std::io::Result<Vec<SocketAddr>> {
        let refused = || {
            std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{host} {NOT_ALLOWED}"),
            )
        };
        let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port)).await?.collect();
        if found.is_empty() || found.iter().any(|a| !self.permits(a.ip())) {
            return Err(refused());
        }
        Ok(found)
    }
}

/// An IPv6 address that carries an IPv4 one is judged as that IPv4 address: mapped
/// `::ffff:a.b.c.d`, translated `::ffff:0:a.b.c.d`, compatible `::a.b.c.d`, NAT64
/// `64:ff9b::a.b.c.d` and 6to4 `2002:AABB:CCDD::`. (Local-use NAT64 `64:ff9b:1::/48` and Teredo
/// `2001::/32` are refused whole, as IANA marks them not globally reachable.)
fn canonical(ip: IpAddr) -> IpAddr {
    let IpAddr::V6(v6) = ip else { return ip };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return IpAddr::V4(v4);
    }
    let s = v6.segments();
    let embedded = |hi: u16, lo: u16| {
        IpAddr::V4(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        ))
    };
    match s {
        // IPv4-compatible (deprecated), but not :: and ::1 themselves.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => embedded(hi, lo),
        // IPv4-translated (SIIT).
        [0, 0, 0, 0, 0xffff, 0, hi, lo] => embedded(hi, lo),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => embedded(hi, lo),
        [0x2002, hi, lo, ..] => embedded(hi, lo),
        _ => ip,
    }
}

fn nets(list: &[&str]) -> Vec<IpNet> {
    list.iter()
        .map(|n| n.parse().expect("a network written in the source"))
        .collect()
}

/// IANA's IPv4 and IPv6 special-purpose address registries: the blocks not globally reachable
/// (with multicast and the reserved ranges, which no webhook or mailbox lives in).
static INWARD: LazyLock<Vec<IpNet>> = LazyLock::new(|| {
    nets(&[
        "0.0.0.0/8",       // "this network"
        "10.0.0.0/8",      // private
        "100.64.0.0/10",   // shared (carrier-grade NAT)
        "127.0.0.0/8",     // loopback
        "169.254.0.0/16",  // link-local (cloud metadata)
        "172.16.0.0/12",   // private
        "192.0.0.0/24",    // IETF protocol assignments
        "192.0.2.0/24",    // documentation
        "192.88.99.0/24",  // 6to4 relay anycast (deprecated)
        "192.168.0.0/16",  // private
        "198.18.0.0/15",   // benchmarking
        "198.51.100.0/24", // documentation
        "203.0.113.0/24",  // documentation
        "224.0.0.0/4",     // multicast
        "240.0.0.0/4",     // reserved, and the limited broadcast address
        "::/128",          // unspecified
        "::1/128",         // loopback
        "64:ff9b:1::/48",  // local-use IPv4/IPv6 translation
        "100::/64",        // discard-only
        "100:0:0:1::/64",  // dummy prefix
        "2001::/23",       // IETF protocol assignments (Teredo, benchmarking, …)
        "2001:db8::/32",   // documentation
        "3fff::/20",       // documentation
        "5f00::/16",       // segment routing SIDs
        "fc00::/7",        // unique-local
        "fe80::/10",       // link-local
        "fec0::/10",       // site-local (deprecated)
        "ff00::/8",        // multicast
    ])
});

/// Blocks inside [`INWARD`] ones that IANA marks globally reachable.
static REACHABLE_EXCEPTIONS: LazyLock<Vec<IpNet>> = LazyLock::new(|| {
    nets(&[
        "192.0.0.9/32",    // Port Control Protocol anycast
        "192.0.0.10/32",   // TURN anycast
        "2001:1::1/128",   // Port Control Protocol anycast
        "2001:1::2/128",   // TURN anycast
        "2001:1::3/128",   // DNS-SD service registration protocol anycast
        "2001:3::/32",     // AMT
        "2001:4:112::/48", // AS112-v6
        "2001:20::/28",    // ORCHIDv2
        "2001:30::/28",    // drone remote ID
    ])
});

/// Not in any block IANA marks not globally reachable (or in one of its exceptions).
fn globally_reachable(ip: IpAddr) -> bool {
    let inside = |list: &[IpNet]| list.iter().any(|net| net.contains(&ip));
    !inside(&INWARD) || inside(&REACHABLE_EXCEPTIONS)
}

/// The resolver webhook requests connect through: a name with any address the guard refuses
/// is refused whole.
pub struct GuardedResolver(pub Guard);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let found = guard.resolve(name.as_str(), 0).await?;
            Ok(Box::new(found.into_iter()) as Box<dyn Iterator<Item = SocketAddr> + Send>)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(raw: &str) -> bool {
        Guard::default().check_url(raw).is_err()
    }

    #[test]
    fn literal_inward_addresses_are_refused_in_every_spelling() {
        for url in [
            "http://127.0.0.1/",
            "http://127.1/",
            "http://2130706433/",   // decimal
            "http://017700000001/", // octal
            "http://0x7f000001/",   // hexadecimal
            "http://0x7f.0.0.1/",   // mixed
            "http://0/",            // 0.0.0.0
            "http://10.1.2.3/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://169.254.169.254/latest/meta-data/", // cloud metadata
            "http://100.64.0.1/",
            "http://224.0.0.1/",
            "http://255.255.255.255/",
            "http://[::1]/",
            "http://[::]/",
            "http://[fe80::1]/",
            "http://[fd00::1]/",
            "http://[ff02::1]/",
            "http://[::ffff:127.0.0.1]/", // mapped
            "http://[::ffff:7f00:1]/",    // mapped, hex
            "http://[::ffff:169.254.169.254]/",
            "http://[::127.0.0.1]/",                          // compatible
            "http://[64:ff9b::a9fe:a9fe]/",                   // NAT64 of 169.254.169.254
            "http://[2002:7f00:1::]/",                        // 6to4 of 127.0.0.1
            "http://[::ffff:0:a00:1]/",                       // IPv4-translated 10.0.0.1
            "http://[::ffff:0:7f00:1]/",                      // IPv4-translated 127.0.0.1
            "http://[64:ff9b:1::a00:1]/",                     // local-use NAT64
            "http://[64:ff9b:1::5db8:d822]/", // local-use NAT64, even of a public address
            "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/", // Teredo
            "http://[2001:db8::1]/",          // documentation
            "http://[2001:2::1]/",            // benchmarking
            "http://[100::1]/",               // discard-only
            "http://[5f00::1]/",              // segment routing
            "http://192.0.2.1/",              // documentation
            "http://198.51.100.7/",
            "http://203.0.113.9/",
            "http://198.18.0.1/",  // benchmarking
            "http://192.88.99.1/", // 6to4 relay anycast
        ] {
            assert!(refused(url), "{url} should be refused");
        }
    }

    #[test]
    fn public_addresses_and_names_pass_the_literal_check() {
        for url in [
            "https://hooks.example.com/docket",
            "http://93.184.216.34/",
            "https://[2606:2800:220:1:248:1893:25c8:1946]/",
            "https://[::ffff:93.184.216.34]/",
            "https://[::ffff:0:5db8:d822]/", // translated 93.184.216.34
            "https://[64:ff9b::5db8:d822]/", // well-known NAT64 of it
            "https://[2001:4:112::1]/",      // AS112-v6: an exception inside 2001::/23
        ] {
            assert!(!refused(url), "{url} should pass");
        }
    }

    #[test]
    fn only_http_and_https_with_a_host() {
        for url in [
            "ftp://example.com/",
            "file:///etc/passwd",
            "gopher://example.com/",
            "javascript:alert(1)",
            "http://",
            "not a url",
        ] {
            assert!(refused(url), "{url} should be refused");
        }
    }

    #[test]
    fn allowed_networks_open_only_themselves() {
        let guard = Guard::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert!(guard.check_url("http://127.0.0.1:9000/").is_ok());
        assert!(guard.check_url("http://[::ffff:127.0.0.1]:9000/").is_ok());
        assert!(guard.check_url("http://10.0.0.1/").is_err());
        assert!(guard.check_url("http://[::1]/").is_err());
    }

    #[tokio::test]
    async fn names_that_resolve_inward_are_refused_when_connecting() {
        let resolver = GuardedResolver(Guard::default());
        let name: Name = "localhost".parse().unwrap();
        let err = match resolver.resolve(name).await {
            Ok(_) => panic!("localhost resolved through the guard"),
            Err(err) => err.to_string(),
        };
        assert!(err.contains("is not an allowed destination"), "{err}");
        assert!(
            !err.contains("127.0.0.1") && !err.contains("::1"),
            "the refusal does not say what the name resolves to: {err}"
        );
        let allowed = GuardedResolver(Guard::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]));
        let name: Name = "localhost".parse().unwrap();
        assert!(allowed.resolve(name).await.is_ok());
    }
}
