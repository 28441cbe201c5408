//! Interoperability with the real libtlsrpt (Debian's `libtlsrpt0-dev`, ECOSYSTEM.md §2.2).
//!
//! A small C helper (`tests/libtlsrpt/send.c`) makes the same API calls Postfix makes. The
//! test checks that our encoder produces exactly libtlsrpt's bytes for the same requests, that
//! our decoder reads them back to the same values, and that the collector counts them.
//!
//! The library is a test-only peer: where `/usr/include/tlsrpt.h` or a C compiler is missing,
//! the test says so on stderr and passes without checking (it cannot build the peer).

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use tlsrpt_collector::{CollectorConfig, MemorySink, bind};
use tlsrpt_core::datagram::{DatagramBuf, FailureBuf, PolicyBuf, decode};
use tlsrpt_core::tally::Tally;
use tlsrpt_core::{PolicyType, ResultType};

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

/// The requests `send.c` makes, built with our types.
fn expected_requests() -> Vec<DatagramBuf> {
    let mut out = Vec::new();

    let mut d = DatagramBuf::new("example.com", "v=TLSRPTv1; rua=mailto:tlsrpt@example.com");
    let mut p = PolicyBuf::new(&PolicyType::Sts, Some("example.com"));
    p.policy_strings = [
        "version: STSv1",
        "mode: enforce",
        "mx: mail.example.com",
        "max_age: 604800",
    ]
    .map(String::from)
    .to_vec();
    p.mx_hosts = vec!["mail.example.com".into()];
    d.policies.push(p);
    out.push(d);

    let mut d = DatagramBuf::new(
        "example.org",
        "v=TLSRPTv1;rua=https://rpt.example.org/tlsrpt",
    );
    let mut p = PolicyBuf::new(&PolicyType::Tlsa, Some("example.org"));
    p.policy_strings =
        vec!["3 1 1 0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF".into()];
    p.push_failure(FailureBuf {
        sending_mta_ip: s("192.0.2.1"),
        receiving_mx_hostname: s("mx.example.org"),
        receiving_mx_helo: s("250-mx.example.org\r\n250-PIPELINING\r\n250 STARTTLS"),
        receiving_ip: s("198.51.100.7"),
        failure_reason_code: s("self-signed_certificate"),
        ..FailureBuf::new(&ResultType::ValidationFailure)
    });
    d.policies.push(p);
    out.push(d);

    let mut d = DatagramBuf::new(
        "example.net",
        "v=TLSRPTv1; rua=mailto:a@example.net,mailto:b@example.net",
    );
    let mut p = PolicyBuf::new(&PolicyType::NoPolicyFound, None);
    p.push_failure(FailureBuf {
        sending_mta_ip: s("2001:db8::1"),
        receiving_mx_hostname: s("mx.example.net"),
        receiving_ip: s("2001:db8::25"),
        ..FailureBuf::new(&ResultType::StarttlsNotSupported)
    });
    d.policies.push(p);
    out.push(d);

    let mut d = DatagramBuf::new(
        "xn--bcher-kva.example",
        "v=TLSRPTv1; rua=mailto:\"q\"\\x@example\t\u{1}\u{7f}ü",
    );
    let mut p = PolicyBuf::new(&PolicyType::Sts, Some("xn--bcher-kva.example"));
    p.policy_strings = vec!["line\nbreak\rcr\u{8}bs\u{c}ff/slash\u{1f}".into()];
    p.push_failure(FailureBuf {
        sending_mta_ip: s("192.0.2.9"),
        receiving_mx_hostname: s("mx.xn--bcher-kva.example"),
        receiving_mx_helo: s("mx.xn--bcher-kva.example"),
        receiving_ip: s("198.51.100.9"),
        additional_information: s("https://example/info?a=\"1\""),
        failure_reason_code: s("http-404"),
        ..FailureBuf::new(&ResultType::StsPolicyFetchError)
    });
    d.policies.push(p);
    out.push(d);

    let mut d = DatagramBuf::new("example.com", "v=TLSRPTv1; rua=mailto:tlsrpt@example.com");
    let mut sts = PolicyBuf::new(&PolicyType::Sts, Some("example.com"));
    sts.mx_hosts = vec!["*.example.com".into(), "mx.example.net".into()];
    d.policies.push(sts);
    let mut tlsa = PolicyBuf::new(&PolicyType::Tlsa, Some("mx.example.com"));
    tlsa.policy_strings = vec!["3 1 1 AB".into(), "2 0 1 CD".into()];
    tlsa.push_failure(FailureBuf {
        sending_mta_ip: s("192.0.2.1"),
        ..FailureBuf::new(&ResultType::TlsaInvalid)
    });
    tlsa.push_failure(FailureBuf {
        code: 901, // TLSRPT_UNFINISHED_POLICY
        ..FailureBuf::default()
    });
    d.policies.push(tlsa);
    out.push(d);
    out
}

/// Builds the helper, or `None` (with a note) when libtlsrpt's headers or cc are missing.
/// Under CI (`CI` set) a missing peer is a failure, not a skip: `.ci/run` installs it.
fn build_helper(dir: &Path) -> Option<std::path::PathBuf> {
    if !Path::new("/usr/include/tlsrpt.h").exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "libtlsrpt0-dev is not installed under CI: run scripts/install-libtlsrpt.sh"
        );
        eprintln!(
            "SKIP: libtlsrpt0-dev not installed (scripts/install-libtlsrpt.sh): interop check not run"
        );
        return None;
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/libtlsrpt/send.c");
    let bin = dir.join("send");
    let out = Command::new("cc")
        .arg("-o")
        .arg(&bin)
        .arg(&src)
        .arg("-ltlsrpt")
        .output();
    match out {
        Ok(o) if o.status.success() => Some(bin),
        Ok(o) => panic!(
            "tlsrpt.h is installed but the helper does not build: {}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "no C compiler under CI ({e})"
            );
            eprintln!("SKIP: no C compiler ({e}): interop check not run");
            None
        }
    }
}

#[test]
fn libtlsrpt_bytes_equal_our_encoder_and_decode_back() {
    let dir = tempfile::tempdir().unwrap();
    let Some(helper) = build_helper(dir.path()) else {
        return;
    };
    let path = dir.path().join("capture.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let status = Command::new(&helper).arg(&path).status().unwrap();
    assert!(status.success(), "helper failed: {status}");
    let mut buf = vec![0u8; 65536];
    for (i, mut want) in expected_requests().into_iter().enumerate() {
        let n = sock.recv(&mut buf).unwrap();
        let got = &buf[..n];
        // libtlsrpt ≥ 0.5.1 writes "dpv": "1"; 0.5.0rc1 (Debian trixie) does not.
        if got.starts_with(b"{\"dpv\"") {
            want.dpv = Some("1".into());
        } else {
            want.dpv = None;
        }
        assert_eq!(
            String::from_utf8_lossy(got),
            String::from_utf8_lossy(&want.encode()),
            "request {i}"
        );
        assert_eq!(
            decode(got).unwrap().to_owned_datagram(),
            want,
            "request {i}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collector_counts_what_libtlsrpt_sends() {
    let dir = tempfile::tempdir().unwrap();
    let Some(helper) = build_helper(dir.path()) else {
        return;
    };
    let cfg = CollectorConfig {
        socket: dir.path().join("tlsrpt.sock"),
        socket_mode: Some(0o666),
        flush_interval: Duration::from_millis(20),
        ..CollectorConfig::default()
    };
    let c = bind(cfg.clone()).unwrap();
    let stats = c.stats();
    let sink = Arc::new(MemorySink::new());
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let run = tokio::spawn(c.run(Arc::clone(&sink), async move {
        let _ = rx.await;
    }));
    let status =
        tokio::task::spawn_blocking(move || Command::new(helper).arg(&cfg.socket).status())
            .await
            .unwrap()
            .unwrap();
    assert!(status.success());
    let start = std::time::Instant::now();
    while stats.decoded.load(std::sync::atomic::Ordering::Relaxed) < 5 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "collector did not get 5 datagrams"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tx.send(()).unwrap();
    run.await.unwrap().unwrap();
    assert_eq!(stats.invalid_total(), 0);
    // The day is the collector's UTC day of receipt; take it from what was stored.
    let got = sink.tally();
    let day = got.reports.keys().next().unwrap().day;
    let mut want = Tally::new();
    for r in expected_requests() {
        want.add_datagram(day, &decode(&r.encode()).unwrap())
            .unwrap();
    }
    assert_eq!(got, want);
}
