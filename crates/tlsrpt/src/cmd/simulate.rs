//! `tlsrpt simulate`: an MTA load generator speaking libtlsrpt's datagram protocol.
//!
//! Every datagram is built with core's byte-exact libtlsrpt encoder
//! (`tlsrpt_core::datagram::encode`), so the collector sees exactly what Postfix + libtlsrpt
//! would send (DATAGRAM.md §2–§5): `sts`, `tlsa` and `no-policy-found` policies (the latter
//! sometimes without a policy domain, as Postfix sent before 20250924), every failure code
//! (201–205, 301–306), IPv4 and IPv6 addresses, Postfix's multi-line EHLO reply in `h`, and
//! datagrams without `dpv` (libtlsrpt 0.5.0rc1).
//!
//! The session mix is a pure function of `--seed` (a SplitMix64 generator of our own, so the
//! sequence never changes with a dependency upgrade). With `--json` the output includes the
//! per-domain totals of what was *actually sent* (dropped datagrams excluded), which a test
//! compares with `tlsrpt report preview --json`.

use std::collections::BTreeMap;
use std::io::ErrorKind;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tlsrpt_core::PolicyType;
use tlsrpt_core::datagram::{DatagramBuf, FailureBuf, PolicyBuf};

/// Examples shown by `--help`.
pub const EXAMPLES: &str = "\
Examples:
  # 100,000 sessions over 1,000 domains, 10 % failures, as fast as the collector takes them
  tlsrpt simulate --socket ./tlsrpt.sock --count 100000 --domains 1000 --fail-pct 10

  # Like a real MTA: non-blocking sends at 50,000/s, counting drops when the queue is full
  tlsrpt simulate --socket ./tlsrpt.sock --count 500000 --rate 50000 --nonblocking

  # Machine-readable result with the expected per-domain totals
  tlsrpt simulate --socket ./tlsrpt.sock --count 1000 --seed 7 --json";

/// Arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The collector's Unix datagram socket.
    #[arg(long, value_name = "PATH")]
    socket: PathBuf,
    /// Number of delivery requests (datagrams) to send.
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    count: u64,
    /// Datagrams per second; 0 sends as fast as possible.
    #[arg(long, default_value_t = 0, value_name = "PER_S")]
    rate: u64,
    /// Number of distinct recipient (policy) domains.
    #[arg(long, default_value_t = 10, value_name = "K",
          value_parser = clap::value_parser!(u64).range(1..=10_000_000))]
    domains: u64,
    /// Percentage of sessions that fail (0–100).
    #[arg(long, default_value_t = 10.0, value_name = "P")]
    fail_pct: f64,
    /// Send with MSG_DONTWAIT like libtlsrpt does by default: a full socket queue drops the
    /// datagram (counted as dropped). Without it, sends block (libtlsrpt's
    /// `tlsrpt_set_blocking()`).
    #[arg(long)]
    nonblocking: bool,
    /// Seed of the session mix: the same seed gives the same datagrams.
    #[arg(long, default_value_t = 1, value_name = "S")]
    seed: u64,
    /// Print the result as one JSON object on stdout.
    #[arg(long)]
    json: bool,
}

/// SplitMix64 (Steele, Lea, Flood 2014): tiny, fast, and fixed forever, so a seed always
/// gives the same datagrams.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0); the modulo bias is irrelevant for a load generator.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Failure codes cycled through per policy type, so every code appears (DATAGRAM.md §3).
const STS_CODES: [u64; 8] = [201, 202, 203, 204, 205, 301, 302, 303];
const TLSA_CODES: [u64; 8] = [201, 202, 203, 204, 205, 304, 305, 306];
const NPF_CODES: [u64; 5] = [201, 202, 203, 204, 205];
const SENDING_IPS: [&str; 4] = ["192.0.2.1", "192.0.2.2", "2001:db8::1", "2001:db8::2"];

/// The name of simulated domain `i`.
pub fn domain_name(i: u64) -> String {
    format!("d{i}.sim.example")
}

/// What one simulated session produces: the datagram and whether it failed.
struct Session {
    failed: bool,
    datagram: DatagramBuf,
}

/// Builds session number `n` from the generator state. Policy type is a property of the
/// domain (as in real life), the failure decision and details come from the generator.
fn session(rng: &mut SplitMix64, domains: u64, fail_per_million: u64, n: u64) -> (u64, Session) {
    let idx = rng.below(domains);
    let domain = domain_name(idx);
    let record = format!("v=TLSRPTv1; rua=mailto:tlsrpt@{domain}");
    let mut d = DatagramBuf::new(domain.clone(), record);
    if n % 7 == 3 {
        // libtlsrpt 0.5.0rc1 (Debian trixie) sends no dpv.
        d.dpv = None;
    }
    let mx = format!("mx1.{domain}");
    let (mut policy, codes): (PolicyBuf, &[u64]) = match idx % 3 {
        0 => {
            let mut p = PolicyBuf::new(&PolicyType::Sts, Some(&domain));
            p.policy_strings = vec![
                "version: STSv1".into(),
                "mode: enforce".into(),
                format!("mx: {mx}"),
                "max_age: 604800".into(),
            ];
            p.mx_hosts = vec![mx.clone()];
            (p, &STS_CODES)
        }
        1 => {
            let mut p = PolicyBuf::new(&PolicyType::Tlsa, Some(&domain));
            p.policy_strings = vec![format!("3 1 1 {:016X}{:048X}", idx, 0xABCDu64)];
            (p, &TLSA_CODES)
        }
        _ => {
            // Postfix before 20250924 passed a NULL policy domain for no-policy-found.
            let pd = if idx.is_multiple_of(2) {
                Some(domain.as_str())
            } else {
                None
            };
            (PolicyBuf::new(&PolicyType::NoPolicyFound, pd), &NPF_CODES)
        }
    };
    let failed = rng.below(1_000_000) < fail_per_million;
    if failed {
        let pick = rng.next();
        let code = codes[(pick % codes.len() as u64) as usize];
        let mut f = FailureBuf {
            code,
            ..FailureBuf::default()
        };
        let ip = SENDING_IPS[((pick >> 8) % SENDING_IPS.len() as u64) as usize];
        f.sending_mta_ip = Some(ip.to_owned());
        if code != 201 || (pick >> 12).is_multiple_of(2) {
            f.receiving_mx_hostname = Some(mx.clone());
        }
        if (pick >> 16).is_multiple_of(2) {
            // Postfix sends the whole multi-line EHLO reply, CRLF-joined (ECOSYSTEM §2.1 b).
            f.receiving_mx_helo = Some(format!(
                "250-{mx}\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250 STARTTLS"
            ));
        }
        f.receiving_ip = Some(if ip.contains(':') {
            "2001:db8:25::7".to_owned()
        } else {
            "198.51.100.7".to_owned()
        });
        match code {
            203 => f.failure_reason_code = Some("unable_to_get_local_issuer_certificate".into()),
            205 => f.failure_reason_code = Some("self-signed_certificate".into()),
            301 if (pick >> 20).is_multiple_of(2) => {
                f.additional_information = Some(format!("https://mta-sts.{domain}/"));
            }
            _ => {}
        }
        policy.push_failure(f);
    }
    d.policies.push(policy);
    (
        idx,
        Session {
            failed,
            datagram: d,
        },
    )
}

/// Asks the kernel to wake this thread's sleeps within 1 µs instead of the default 50 µs
/// timer slack, so `--rate` can pace datagrams 20 µs apart (50,000/s) without bursts. Best
/// effort: on failure the pacing is only coarser.
fn fine_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK takes one integer argument and changes only this thread's
    // timer slack; no memory is passed.
    let rc = unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1000 as libc::c_ulong, 0, 0, 0) };
    if rc != 0 {
        eprintln!("tlsrpt: warning: could not reduce the timer slack; --rate pacing is coarser");
    }
}

/// Smallest pool of distinct pre-encoded datagrams (when `--count` is larger).
const MIN_POOL: u64 = 64 * 1024;

/// Largest pool: bounds the generator's memory (about 400 bytes per entry).
const MAX_POOL: u64 = 4 * 1024 * 1024;

/// One pre-encoded datagram of the pool.
struct PoolEntry {
    /// Index of its domain ([`domain_name`]).
    domain: u64,
    failed: bool,
    bytes: Vec<u8>,
}

/// The first `min(count, max(64 Ki, 4 × domains), 4 Mi)` sessions of the seed, encoded.
/// Session `n` of a run is pool entry `n % pool.len()`, a pure function of the arguments.
fn build_pool(seed: u64, count: u64, domains: u64, fail_per_million: u64) -> Vec<PoolEntry> {
    let size = count
        .min(MIN_POOL.max(domains.saturating_mul(4)))
        .min(MAX_POOL);
    let mut rng = SplitMix64(seed);
    (0..size)
        .map(|n| {
            let (idx, s) = session(&mut rng, domains, fail_per_million, n);
            PoolEntry {
                domain: idx,
                failed: s.failed,
                bytes: s.datagram.encode(),
            }
        })
        .collect()
}

/// Expected per-domain totals (summed over policies, as `report preview --json` would be).
#[derive(Default, serde::Serialize)]
struct Totals {
    successful: u64,
    failed: u64,
}

#[derive(serde::Serialize)]
struct Outcome {
    sent: u64,
    dropped: u64,
    errors: u64,
    /// Datagrams not attempted because the collector went away.
    not_sent: u64,
    seconds: f64,
    rate: f64,
    domains: BTreeMap<String, Totals>,
}

/// Runs the command.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if !(0.0..=100.0).contains(&args.fail_pct) || args.fail_pct.is_nan() {
        bail!("--fail-pct {}: must be between 0 and 100", args.fail_pct);
    }
    let fail_per_million = (args.fail_pct * 10_000.0).round() as u64;
    let sock = UnixDatagram::unbound().context("creating a Unix datagram socket")?;
    if args.nonblocking {
        sock.set_nonblocking(true)
            .context("setting the socket non-blocking")?;
    }

    // The datagrams are built and encoded *before* the clock starts, into a pool that the
    // send loop then cycles through: the loop is one `send` per datagram and nothing else, so
    // the measured rate is the collector's, not the generator's (building a session costs
    // about as much as sending it). The pool is big enough to reach every domain several
    // times; with `--count` at most the pool size every datagram is distinct.
    let pool = build_pool(args.seed, args.count, args.domains, fail_per_million);
    // Connect once: `sendto` with a path resolves the path in the kernel on every call,
    // which costs more than the send itself.
    if let Err(e) = sock.connect(&args.socket) {
        return Err(e).with_context(|| {
            format!(
                "sending to {}: is `tlsrpt serve` listening there?",
                args.socket.display()
            )
        });
    }
    let mut out = Outcome {
        sent: 0,
        dropped: 0,
        errors: 0,
        not_sent: 0,
        seconds: 0.0,
        rate: 0.0,
        domains: BTreeMap::new(),
    };
    // Times each pool entry was sent; per-domain totals are summed after the clock stops.
    let mut sent_per_entry = vec![0u64; pool.len()];
    let mut last_error: Option<std::io::Error> = None;
    if args.rate > 0 {
        fine_timer_slack();
    }
    let start = Instant::now();
    for n in 0..args.count {
        if args.rate > 0 {
            // Pace against the schedule, not the previous send, so the average holds, and
            // never send ahead of it: each datagram waits for its own due time, as sessions
            // of many independent MTA processes arrive spread out. (Sleeping only once 1 ms
            // ahead sent bursts of 50+ datagrams back to back, which overflow a 10-deep
            // queue whatever the receiver does.) A sender that fell behind catches up one
            // datagram per wake-up at full speed, as before.
            let due = Duration::from_secs_f64(n as f64 / args.rate as f64);
            let now = start.elapsed();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        let i = (n % pool.len().max(1) as u64) as usize;
        let Some(entry) = pool.get(i) else { break };
        match sock.send(&entry.bytes) {
            Ok(_) => {
                out.sent += 1;
                if let Some(c) = sent_per_entry.get_mut(i) {
                    *c += 1;
                }
            }
            // libtlsrpt's behaviour: a full queue drops the datagram (DATAGRAM.md §1).
            Err(e) if e.kind() == ErrorKind::WouldBlock => out.dropped += 1,
            Err(e) => {
                if out.sent == 0 && out.dropped == 0 {
                    return Err(e).with_context(|| {
                        format!(
                            "sending to {}: is `tlsrpt serve` listening there?",
                            args.socket.display()
                        )
                    });
                }
                out.errors += 1;
                let gone = matches!(e.kind(), ErrorKind::ConnectionRefused | ErrorKind::NotFound);
                last_error = Some(e);
                if gone {
                    // The collector went away (stopped or killed): nothing more can arrive,
                    // so stop and report what was sent, at the rate it was sent.
                    eprintln!(
                        "tlsrpt: warning: the collector at {} went away after {} datagrams; stopping",
                        args.socket.display(),
                        out.sent
                    );
                    break;
                }
            }
        }
    }
    out.seconds = start.elapsed().as_secs_f64();
    for (entry, &times) in pool.iter().zip(&sent_per_entry) {
        if times == 0 {
            continue;
        }
        let t = out.domains.entry(domain_name(entry.domain)).or_default();
        if entry.failed {
            t.failed += times;
        } else {
            t.successful += times;
        }
    }
    out.not_sent = args
        .count
        .saturating_sub(out.sent + out.dropped + out.errors);
    out.rate = if out.seconds > 0.0 {
        out.sent as f64 / out.seconds
    } else {
        0.0
    };
    if let Some(e) = &last_error {
        eprintln!(
            "tlsrpt: warning: {} datagrams failed to send (last error: {e})",
            out.errors
        );
    }
    if args.json {
        println!("{}", serde_json::to_string(&out)?);
    } else {
        let dropped_pct = if args.count > 0 {
            100.0 * out.dropped as f64 / args.count as f64
        } else {
            0.0
        };
        println!(
            "sent {} datagrams in {:.3} s ({:.0}/s); dropped {} ({dropped_pct:.2} %); errors {}",
            out.sent, out.seconds, out.rate, out.dropped, out.errors
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(seed: u64, count: u64, domains: u64, pct: u64) -> Vec<Session> {
        let mut rng = SplitMix64(seed);
        (0..count)
            .map(|n| session(&mut rng, domains, pct * 10_000, n).1)
            .collect()
    }

    #[test]
    fn same_seed_same_datagrams_other_seed_differs() {
        let a: Vec<_> = all(7, 200, 10, 10)
            .iter()
            .map(|s| s.datagram.encode())
            .collect();
        let b: Vec<_> = all(7, 200, 10, 10)
            .iter()
            .map(|s| s.datagram.encode())
            .collect();
        let c: Vec<_> = all(8, 200, 10, 10)
            .iter()
            .map(|s| s.datagram.encode())
            .collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn covers_every_code_type_family_and_quirk() {
        let sessions = all(1, 5000, 30, 50);
        let mut codes = std::collections::BTreeSet::new();
        let mut types = std::collections::BTreeSet::new();
        let (mut v4, mut v6, mut multiline, mut no_dpv, mut null_pd) = (0, 0, 0, 0, 0);
        for s in &sessions {
            let bytes = s.datagram.encode();
            // Everything we send must decode with core's decoder, as the collector will.
            let d = tlsrpt_core::datagram::decode(&bytes).unwrap();
            assert_eq!(d.policy_count(), 1);
            let p = &s.datagram.policies[0];
            types.insert(p.policy_type);
            if p.policy_domain.is_none() {
                null_pd += 1;
            }
            if s.datagram.dpv.is_none() {
                no_dpv += 1;
            }
            assert_eq!(s.failed, p.final_result == 1);
            assert_eq!(p.t as usize, p.failure_details.len());
            for f in &p.failure_details {
                codes.insert(f.code);
                match f.sending_mta_ip.as_deref() {
                    Some(ip) if ip.contains(':') => v6 += 1,
                    Some(_) => v4 += 1,
                    None => {}
                }
                if f.receiving_mx_helo
                    .as_deref()
                    .is_some_and(|h| h.contains("\r\n"))
                {
                    multiline += 1;
                }
            }
        }
        let expected: std::collections::BTreeSet<u64> =
            [201, 202, 203, 204, 205, 301, 302, 303, 304, 305, 306]
                .into_iter()
                .collect();
        assert_eq!(codes, expected);
        for c in &codes {
            assert!(tlsrpt_core::ResultType::from_datagram_code(*c).is_some());
        }
        assert_eq!(types, [1, 2, 9].into_iter().collect());
        assert!(v4 > 0 && v6 > 0 && multiline > 0 && no_dpv > 0 && null_pd > 0);
    }

    #[test]
    fn pool_is_the_first_sessions_of_the_seed_and_bounded() {
        let pool = build_pool(5, 300, 10, 100_000);
        let direct = all(5, 300, 10, 10);
        assert_eq!(pool.len(), 300);
        for (p, s) in pool.iter().zip(&direct) {
            assert_eq!(p.bytes, s.datagram.encode());
            assert_eq!(p.failed, s.failed);
            assert_eq!(domain_name(p.domain), s.datagram.domain);
        }
        // A long run cycles through at least 64 Ki distinct sessions, or 4 per domain.
        assert_eq!(build_pool(1, 10_000_000, 10, 0).len(), MIN_POOL as usize);
        assert_eq!(build_pool(1, 10_000_000, 100_000, 0).len(), 400_000);
    }

    #[test]
    fn fail_pct_is_respected() {
        let n = 20_000;
        let failed = all(3, n, 10, 10).iter().filter(|s| s.failed).count() as f64;
        let pct = 100.0 * failed / n as f64;
        assert!((8.5..11.5).contains(&pct), "{pct}");
        assert!(all(3, 1000, 10, 0).iter().all(|s| !s.failed));
        assert!(all(3, 1000, 10, 100).iter().all(|s| s.failed));
    }
}
