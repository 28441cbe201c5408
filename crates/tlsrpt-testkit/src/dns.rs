//! An in-process authoritative DNS server on 127.0.0.1 (UDP and TCP, same port).
//!
//! ```no_run
//! # async fn f() -> anyhow::Result<()> {
//! use tlsrpt_testkit::dns::DnsServer;
//! let dns = DnsServer::builder()
//!     .zone("example.com")
//!     .txt("_smtp._tls.example.com", &["v=TLSRPTv1; rua=mailto:tls@exa", "mple.com"])
//!     .mx("example.com", 10, "mx1.example.com")
//!     .a("mx1.example.com", [127, 0, 0, 1].into())
//!     .servfail("_smtp._tls.broken.example.com")
//!     .start()
//!     .await?;
//! let _nameserver = dns.addr(); // give this to the resolver
//! # Ok(()) }
//! ```

use std::collections::HashSet;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use hickory_proto::dnssec::crypto::EcdsaSigningKey;
use hickory_proto::dnssec::rdata::DNSKEY;
use hickory_proto::dnssec::{Algorithm, DnssecSigner, SigningKey, TrustAnchors};
use hickory_proto::op::{Header, HeaderCounts, MessageType, Metadata, ResponseCode};
use hickory_proto::rr::rdata::tlsa::{CertUsage, Matching, Selector};
use hickory_proto::rr::rdata::{A, AAAA, CNAME, MX, SOA, TLSA, TXT};
use hickory_proto::rr::{LowerName, Name, RData, Record};
use hickory_server::Server;
use hickory_server::dnssec::NxProofKind;
use hickory_server::net::runtime::{Time, TokioRuntimeProvider};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, MessageResponseBuilder, ZoneType};

/// A record to serve.
#[derive(Clone, Debug)]
pub enum Rec {
    /// TXT with these character-strings (one RR).
    Txt(Vec<Vec<u8>>),
    /// MX preference and exchange.
    Mx(u16, String),
    /// IPv4 address.
    A(Ipv4Addr),
    /// IPv6 address.
    Aaaa(Ipv6Addr),
    /// Alias to another name.
    Cname(String),
    /// TLSA usage, selector, matching type, association data.
    Tlsa(u8, u8, u8, Vec<u8>),
}

/// Builds a [`DnsServer`].
#[derive(Default, Debug)]
pub struct DnsBuilder {
    zones: Vec<String>,
    records: Vec<(String, Rec)>,
    servfail: Vec<String>,
    silent: Vec<String>,
    signed: Vec<String>,
}

impl DnsBuilder {
    /// Declares a zone that is DNSSEC-signed (ECDSA P-256, NSEC). Its key is a trust anchor
    /// in [`DnsServer::trust_anchors`], so a validating resolver given those anchors sees its
    /// answers as secure.
    pub fn signed_zone(mut self, origin: &str) -> Self {
        self.zones.push(origin.to_string());
        self.signed.push(origin.to_string());
        self
    }
    /// Declares a zone the server is authoritative for (an SOA is made up).
    pub fn zone(mut self, origin: &str) -> Self {
        self.zones.push(origin.to_string());
        self
    }
    /// Adds a record; it goes into the zone with the longest matching origin.
    pub fn record(mut self, name: &str, rec: Rec) -> Self {
        self.records.push((name.to_string(), rec));
        self
    }
    /// Adds one TXT RR with these character-strings.
    pub fn txt(self, name: &str, strings: &[&str]) -> Self {
        let s = strings.iter().map(|s| s.as_bytes().to_vec()).collect();
        self.record(name, Rec::Txt(s))
    }
    /// Adds an MX RR.
    pub fn mx(self, name: &str, pref: u16, exchange: &str) -> Self {
        self.record(name, Rec::Mx(pref, exchange.to_string()))
    }
    /// Adds an A RR.
    pub fn a(self, name: &str, ip: Ipv4Addr) -> Self {
        self.record(name, Rec::A(ip))
    }
    /// Adds an AAAA RR.
    pub fn aaaa(self, name: &str, ip: Ipv6Addr) -> Self {
        self.record(name, Rec::Aaaa(ip))
    }
    /// Adds a CNAME RR.
    pub fn cname(self, name: &str, target: &str) -> Self {
        self.record(name, Rec::Cname(target.to_string()))
    }
    /// Adds a TLSA RR.
    pub fn tlsa(self, name: &str, usage: u8, selector: u8, matching: u8, data: &[u8]) -> Self {
        self.record(name, Rec::Tlsa(usage, selector, matching, data.to_vec()))
    }
    /// Every query for this name (any type) answers SERVFAIL.
    pub fn servfail(mut self, name: &str) -> Self {
        self.servfail.push(name.to_string());
        self
    }
    /// Every query for this name is dropped without an answer, so the client times out.
    pub fn timeout(mut self, name: &str) -> Self {
        self.silent.push(name.to_string());
        self
    }

    /// Binds UDP and TCP on 127.0.0.1 (one ephemeral port for both) and starts serving.
    pub async fn start(self) -> anyhow::Result<DnsServer> {
        let mut catalog = Catalog::new();
        let mut zones: Vec<(Name, InMemoryZoneHandler<TokioRuntimeProvider>)> = Vec::new();
        let mut anchors = TrustAnchors::empty();
        let mut signers = Vec::new();
        for z in &self.zones {
            let origin = fqdn(z)?;
            let signed = self.signed.contains(z);
            let mut h = InMemoryZoneHandler::<TokioRuntimeProvider>::empty(
                origin.clone(),
                ZoneType::Primary,
                AxfrPolicy::Deny,
                signed.then_some(NxProofKind::Nsec),
            );
            if signed {
                let alg = Algorithm::ECDSAP256SHA256;
                let pkcs8 = EcdsaSigningKey::generate_pkcs8(alg)
                    .map_err(|e| anyhow!("generating a zone key: {e}"))?;
                let key = EcdsaSigningKey::from_pkcs8(&pkcs8, alg)
                    .map_err(|e| anyhow!("loading the zone key: {e}"))?;
                let public = key
                    .to_public_key()
                    .map_err(|e| anyhow!("zone public key: {e}"))?;
                anchors.insert_with_name(&public, LowerName::new(&origin));
                let dnskey = DNSKEY::from_key(&public);
                signers.push((
                    origin.clone(),
                    DnssecSigner::new(
                        dnskey,
                        Box::new(key),
                        origin.clone(),
                        Duration::from_secs(86_400),
                    ),
                ));
            }
            let soa = SOA::new(
                fqdn(&format!("ns.{z}"))?,
                fqdn(&format!("hostmaster.{z}"))?,
                1,
                3600,
                600,
                86400,
                60,
            );
            h.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1);
            zones.push((origin, h));
        }
        for (name, rec) in self.records {
            let n = fqdn(&name)?;
            let zone = zones
                .iter_mut()
                .filter(|(o, _)| o.zone_of(&n))
                .max_by_key(|(o, _)| o.num_labels())
                .ok_or_else(|| anyhow!("no zone declared for {name}"))?;
            let rdata = match rec {
                Rec::Txt(s) => RData::TXT(TXT::from_bytes(s.iter().map(Vec::as_slice).collect())),
                Rec::Mx(p, e) => RData::MX(MX::new(p, fqdn(&e)?)),
                Rec::A(ip) => RData::A(A(ip)),
                Rec::Aaaa(ip) => RData::AAAA(AAAA(ip)),
                Rec::Cname(t) => RData::CNAME(CNAME(fqdn(&t)?)),
                Rec::Tlsa(u, s, m, d) => RData::TLSA(TLSA::new(
                    CertUsage::from(u),
                    Selector::from(s),
                    Matching::from(m),
                    d,
                )),
            };
            if !zone.1.upsert_mut(Record::from_rdata(n, 60, rdata), 1) {
                return Err(anyhow!("could not add a record for {name}"));
            }
        }
        for (origin, mut h) in zones {
            if let Some(pos) = signers.iter().position(|(o, _)| *o == origin) {
                let (_, signer) = signers.swap_remove(pos);
                h.add_zone_signing_key_mut(signer)
                    .map_err(|e| anyhow!("adding the zone key for {origin}: {e}"))?;
                h.secure_zone_mut()
                    .map_err(|e| anyhow!("signing {origin}: {e}"))?;
            }
            catalog.upsert(LowerName::new(&origin), vec![Arc::new(h)]);
        }
        let names = |v: Vec<String>| -> anyhow::Result<HashSet<LowerName>> {
            v.iter().map(|n| Ok(LowerName::new(&fqdn(n)?))).collect()
        };
        let handler = Handler {
            catalog,
            servfail: names(self.servfail)?,
            silent: names(self.silent)?,
        };

        let udp = tokio::net::UdpSocket::bind("127.0.0.1:0").await?;
        let addr = udp.local_addr()?;
        // Same port on TCP, so one SocketAddr serves both (truncated answers retry on TCP).
        let tcp = tokio::net::TcpListener::bind(addr)
            .await
            .context("binding TCP on the UDP port")?;
        let mut server = Server::new(handler);
        server.register_socket(udp);
        server.register_listener(tcp, Duration::from_secs(5), 64 * 1024);
        Ok(DnsServer {
            addr,
            anchors: Arc::new(anchors),
            _server: server,
        })
    }
}

/// A running DNS server; it stops when dropped (its tasks are aborted).
pub struct DnsServer {
    addr: SocketAddr,
    anchors: Arc<TrustAnchors>,
    _server: Server<Handler>,
}

impl DnsServer {
    /// Starts building a server.
    pub fn builder() -> DnsBuilder {
        DnsBuilder::default()
    }
    /// Where it listens (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
    /// The keys of the zones declared with [`DnsBuilder::signed_zone`], as trust anchors for
    /// a validating resolver (empty when no zone is signed).
    pub fn trust_anchors(&self) -> Arc<TrustAnchors> {
        self.anchors.clone()
    }
}

impl std::fmt::Debug for DnsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DnsServer")
            .field("addr", &self.addr)
            .finish()
    }
}

fn fqdn(s: &str) -> anyhow::Result<Name> {
    let s = if s.ends_with('.') {
        s.to_string()
    } else {
        format!("{s}.")
    };
    Name::from_str(&s).with_context(|| format!("bad name {s:?}"))
}

/// The catalog, plus names that fail on purpose.
struct Handler {
    catalog: Catalog,
    servfail: HashSet<LowerName>,
    silent: HashSet<LowerName>,
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler, T: Time>(
        &self,
        request: &Request,
        mut response_handle: R,
    ) -> ResponseInfo {
        let name = request.request_info().ok().map(|i| i.query.name().clone());
        let fail_header = || {
            let mut metadata = Metadata::new(
                request.metadata.id,
                MessageType::Response,
                request.metadata.op_code,
            );
            metadata.response_code = ResponseCode::ServFail;
            ResponseInfo::from(Header {
                metadata,
                counts: HeaderCounts::default(),
            })
        };
        if let Some(n) = &name {
            if self.silent.contains(n) {
                return fail_header();
            }
            if self.servfail.contains(n) {
                let response = MessageResponseBuilder::new(&request.queries, None)
                    .error_msg(&request.metadata, ResponseCode::ServFail);
                return match response_handle.send_response(response).await {
                    Ok(info) => info,
                    Err(_) => fail_header(),
                };
            }
        }
        self.catalog
            .handle_request::<R, T>(request, response_handle)
            .await
    }
}
