//! The SSRF guard: a webhook may only reach the public internet. A URL must be http(s); a
//! literal address in it, and every address its name resolves to (checked in the resolver the
//! client connects through, so DNS rebinding finds the same wall), must be public: not
//! loopback, private, link-local, shared, unique-local, multicast, unspecified or reserved,
//! also when written as an IPv4-mapped, -compatible, NAT64 or 6to4 IPv6 address. The operator
//! may allow networks (`DOCKET_WEBHOOK_ALLOWED_NETS`).

use std::{
    net::{IpAddr, Ipv4Addr, SocketAddr},
    sync::Arc,
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

impl Guard {
    pub fn new(allowed: Vec<IpNet>) -> Self {
        Self {
            allowed: Arc::new(allowed),
        }
    }

    /// May a webhook connect to `ip`?
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.allowed.iter().any(|net| net.contains(&ip)) || !inward(ip)
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
            return Err(format!(
                "{ip} is not a public address (loopback, private, link-local and similar \
                 addresses cannot receive webhooks)"
            ));
        }
        Ok(url)
    }
}

/// An IPv6 address that carries an IPv4 one (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`,
/// NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:AABB:CCDD::`) is judged as that IPv4 address.
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
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => embedded(hi, lo),
        [0x2002, hi, lo, ..] => embedded(hi, lo),
        _ => ip,
    }
}

/// Addresses that lead into a network rather than to the public internet.
fn inward(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_multicast()
                || v4.is_broadcast()
                || a == 0 // "this network", 0.0.0.0 included
                || (a == 100 && (64..128).contains(&b)) // shared (carrier-grade NAT)
                || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
                || (a == 198 && (18..20).contains(&b)) // benchmarking
                || a >= 240 // reserved
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xffc0) == 0xfe80 // link-local
                || (first & 0xffc0) == 0xfec0 // site-local (deprecated)
                || (first & 0xfe00) == 0xfc00 // unique-local
        }
    }
}

/// The resolver webhook requests connect through: a name with any address the guard refuses
/// is refused whole.
pub struct GuardedResolver(pub Guard);

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let found: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if found.is_empty() {
                return Err(format!("{host} has no address").into());
            }
            if let Some(bad) = found.iter().find(|a| !guard.permits(a.ip())) {
                return Err(format!(
                    "{host} resolves to {}, which is not a public address",
                    bad.ip()
                )
                .into());
            }
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
            "http://[::127.0.0.1]/",        // compatible
            "http://[64:ff9b::a9fe:a9fe]/", // NAT64 of 169.254.169.254
            "http://[2002:7f00:1::]/",      // 6to4 of 127.0.0.1
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
        assert!(err.contains("not a public address"), "{err}");
        let allowed = GuardedResolver(Guard::new(vec![
            "127.0.0.0/8".parse().unwrap(),
            "::1/128".parse().unwrap(),
        ]));
        let name: Name = "localhost".parse().unwrap();
        assert!(allowed.resolve(name).await.is_ok());
    }
}
