//! The outbound guard: every HTTP call whose destination a tenant can steer (a flow's
//! `http_request`, the Chatwoot `base_url`, a channel account's `api_base` or endpoint, a media
//! URL a provider answers with, a cloud OCR endpoint) goes through an [`OutboundClient`], which
//! refuses internal addresses.
//!
//! Why: tenants choose these URLs, and the worker sits inside the platform's network. A tenant
//! that lists `127.0.0.1`, `169.254.169.254` or a name resolving to `10.0.0.5` in its
//! `allowed_http_hosts` (or as its Chatwoot URL) would otherwise make the worker call the
//! platform's own services, and a flow can hand the answer to an anonymous webchat user. A
//! check of the host *name* cannot see where a name points; a check of the address before the
//! call would race the connection (DNS rebinding). So the guard sits where addresses are chosen:
//!
//! - a [`reqwest::dns::Resolve`] that resolves the name, drops every refused address and fails
//!   when none is left: reqwest connects to exactly the addresses that were checked;
//! - reqwest does not resolve IP literals, so [`OutboundClient`] checks the URL of every request
//!   it builds, and the redirect policy checks every hop's URL the same way;
//! - system proxies (`HTTP(S)_PROXY`) are ignored: a proxy would resolve the name itself.
//!
//! Refused: loopback, unspecified (`0.0.0.0/8`, `::`), private (10/8, 172.16/12, 192.168/16),
//! shared address space (100.64/10, carrier-grade NAT), link-local (169.254/16 — cloud metadata
//! — and fe80::/10), multicast, broadcast and reserved (240/4), documentation and benchmarking
//! ranges, IETF protocol assignments (192.0.0/24), IPv6 unique-local (fc00::/7) and site-local
//! (fec0::/10), and IPv6 addresses that carry an IPv4 address (mapped `::ffff:a.b.c.d`,
//! compatible `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) when that IPv4 address is
//! refused. Teredo (2001::/32) and local-use NAT64 (64:ff9b:1::/48) are refused outright.
//!
//! On-premise deployments whose tenants must reach internal services open ranges with the
//! platform setting `allow_cidrs` ([`OutboundSettings`], `worker.outbound` and `api.outbound`);
//! the default is empty. Error messages name the host and the kind of range, never the URL's
//! path or query (those can carry secrets and phone numbers, and end up in workflow histories).

use std::error::Error as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;
use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use serde::{Deserialize, Serialize};

/// Platform setting (`[worker.outbound]`, `[api.outbound]`): which internal ranges outbound
/// calls steered by tenants may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutboundSettings {
    /// CIDRs (`10.20.0.0/16`) or single addresses (`10.20.0.7`) opened although they are
    /// internal. Default: none, every internal address is refused. Open only what tenants must
    /// reach (an on-premise ERP, a local fake in tests): a range opened here is open to every
    /// tenant.
    pub allow_cidrs: Vec<String>,
}

impl OutboundSettings {
    /// Loopback only (`127.0.0.0/8`, `::1`): `zengine dev` and the test harness, whose fakes
    /// listen there.
    pub fn loopback() -> Self {
        Self {
            allow_cidrs: vec!["127.0.0.0/8".to_owned(), "::1/128".to_owned()],
        }
    }

    /// The guard these settings describe; an unparsable entry is an error naming it.
    pub fn guard(&self) -> Result<OutboundGuard, String> {
        let nets = self
            .allow_cidrs
            .iter()
            .map(|s| {
                let s = s.trim();
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map(|n| n.trunc())
                    .map_err(|_| {
                        format!("outbound.allow_cidrs: `{s}` is not a CIDR or an IP address")
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(OutboundGuard::allowing(nets))
    }
}

/// A refused outbound call: names the host (or the URL's origin), never its path or query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("outbound call to {target} refused: {reason}")]
pub struct OutboundRefused {
    /// `scheme://host[:port]` or the bare host name.
    pub target: String,
    pub reason: String,
}

/// Decides which addresses outbound calls may reach. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct OutboundGuard {
    allow: Arc<[IpNet]>,
}

impl OutboundGuard {
    /// Refuses every internal address (the production default).
    pub fn strict() -> Self {
        Self::default()
    }

    /// Refuses internal addresses except those in `nets`.
    pub fn allowing(nets: impl IntoIterator<Item = IpNet>) -> Self {
        Self {
            allow: nets.into_iter().collect(),
        }
    }

    /// `Err(kind of range)` when `ip` may not be called.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), &'static str> {
        if self.allow.iter().any(|net| net.contains(&ip)) {
            return Ok(());
        }
        match classify(ip) {
            Class::Public => Ok(()),
            Class::Refused(kind) => Err(kind),
            // The IPv4 address inside decides (and an allowance of it opens it).
            Class::Embeds(v4) => self.check_ip(IpAddr::V4(v4)),
        }
    }

    /// Checks a URL before it is requested: http(s) only, and an IP-literal host must be
    /// allowed (names are checked by the resolver, at connection time).
    pub fn check_url(&self, url: &Url) -> Result<(), OutboundRefused> {
        let refused = |reason: String| OutboundRefused {
            target: origin(url),
            reason,
        };
        if !matches!(url.scheme(), "http" | "https") {
            return Err(refused("only http and https URLs are called".to_owned()));
        }
        let Some(host) = url.host_str() else {
            return Err(refused("the URL has no host".to_owned()));
        };
        // The URL parser has normalised IPv4 forms (`2130706433`, `0x7f.1`) to dotted quads
        // and brackets IPv6 literals; what does not parse as an address is a name.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let Ok(ip) = host.parse::<IpAddr>() else {
            return Ok(());
        };
        self.check_ip(ip)
            .map_err(|kind| refused(format!("{kind} address")))
    }

    /// `builder` with this guard's resolver, a redirect policy that checks every hop (at most
    /// 10, like reqwest's default; set `Policy::none()` after this to follow none) and no
    /// system proxy.
    pub fn apply(&self, builder: reqwest::ClientBuilder) -> reqwest::ClientBuilder {
        let hops = self.clone();
        builder
            .no_proxy()
            .dns_resolver(Arc::new(GuardedResolver {
                guard: self.clone(),
            }))
            .redirect(reqwest::redirect::Policy::custom(move |attempt| match hops
                .check_url(attempt.url())
            {
                Ok(()) => reqwest::redirect::Policy::default().redirect(attempt),
                Err(refused) => attempt.error(refused),
            }))
    }
}

/// What an address is, for the guard.
#[derive(Debug, PartialEq, Eq)]
enum Class {
    Public,
    Refused(&'static str),
    /// An IPv6 address standing for this IPv4 address.
    Embeds(Ipv4Addr),
}

fn classify(ip: IpAddr) -> Class {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => classify_v6(v6),
    }
}

fn classify_v4(ip: Ipv4Addr) -> Class {
    let [a, b, c, _] = ip.octets();
    let kind = match (a, b, c) {
        (0, ..) => "unspecified (0.0.0.0/8)",
        (10, ..) => "private",
        (100, 64..=127, _) => "shared (carrier-grade NAT)",
        (127, ..) => "loopback",
        (169, 254, _) => "link-local",
        (172, 16..=31, _) => "private",
        (192, 0, 0) => "IETF protocol assignment",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (192, 88, 99) => "6to4 relay anycast",
        (192, 168, _) => "private",
        (198, 18..=19, _) => "benchmarking",
        (224..=239, ..) => "multicast",
        (240..=255, ..) => "reserved or broadcast",
        _ => return Class::Public,
    };
    Class::Refused(kind)
}

fn classify_v6(ip: Ipv6Addr) -> Class {
    let s = ip.segments();
    if ip.is_unspecified() {
        return Class::Refused("unspecified");
    }
    if ip.is_loopback() {
        return Class::Refused("loopback");
    }
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Class::Embeds(v4);
    }
    let low_v4 = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    match s {
        // IPv4-compatible (deprecated, `::a.b.c.d`).
        [0, 0, 0, 0, 0, 0, _, _] => Class::Embeds(low_v4()),
        // NAT64 well-known prefix: the gateway calls the IPv4 address inside.
        [0x64, 0xff9b, 0, 0, 0, 0, _, _] => Class::Embeds(low_v4()),
        [0x64, 0xff9b, 1, ..] => Class::Refused("local-use NAT64"),
        // 6to4: the IPv4 address of the relay is bits 16..48.
        [0x2002, hi, lo, ..] => Class::Embeds(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        )),
        [0x2001, 0, ..] => Class::Refused("Teredo"),
        [0x2001, 0xdb8, ..] => Class::Refused("documentation"),
        [0x100, 0, 0, 0, ..] => Class::Refused("discard-only"),
        [first, ..] if first & 0xfe00 == 0xfc00 => Class::Refused("unique-local"),
        [first, ..] if first & 0xffc0 == 0xfe80 => Class::Refused("link-local"),
        [first, ..] if first & 0xffc0 == 0xfec0 => Class::Refused("site-local"),
        [first, ..] if first & 0xff00 == 0xff00 => Class::Refused("multicast"),
        _ => Class::Public,
    }
}

/// `scheme://host[:port]` of `url`: what error messages may say about a destination.
pub fn origin(url: &Url) -> String {
    match url.host_str() {
        Some(host) => match url.port() {
            Some(port) => format!("{}://{host}:{port}", url.scheme()),
            None => format!("{}://{host}", url.scheme()),
        },
        None => format!("{}:", url.scheme()),
    }
}

/// The guard's refusal inside a reqwest error (from the resolver or the redirect policy).
pub fn refusal(error: &reqwest::Error) -> Option<&OutboundRefused> {
    let mut source = error.source();
    while let Some(e) = source {
        if let Some(refused) = e.downcast_ref::<OutboundRefused>() {
            return Some(refused);
        }
        source = e.source();
    }
    None
}

/// A reqwest error as a message without the URL: the refusal when the guard refused, else the
/// error and its causes (`error sending request: client error (Connect): tcp connect error:
/// Connection refused (os error 111)`).
pub fn describe(error: &reqwest::Error) -> String {
    if let Some(refused) = refusal(error) {
        return refused.to_string();
    }
    let mut message = error.without_url_ref();
    let mut source = error.source();
    while let Some(e) = source {
        message.push_str(": ");
        message.push_str(&e.to_string());
        source = e.source();
    }
    message
}

/// reqwest's `without_url` takes the error by value; its message without the URL, by reference.
trait WithoutUrlRef {
    fn without_url_ref(&self) -> String;
}

impl WithoutUrlRef for reqwest::Error {
    fn without_url_ref(&self) -> String {
        let mut text = self.to_string();
        if let Some(url) = self.url() {
            text = text.replace(&format!(" for url ({url})"), "");
        }
        text
    }
}

/// Resolves names and keeps only the addresses the guard allows.
struct GuardedResolver {
    guard: OutboundGuard,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.guard.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused_kind = None;
            let kept: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match guard.check_ip(addr.ip()) {
                    Ok(()) => true,
                    Err(kind) => {
                        refused_kind.get_or_insert(kind);
                        false
                    }
                })
                .collect();
            match refused_kind {
                Some(kind) if kept.is_empty() => Err(Box::new(OutboundRefused {
                    target: host,
                    reason: format!("the name resolves only to refused addresses ({kind})"),
                }) as _),
                _ => Ok(Box::new(kept.into_iter()) as Addrs),
            }
        })
    }
}

/// An HTTP client for destinations tenants choose: a reqwest client with the guard's resolver
/// and redirect policy, whose request builders check the URL first. Cheap to clone.
#[derive(Clone)]
pub struct OutboundClient {
    http: reqwest::Client,
    guard: OutboundGuard,
}

impl OutboundClient {
    /// `builder` (timeouts, user agent, redirect policy) guarded by `guard`. A redirect policy
    /// set on `builder` is replaced by the guard's; use [`Self::without_redirects`] for none.
    pub fn build(
        guard: OutboundGuard,
        builder: reqwest::ClientBuilder,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: guard.apply(builder).build()?,
            guard,
        })
    }

    /// Like [`Self::build`], following no redirect.
    pub fn without_redirects(
        guard: OutboundGuard,
        builder: reqwest::ClientBuilder,
    ) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: guard
                .apply(builder)
                .redirect(reqwest::redirect::Policy::none())
                .build()?,
            guard,
        })
    }

    /// A request to `url`, or the refusal when `url` is not http(s) or names a refused IP.
    pub fn request(
        &self,
        method: reqwest::Method,
        url: &str,
    ) -> Result<reqwest::RequestBuilder, OutboundRefused> {
        let url = Url::parse(url).map_err(|e| OutboundRefused {
            // The text of an unparsable URL may hold anything: not repeated.
            target: "an invalid URL".to_owned(),
            reason: e.to_string(),
        })?;
        self.request_url(method, url)
    }

    /// A request to an already parsed `url` (checked like [`Self::request`]).
    pub fn request_url(
        &self,
        method: reqwest::Method,
        url: Url,
    ) -> Result<reqwest::RequestBuilder, OutboundRefused> {
        self.guard.check_url(&url)?;
        Ok(self.http.request(method, url))
    }

    pub fn get(&self, url: &str) -> Result<reqwest::RequestBuilder, OutboundRefused> {
        self.request(reqwest::Method::GET, url)
    }

    pub fn post(&self, url: &str) -> Result<reqwest::RequestBuilder, OutboundRefused> {
        self.request(reqwest::Method::POST, url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(guard: &OutboundGuard, ip: &str) -> bool {
        guard.check_ip(ip.parse().unwrap()).is_err()
    }

    #[test]
    fn internal_ipv4_ranges_are_refused() {
        let strict = OutboundGuard::strict();
        for ip in [
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.8.9.10",
            "169.254.169.254",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
        ] {
            assert!(refused(&strict, ip), "{ip} should be refused");
        }
    }

    #[test]
    fn internal_ipv6_ranges_are_refused() {
        let strict = OutboundGuard::strict();
        for ip in [
            "::",
            "::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "2001:db8::1",
            "2001:0:4136:e378::1",
            "100::1",
            "64:ff9b:1::a00:1",
        ] {
            assert!(refused(&strict, ip), "{ip} should be refused");
        }
    }

    #[test]
    fn ipv6_forms_of_internal_ipv4_addresses_are_refused() {
        let strict = OutboundGuard::strict();
        for ip in [
            "::ffff:127.0.0.1",
            "::ffff:7f00:1",
            "::ffff:169.254.169.254",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "::10.0.0.1",
            "64:ff9b::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "2002:c0a8:101::",
        ] {
            assert!(refused(&strict, ip), "{ip} should be refused");
        }
        // The same forms of public addresses pass.
        for ip in ["::ffff:8.8.8.8", "64:ff9b::1.1.1.1", "2002:808:808::1"] {
            assert!(!refused(&strict, ip), "{ip} should pass");
        }
    }

    #[test]
    fn public_addresses_pass() {
        let strict = OutboundGuard::strict();
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "93.184.215.14",
            "100.63.255.255",
            "100.128.0.1",
            "172.15.255.255",
            "172.32.0.1",
            "192.169.0.1",
            "169.253.1.1",
            "2606:4700:4700::1111",
            "2a00:1450:4001:80b::200e",
        ] {
            assert!(!refused(&strict, ip), "{ip} should pass");
        }
    }

    #[test]
    fn allow_cidrs_open_exactly_their_ranges() {
        let guard = OutboundSettings {
            allow_cidrs: vec!["10.20.0.0/16".into(), "fd00::7".into()],
        }
        .guard()
        .unwrap();
        assert!(!refused(&guard, "10.20.3.4"));
        assert!(
            !refused(&guard, "::ffff:10.20.3.4"),
            "mapped form of an opened address"
        );
        assert!(refused(&guard, "10.21.0.1"));
        assert!(!refused(&guard, "fd00::7"));
        assert!(refused(&guard, "fd00::8"));
        assert!(refused(&guard, "127.0.0.1"));

        let loopback = OutboundSettings::loopback().guard().unwrap();
        assert!(!refused(&loopback, "127.0.0.1"));
        assert!(!refused(&loopback, "::1"));
        assert!(!refused(&loopback, "::ffff:127.0.0.1"));
        assert!(refused(&loopback, "0.0.0.0"), "0.0.0.0 is not loopback");
        assert!(refused(&loopback, "169.254.169.254"));

        let bad = OutboundSettings {
            allow_cidrs: vec!["10.0.0.0/33".into()],
        };
        assert!(bad.guard().unwrap_err().contains("`10.0.0.0/33`"));
    }

    #[test]
    fn urls_with_refused_ip_literals_are_refused_without_their_path_or_query() {
        let strict = OutboundGuard::strict();
        for url in [
            "http://127.0.0.1:8080/admin?token=s3cret",
            "http://[::ffff:127.0.0.1]/x?token=s3cret",
            "http://[::1]:9/x?token=s3cret",
            "http://0.0.0.0/x?token=s3cret",
            // WHATWG URL parsing turns these into 127.0.0.1.
            "http://2130706433/x?token=s3cret",
            "http://0x7f.1/x?token=s3cret",
            "http://169.254.169.254/latest/meta-data/?token=s3cret",
        ] {
            let error = strict.check_url(&Url::parse(url).unwrap()).unwrap_err();
            let message = error.to_string();
            assert!(message.contains("refused"), "{url}: {message}");
            assert!(!message.contains("s3cret"), "{url}: {message}");
            assert!(
                !message.contains("/x") && !message.contains("admin"),
                "{message}"
            );
        }
        assert!(
            strict
                .check_url(&Url::parse("file:///etc/passwd").unwrap())
                .is_err()
        );
        assert!(
            strict
                .check_url(&Url::parse("https://api.example.com/x").unwrap())
                .is_ok()
        );
    }

    #[tokio::test]
    async fn names_resolving_to_refused_addresses_fail_before_any_connection() {
        let client =
            OutboundClient::build(OutboundGuard::strict(), reqwest::Client::builder()).unwrap();
        // `localhost` resolves locally (no DNS server needed) to loopback only.
        let error = client
            .get("http://localhost:1/x?token=s3cret")
            .unwrap()
            .send()
            .await
            .unwrap_err();
        let refused = refusal(&error).expect("the guard's refusal in the error chain");
        assert_eq!(refused.target, "localhost");
        let message = describe(&error);
        assert!(message.contains("localhost"), "{message}");
        assert!(message.contains("loopback"), "{message}");
        assert!(!message.contains("s3cret"), "{message}");
    }

    #[tokio::test]
    async fn redirects_to_refused_ip_literals_are_not_followed() {
        // A loopback server (opened for the test) that redirects to the metadata address.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            while let Ok((mut socket, _)) = listener.accept().await {
                let mut buffer = [0u8; 2048];
                let _ = socket.read(&mut buffer).await;
                let _ = socket
                    .write_all(
                        b"HTTP/1.1 302 Found\r\nlocation: http://169.254.169.254/latest/?k=s3cret\r\n\
                          content-length: 0\r\nconnection: close\r\n\r\n",
                    )
                    .await;
            }
        });
        let client = OutboundClient::build(
            OutboundSettings::loopback().guard().unwrap(),
            reqwest::Client::builder(),
        )
        .unwrap();
        let error = client
            .get(&format!("http://127.0.0.1:{port}/start"))
            .unwrap()
            .send()
            .await
            .unwrap_err();
        let refused = refusal(&error).expect("the redirect policy's refusal");
        assert_eq!(refused.target, "http://169.254.169.254");
        assert!(!describe(&error).contains("s3cret"));
    }
}
