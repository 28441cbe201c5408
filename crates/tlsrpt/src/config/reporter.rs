//! The `[reporter]` delivery keys (issue 4) and the ONE place they are mapped onto the
//! reporter crate's settings ([`ReporterConfig::delivery_settings`],
//! [`ReporterConfig::run_options`]), used by both `tlsrpt serve` and `tlsrpt report send`.
//!
//! ```toml
//! [reporter]
//! enabled = true                       # run the reporter role in `tlsrpt serve`
//! organization_name = "Example Inc."
//! contact_info = "tlsrpt@example.org"
//! from = "tlsrpt-noreply@example.org"
//! dkim = [{ domain = "example.org", selector = "tlsrpt", key = "/etc/tlsrpt/dkim.pem" }]
//! smtp_relay = "127.0.0.1:25"
//! smtp_starttls = "opportunistic"      # off | opportunistic | required
//! smtp_username = "tlsrpt"             # with smtp_password_file
//! smtp_password_file = "/etc/tlsrpt/smtp.pw"
//! nameservers = ["127.0.0.1:5353"]     # default: the system resolver
//! allow_private_targets = false        # tests only: turns the SSRF guard off
//! extra_ca = "/path/to/ca.pem"
//! delay = "30m"                        # after 24:00 UTC before building the day
//! window = "4h"                        # send times spread over this (RFC 8460 §4.1)
//! send_all_success = true              # RPT-20: also report days without failures
//! use_collected_record = false         # DNS-19: fall back to the record the MTA saw
//! rules = [{ domain = "example.net", action = "suppress" },
//!          { domain = "*.example.com", action = "rewrite", to = "mailto:tls@example.com" }]
//! claim_lease = "10m"                  # a killed sender's claim is retried after this
//! omit_fields = ["sending-mta-ip"]     # RPT-19: also receiving-mx-helo, failure-reason-code
//! accept_invalid_certs = false         # HTTP-04: POST despite certificate errors (logged)
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use tlsrpt_reporter::deliver::{DeliverySettings, SmtpSettings, StartTls};
use tlsrpt_reporter::dkim::DkimKeyConfig;
use tlsrpt_reporter::outbox::BuildOptions;
use tlsrpt_reporter::policy::{DestinationPolicy, DestinationRule};
use tlsrpt_reporter::run::RunOptions;

use super::{RawReporter, ReporterConfig, join};

/// Longest accepted `delay` or `window`: a report sent more than a day late is stale, and
/// the counters may be pruned after two days (RPT-21).
pub const MAX_SCHEDULE_SPAN: Duration = Duration::from_secs(24 * 3600);

/// One `dkim = [...]` entry as written.
#[derive(Deserialize, Debug, Clone)]
#[serde(deny_unknown_fields)]
pub(super) struct RawDkim {
    domain: String,
    selector: String,
    key: PathBuf,
}

/// The resolved delivery keys of `[reporter]` (all optional; [`Default`] is "not set").
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ReporterDelivery {
    /// Run the reporter role in `tlsrpt serve`.
    pub enabled: bool,
    /// `From:` of report mail.
    pub from: Option<String>,
    /// DKIM keys (paths resolved against the config file's folder).
    pub dkim: Vec<(String, String, PathBuf)>,
    /// `host:port` of the SMTP relay.
    pub smtp_relay: Option<String>,
    /// STARTTLS towards the relay (default opportunistic).
    pub smtp_starttls: Option<StartTls>,
    /// AUTH user.
    pub smtp_username: Option<String>,
    /// File holding the AUTH password.
    pub smtp_password_file: Option<PathBuf>,
    /// Name servers (empty: the system's).
    pub nameservers: Vec<SocketAddr>,
    /// Turns the SSRF guard off (tests).
    pub allow_private_targets: bool,
    /// Extra CA certificates (PEM) for HTTPS and the relay.
    pub extra_ca: Option<PathBuf>,
    /// Wait after the day closes (default 30 min).
    pub delay: Option<Duration>,
    /// Spread window (default 4 h).
    pub window: Option<Duration>,
    /// RPT-20 (default true).
    pub send_all_success: Option<bool>,
    /// DNS-19 fallback to `pr`.
    pub use_collected_record: bool,
    /// Destination rules.
    pub rules: Vec<DestinationRule>,
    /// Lease of a delivery claim (default 10 min; see `tlsrpt_store::outbox`).
    pub claim_lease: Option<Duration>,
    /// Failure-detail fields left out of the reports we write (RPT-19, SEC-07).
    pub omit_fields: tlsrpt_core::OmittedFields,
    /// POST despite certificate errors (HTTP-04, SEC-04; off by default, logged when on).
    pub accept_invalid_certs: bool,
}

fn span(key: &str, s: &str) -> anyhow::Result<Duration> {
    let sd: jiff::SignedDuration = s.parse().with_context(|| {
        format!("[reporter] {key}: {s:?} is not a duration like \"30m\" or \"4h\"")
    })?;
    let d =
        Duration::try_from(sd).with_context(|| format!("[reporter] {key}: {s:?} is negative"))?;
    if d > MAX_SCHEDULE_SPAN {
        bail!("[reporter] {key}: {s:?} is more than 24 hours");
    }
    Ok(d)
}

/// Validates and resolves the delivery keys of `raw` (paths against `base`).
pub(super) fn resolve(raw: &RawReporter, base: &Path) -> anyhow::Result<ReporterDelivery> {
    let text = |key: &str, v: &Option<String>| -> anyhow::Result<Option<String>> {
        match v {
            Some(s) if s.trim().is_empty() => bail!("[reporter] {key}: must not be empty"),
            v => Ok(v.clone()),
        }
    };
    let d = ReporterDelivery {
        enabled: raw.enabled.unwrap_or(false),
        from: text("from", &raw.from)?,
        dkim: raw
            .dkim
            .iter()
            .flatten()
            .map(|k| (k.domain.clone(), k.selector.clone(), join(base, &k.key)))
            .collect(),
        smtp_relay: text("smtp_relay", &raw.smtp_relay)?,
        smtp_starttls: raw.smtp_starttls,
        smtp_username: text("smtp_username", &raw.smtp_username)?,
        smtp_password_file: raw.smtp_password_file.as_ref().map(|p| join(base, p)),
        nameservers: raw.nameservers.clone().unwrap_or_default(),
        allow_private_targets: raw.allow_private_targets.unwrap_or(false),
        extra_ca: raw.extra_ca.as_ref().map(|p| join(base, p)),
        delay: raw.delay.as_deref().map(|s| span("delay", s)).transpose()?,
        window: raw
            .window
            .as_deref()
            .map(|s| span("window", s))
            .transpose()?,
        send_all_success: raw.send_all_success,
        use_collected_record: raw.use_collected_record.unwrap_or(false),
        rules: raw.rules.clone().unwrap_or_default(),
        claim_lease: raw
            .claim_lease
            .as_deref()
            .map(|s| span("claim_lease", s))
            .transpose()?,
        omit_fields: {
            let mut omit = tlsrpt_core::OmittedFields::default();
            for name in raw.omit_fields.iter().flatten() {
                if !omit.omit(name) {
                    bail!(
                        "[reporter] omit_fields: {name:?} cannot be omitted; the optional detail \
                         fields are {}",
                        tlsrpt_core::OmittedFields::NAMES.join(", ")
                    );
                }
            }
            omit
        },
        accept_invalid_certs: raw.accept_invalid_certs.unwrap_or(false),
    };
    if d.enabled && (raw.organization_name.is_none() || raw.contact_info.is_none()) {
        bail!("[reporter] enabled = true needs organization_name and contact_info (RFC 8460 §4.4)");
    }
    if d.claim_lease.is_some_and(|l| l < Duration::from_secs(1)) {
        bail!("[reporter] claim_lease: must be at least 1 second");
    }
    if d.smtp_username.is_some() != d.smtp_password_file.is_some() {
        bail!("[reporter] smtp_username and smtp_password_file go together");
    }
    if d.smtp_relay.is_some() && d.from.is_none() {
        bail!("[reporter] from: required when smtp_relay is set (the From: of report mail)");
    }
    if d.smtp_relay.is_some() && d.dkim.is_empty() {
        bail!(
            "[reporter] dkim: at least one key is required when smtp_relay is set \
             (RFC 8460 §3: report mail MUST be DKIM-signed)"
        );
    }
    DestinationPolicy::new(&d.rules).map_err(|e| anyhow::anyhow!("[reporter] {e}"))?;
    if d.window.is_some_and(|w| w.is_zero()) {
        bail!("[reporter] window: must be more than 0 (RFC 8460 §4.1: do not send all at once)");
    }
    Ok(d)
}

impl ReporterConfig {
    /// `organization-name` and `contact-info`, required to send (placeholders are fine for a
    /// preview, never for reports that leave the host).
    pub fn identity(&self) -> anyhow::Result<(String, String)> {
        match (&self.organization_name, &self.contact_info) {
            (Some(o), Some(c)) => Ok((o.clone(), c.clone())),
            _ => bail!(
                "[reporter] organization_name and contact_info must be set to send reports \
                 (RFC 8460 §4.4)"
            ),
        }
    }

    /// The deliverer's settings.
    pub fn delivery_settings(&self) -> DeliverySettings {
        let d = &self.delivery;
        let mut s = DeliverySettings::new(d.from.clone().unwrap_or_default());
        s.dkim = d
            .dkim
            .iter()
            .map(|(domain, selector, key)| DkimKeyConfig {
                domain: domain.clone(),
                selector: selector.clone(),
                key: key.clone(),
            })
            .collect();
        s.smtp = d.smtp_relay.as_ref().map(|relay| {
            let mut m = SmtpSettings::new(relay.clone());
            if let Some(t) = d.smtp_starttls {
                m.starttls = t;
            }
            m.username = d.smtp_username.clone();
            m.password_file = d.smtp_password_file.clone();
            m.extra_ca = d.extra_ca.clone();
            m
        });
        s.http.allow_private_targets = d.allow_private_targets;
        // REQUIREMENTS HTTP-04, SEC-04: the operator's choice; the HTTP client logs it.
        s.http.accept_invalid_certs = d.accept_invalid_certs;
        s.http.extra_ca = d.extra_ca.clone();
        s.nameservers = d.nameservers.clone();
        s
    }

    /// The scheduler's options.
    pub fn run_options(&self) -> anyhow::Result<RunOptions> {
        let (org, contact) = self.identity()?;
        let d = &self.delivery;
        let mut b = BuildOptions::new(&org, &contact);
        if let Some(x) = d.delay {
            b.delay = x;
        }
        if let Some(x) = d.window {
            b.window = x;
        }
        if let Some(x) = d.send_all_success {
            b.send_all_success = x;
        }
        b.omit = d.omit_fields;
        let mut o = RunOptions::new(b);
        o.use_collected_record = d.use_collected_record;
        if let Some(l) = d.claim_lease {
            o.lease = l;
        }
        o.rules =
            DestinationPolicy::new(&d.rules).map_err(|e| anyhow::anyhow!("[reporter] {e}"))?;
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    const FULL: &str = r#"
[reporter]
enabled = true
organization_name = "Example Inc."
contact_info = "tlsrpt@example.org"
from = "tlsrpt-noreply@example.org"
dkim = [{ domain = "example.org", selector = "tlsrpt", key = "dkim.pem" }]
smtp_relay = "127.0.0.1:25"
smtp_starttls = "required"
smtp_username = "u"
smtp_password_file = "pw"
nameservers = ["127.0.0.1:5353"]
allow_private_targets = true
extra_ca = "/ca.pem"
delay = "45m"
window = "2h"
send_all_success = false
use_collected_record = true
rules = [{ domain = "example.net", action = "suppress" }]
"#;

    /// RPT-19 / SEC-07 and HTTP-04 / SEC-04 reach the reporter's settings; off by default.
    #[test]
    fn rpt_19_sec_04_omit_fields_and_accept_invalid_certs() {
        let c = Config::from_toml(
            "[reporter]\norganization_name = \"E\"\ncontact_info = \"t@example.org\"\n\
             omit_fields = [\"sending-mta-ip\", \"failure-reason-code\"]\n\
             accept_invalid_certs = true\n",
            Path::new("/"),
        )
        .unwrap();
        let o = c.reporter.run_options().unwrap();
        assert!(o.build.omit.sending_mta_ip && o.build.omit.failure_reason_code);
        assert!(!o.build.omit.receiving_mx_helo);
        assert!(c.reporter.delivery_settings().http.accept_invalid_certs);
        let d = Config::from_toml(
            "[reporter]\norganization_name = \"E\"\ncontact_info = \"t@example.org\"\n",
            Path::new("/"),
        )
        .unwrap();
        assert!(d.reporter.run_options().unwrap().build.omit.is_empty());
        assert!(!d.reporter.delivery_settings().http.accept_invalid_certs);
        let e = format!(
            "{:#}",
            Config::from_toml(
                "[reporter]\nomit_fields = [\"receiving-ip\"]\n",
                Path::new("/")
            )
            .unwrap_err()
        );
        assert!(
            e.contains("omit_fields") && e.contains("receiving-ip") && e.contains("sending-mta-ip"),
            "{e}"
        );
    }

    #[test]
    fn delivery_keys_parse_and_map() {
        let c = Config::from_toml(FULL, Path::new("/etc/tlsrpt")).unwrap();
        let d = &c.reporter.delivery;
        assert!(d.enabled);
        assert_eq!(d.dkim[0].2, Path::new("/etc/tlsrpt/dkim.pem"));
        assert_eq!(d.nameservers, vec!["127.0.0.1:5353".parse().unwrap()]);
        let s = c.reporter.delivery_settings();
        assert_eq!(s.from, "tlsrpt-noreply@example.org");
        let smtp = s.smtp.unwrap();
        assert_eq!(smtp.starttls, StartTls::Required);
        assert_eq!(
            smtp.password_file.as_deref(),
            Some(Path::new("/etc/tlsrpt/pw"))
        );
        assert!(s.http.allow_private_targets);
        assert_eq!(s.http.extra_ca.as_deref(), Some(Path::new("/ca.pem")));
        let o = c.reporter.run_options().unwrap();
        assert_eq!(o.build.delay, Duration::from_secs(45 * 60));
        assert_eq!(o.build.window, Duration::from_secs(7200));
        assert!(!o.build.send_all_success);
        assert!(o.use_collected_record);
    }

    #[test]
    fn defaults_and_errors() {
        let c = Config::from_toml(
            "[reporter]\norganization_name = \"o\"\ncontact_info = \"a@b.example\"\n",
            Path::new("/x"),
        )
        .unwrap();
        let o = c.reporter.run_options().unwrap();
        assert!(!c.reporter.delivery.enabled);
        assert_eq!(o.build.delay, tlsrpt_reporter::schedule::DEFAULT_DELAY);
        assert_eq!(o.build.window, tlsrpt_reporter::schedule::DEFAULT_WINDOW);
        assert!(
            o.build.send_all_success,
            "RPT-20: heartbeat reports by default"
        );
        for (bad, needle) in [
            ("smtp_relay = \"h:25\"\n", "from"),
            ("from = \"a@b.example\"\nsmtp_relay = \"h:25\"\n", "dkim"),
            ("smtp_username = \"u\"\n", "smtp_password_file"),
            ("delay = \"25h\"\n", "24 hours"),
            ("window = \"0s\"\n", "window"),
            (
                "rules = [{ domain = \"x.example\", action = \"rewrite\" }]\n",
                "rules",
            ),
            ("smtp_starttls = \"maybe\"\n", "smtp_starttls"),
            ("enabled = true\n", "organization_name"),
            ("claim_lease = \"0s\"\n", "claim_lease"),
        ] {
            let e = Config::from_toml(&format!("[reporter]\n{bad}"), Path::new("/x")).unwrap_err();
            let msg = format!("{e:#}");
            assert!(msg.contains(needle), "{bad}: {msg}");
        }
        let c = Config::from_toml("", Path::new("/x")).unwrap();
        assert!(
            c.reporter.run_options().is_err(),
            "identity required to send"
        );
    }
}
