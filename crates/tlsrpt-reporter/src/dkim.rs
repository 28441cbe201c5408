//! DKIM signing of report messages (RFC 8460 §3: "the report message MUST be signed with a
//! valid DKIM signature"; REQUIREMENTS MAIL-06, MAIL-11, MAIL-12, MAIL-13).
//!
//! * Keys come from PEM files: RSA as PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1
//!   (`BEGIN RSA PRIVATE KEY`), Ed25519 as PKCS#8 (v1 as OpenSSL writes it, or v2 with the
//!   public key). These are what mail-auth 0.13.3's ring backend accepts; other PEM types
//!   (EC/SEC1, encrypted keys, certificates) are refused with a message naming the file and
//!   the PEM type, never the key material.
//! * Several keys (e.g. one RSA and one Ed25519, RFC 8463 dual signing) each add a signature.
//! * Signed headers: [`SIGNED_HEADERS`], which include both TLS-Report-* fields (MAIL-06).
//! * Never `l=` (MAIL-12): the body length tag would let anyone append data.
//! * Canonicalisation relaxed/relaxed: survives relays that re-fold headers or trailing
//!   whitespace, and the body is base64 lines anyway.
//! * `d=` should be the TLS-Report-Submitter domain, which is also the From domain (MAIL-11);
//!   [`Signer::check_alignment`] says when it is not.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use mail_auth::common::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::common::headers::HeaderWriter as _;
use mail_auth::dkim::{Canonicalization, DkimSigner, Done};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tlsrpt_core::domain;

/// Header fields covered by our signatures (REQUIREMENTS MAIL-06, MAIL-11).
pub const SIGNED_HEADERS: &[&str] = &[
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "TLS-Report-Domain",
    "TLS-Report-Submitter",
    "Auto-Submitted",
    "TLS-Required",
];

/// Largest key file read (a 16384-bit RSA PKCS#8 PEM is about 13 KB).
pub const MAX_KEY_FILE: u64 = 64 * 1024;

/// One configured key: `dkim = [{ domain = "example.org", selector = "tlsrpt", key = "..." }]`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct DkimKeyConfig {
    /// `d=`: the signing domain (should be the TLS-Report-Submitter domain, MAIL-11).
    pub domain: String,
    /// `s=`: the selector; the public key is at `<selector>._domainkey.<domain>`.
    pub selector: String,
    /// The PEM file with the private key.
    pub key: PathBuf,
}

/// Why a key could not be loaded or a message not signed. Messages name the file and the
/// problem; they never contain key material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DkimError {
    /// The file could not be read.
    #[error("DKIM key {path}: cannot read: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error kind.
        reason: String,
    },
    /// The file is larger than [`MAX_KEY_FILE`].
    #[error("DKIM key {path}: larger than {MAX_KEY_FILE} bytes, not a key file")]
    TooLarge {
        /// The file.
        path: String,
    },
    /// No usable PEM private key block in the file.
    #[error(
        "DKIM key {path}: {reason} (expected PEM \"PRIVATE KEY\" (PKCS#8, RSA or Ed25519) or \
         \"RSA PRIVATE KEY\" (PKCS#1))"
    )]
    Pem {
        /// The file.
        path: String,
        /// What was wrong, e.g. "EC PRIVATE KEY is not usable for DKIM".
        reason: String,
    },
    /// The key block was found but the crypto library rejected it.
    #[error("DKIM key {path}: {kind} key rejected: {reason}")]
    Rejected {
        /// The file.
        path: String,
        /// `RSA` or `Ed25519` or `PKCS#8`.
        kind: &'static str,
        /// The library's reason (e.g. "InvalidEncoding"), never key bytes.
        reason: String,
    },
    /// `domain` or `selector` is not a usable DNS label sequence.
    #[error("DKIM key {path}: {field} {value:?} is not a valid domain name / selector")]
    Name {
        /// The file.
        path: String,
        /// `domain` or `selector`.
        field: &'static str,
        /// The value.
        value: String,
    },
    /// Signing failed.
    #[error("DKIM signing with d={domain} s={selector} failed: {reason}")]
    Sign {
        /// `d=`
        domain: String,
        /// `s=`
        selector: String,
        /// Why.
        reason: String,
    },
}

enum KeySigner {
    Rsa(DkimSigner<RsaKey<Sha256>, Done>),
    Ed25519(DkimSigner<Ed25519Key, Done>),
}

/// One loaded key with its signer.
struct Loaded {
    domain: String,
    selector: String,
    public_key: Vec<u8>,
    signer: KeySigner,
}

/// The DKIM signer: every configured key, loaded once at start-up.
pub struct Signer {
    keys: Vec<Loaded>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key material.
        f.debug_list()
            .entries(
                self.keys
                    .iter()
                    .map(|k| format!("{}._domainkey.{} ({})", k.selector, k.domain, k.algorithm())),
            )
            .finish()
    }
}

impl Loaded {
    fn algorithm(&self) -> &'static str {
        match self.signer {
            KeySigner::Rsa(_) => "rsa",
            KeySigner::Ed25519(_) => "ed25519",
        }
    }
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl Signer {
    /// Loads every key. An empty list gives a signer that cannot sign ([`Signer::is_empty`]):
    /// the caller must then refuse to send mail (RFC 8460 §3 requires a signature).
    pub fn load(configs: &[DkimKeyConfig]) -> Result<Self, DkimError> {
        let mut keys = Vec::with_capacity(configs.len());
        for c in configs {
            keys.push(load_one(c)?);
        }
        Ok(Signer { keys })
    }

    /// True if no key is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The `(name, TXT value)` of the key record to publish per key, with `s=tlsrpt`
    /// (REQUIREMENTS MAIL-13; RFC 6376's default `s=*` would also do, `s=email` would not).
    pub fn dns_records(&self) -> Vec<(String, String)> {
        self.keys
            .iter()
            .map(|k| {
                (
                    format!("{}._domainkey.{}", k.selector, k.domain),
                    format!(
                        "v=DKIM1; k={}; s=tlsrpt; p={}",
                        k.algorithm(),
                        base64::engine::general_purpose::STANDARD.encode(match k.signer {
                            // The usual published form (`openssl rsa -pubout`, RFC 6376
                            // App. C): SubjectPublicKeyInfo, not the bare RSAPublicKey.
                            KeySigner::Rsa(_) => rsa_spki(&k.public_key),
                            KeySigner::Ed25519(_) => k.public_key.clone(),
                        })
                    ),
                )
            })
            .collect()
    }

    /// Domains (`d=`) that do not match `submitter` (the TLS-Report-Submitter / From domain);
    /// REQUIREMENTS MAIL-11 recommends they match, receivers such as mox require alignment.
    pub fn check_alignment(&self, submitter: &str) -> Vec<String> {
        let s = submitter.trim_end_matches('.').to_ascii_lowercase();
        self.keys
            .iter()
            .filter(|k| {
                let d = k.domain.trim_end_matches('.').to_ascii_lowercase();
                !(d == s || domain::is_subdomain_of(&s, &d) || domain::is_subdomain_of(&d, &s))
            })
            .map(|k| k.domain.clone())
            .collect()
    }

    /// Signs `message` with every key and returns it with the `DKIM-Signature` fields
    /// prepended. Fails if no key is configured.
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, DkimError> {
        if self.keys.is_empty() {
            return Err(DkimError::Sign {
                domain: String::new(),
                selector: String::new(),
                reason: "no DKIM key configured (RFC 8460 §3 requires a signature)".into(),
            });
        }
        let mut headers = String::new();
        for k in &self.keys {
            let sig = match &k.signer {
                KeySigner::Rsa(s) => s.sign(message),
                KeySigner::Ed25519(s) => s.sign(message),
            }
            .map_err(|e| DkimError::Sign {
                domain: k.domain.clone(),
                selector: k.selector.clone(),
                reason: e.to_string(),
            })?;
            headers.push_str(&sig.to_header());
        }
        let mut out = Vec::with_capacity(headers.len() + message.len());
        out.extend_from_slice(headers.as_bytes());
        out.extend_from_slice(message);
        Ok(out)
    }
}

fn load_one(c: &DkimKeyConfig) -> Result<Loaded, DkimError> {
    let path = c.key.display().to_string();
    for (field, value) in [("domain", &c.domain), ("selector", &c.selector)] {
        if !valid_name(value.trim_end_matches('.')) {
            return Err(DkimError::Name {
                path: path.clone(),
                field,
                value: value.chars().take(64).collect(),
            });
        }
    }
    let pem = read_limited(&c.key)?;
    let domain = c.domain.trim_end_matches('.').to_ascii_lowercase();
    let selector = c.selector.clone();
    let pem_err = |reason: &str| DkimError::Pem {
        path: path.clone(),
        reason: reason.to_string(),
    };
    // Report which block type is there without echoing anything else from the file.
    let label = pem_label(&pem);
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| match label.as_deref() {
        Some("ENCRYPTED PRIVATE KEY") => pem_err("the key is encrypted; store it unencrypted"),
        Some(l) => pem_err(&format!("no private key block ({l} found)")),
        None => pem_err("no PEM block found"),
    })?;
    let rejected = |kind: &'static str, e: mail_auth::Error| DkimError::Rejected {
        path: path.clone(),
        kind,
        reason: sanitize(&e.to_string()),
    };
    let signer_for_rsa = |k: RsaKey<Sha256>| {
        let public_key = k.public_key();
        let s = DkimSigner::from_key(k)
            .domain(domain.clone())
            .selector(selector.clone())
            .headers(SIGNED_HEADERS.iter().copied())
            .header_canonicalization(Canonicalization::Relaxed)
            .body_canonicalization(Canonicalization::Relaxed)
            // REQUIREMENTS MAIL-12: never l=.
            .body_length(false);
        (public_key, KeySigner::Rsa(s))
    };
    let (public_key, signer) = match key {
        PrivateKeyDer::Pkcs1(_) => {
            signer_for_rsa(RsaKey::<Sha256>::from_key_der(key).map_err(|e| rejected("RSA", e))?)
        }
        PrivateKeyDer::Pkcs8(der) => {
            let bytes = der.secret_pkcs8_der().to_vec();
            match RsaKey::<Sha256>::from_key_der(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                bytes.clone(),
            ))) {
                Ok(k) => signer_for_rsa(k),
                Err(rsa_err) => {
                    // Not RSA: try Ed25519 (OpenSSL writes PKCS#8 v1 without the public key,
                    // which ring accepts only through the "maybe unchecked" constructor).
                    let k = Ed25519Key::from_pkcs8_maybe_unchecked_der(&bytes).map_err(|_| {
                        DkimError::Rejected {
                            path: path.clone(),
                            kind: "PKCS#8",
                            reason: format!(
                                "neither RSA ({}) nor Ed25519",
                                sanitize(&rsa_err.to_string())
                            ),
                        }
                    })?;
                    let public_key = k.public_key();
                    let s = DkimSigner::from_key(k)
                        .domain(domain.clone())
                        .selector(selector.clone())
                        .headers(SIGNED_HEADERS.iter().copied())
                        .header_canonicalization(Canonicalization::Relaxed)
                        .body_canonicalization(Canonicalization::Relaxed)
                        .body_length(false);
                    (public_key, KeySigner::Ed25519(s))
                }
            }
        }
        PrivateKeyDer::Sec1(_) => {
            return Err(pem_err(
                "EC PRIVATE KEY (SEC1) is not usable for DKIM (use RSA or Ed25519)",
            ));
        }
        _ => return Err(pem_err("unsupported private key format")),
    };
    Ok(Loaded {
        domain,
        selector,
        public_key,
        signer,
    })
}

/// DER length octets.
fn der_len(n: usize, out: &mut Vec<u8>) {
    if n < 0x80 {
        out.push(n as u8);
    } else {
        let bytes: Vec<u8> = n
            .to_be_bytes()
            .into_iter()
            .skip_while(|b| *b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
}

/// Wraps a DER RSAPublicKey into a SubjectPublicKeyInfo (rsaEncryption, NULL parameters).
fn rsa_spki(rsa_public_key: &[u8]) -> Vec<u8> {
    const ALG: &[u8] = &[
        0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
    ];
    let mut bit_string = vec![0x03];
    der_len(rsa_public_key.len() + 1, &mut bit_string);
    bit_string.push(0x00);
    bit_string.extend_from_slice(rsa_public_key);
    let mut out = vec![0x30];
    der_len(ALG.len() + bit_string.len(), &mut out);
    out.extend_from_slice(ALG);
    out.extend_from_slice(&bit_string);
    out
}

fn read_limited(path: &Path) -> Result<Vec<u8>, DkimError> {
    use std::io::Read as _;
    let p = path.display().to_string();
    let f = std::fs::File::open(path).map_err(|e| DkimError::Read {
        path: p.clone(),
        reason: e.kind().to_string(),
    })?;
    let mut buf = Vec::new();
    f.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut buf)
        .map_err(|e| DkimError::Read {
            path: p.clone(),
            reason: e.kind().to_string(),
        })?;
    if buf.len() as u64 > MAX_KEY_FILE {
        return Err(DkimError::TooLarge { path: p });
    }
    Ok(buf)
}

/// The label of the first `-----BEGIN <label>-----` line, if it looks like one.
fn pem_label(pem: &[u8]) -> Option<String> {
    let text = std::str::from_utf8(pem).ok()?;
    let line = text.lines().find(|l| l.starts_with("-----BEGIN "))?;
    let label = line.strip_prefix("-----BEGIN ")?.strip_suffix("-----")?;
    (label.len() <= 40 && label.bytes().all(|b| b.is_ascii_uppercase() || b == b' '))
        .then(|| label.to_string())
}

/// Library error texts are short words ("InvalidEncoding"); keep only such characters and
/// cap the length, so nothing resembling key material can reach a log.
fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || " :_-().,".contains(*c))
        .take(120)
        .collect()
}
