//! The collector's hot path: decode + aggregate by raw bytes (what the receive thread does per
//! datagram), over a realistic mix: 1,000 recipient domains, 10 % failures,
//! sts / tlsa / no-policy-found, IPv4 and IPv6. Also the once-per-flush conversion to a
//! `Tally`, and (printed once, before the timings) the heap bytes per counter key with
//! 100,000 distinct keys, measured with a counting allocator.
//!
//! `cargo bench -p tlsrpt-collector --bench collector -- --warm-up-time 1 --measurement-time 3`

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use jiff::civil::date;
use tlsrpt_collector::Aggregator;
use tlsrpt_core::datagram::{DatagramBuf, FailureBuf, PolicyBuf, decode};
use tlsrpt_core::{PolicyType, ResultType};

/// Counts live heap bytes, to measure the aggregate's memory exactly.
struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged and only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size as isize - layout.size() as isize, Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// One datagram of the mix; `fail` forces a failure detail with a distinct sending IP.
fn datagram(r: u64, fail: Option<u64>) -> Vec<u8> {
    let dom = format!("domain{}.example", r % 1000);
    let mut dg = DatagramBuf::new(&dom, format!("v=TLSRPTv1; rua=mailto:tlsrpt@{dom}"));
    let mut p = match (r >> 10) % 3 {
        0 => {
            let mut p = PolicyBuf::new(&PolicyType::Sts, Some(&dom));
            p.policy_strings = vec![
                "version: STSv1".into(),
                "mode: enforce".into(),
                format!("mx: *.{dom}"),
                "max_age: 604800".into(),
            ];
            p.mx_hosts = vec![format!("*.{dom}")];
            p
        }
        1 => {
            let mut p = PolicyBuf::new(&PolicyType::Tlsa, Some(&format!("mx.{dom}")));
            p.policy_strings = vec![format!("3 1 1 {:064X}", r % 7)];
            p
        }
        _ => PolicyBuf::new(&PolicyType::NoPolicyFound, Some(&dom)),
    };
    let failing = fail.or((r >> 20).is_multiple_of(10).then_some(r % 4));
    if let Some(ip) = failing {
        let v6 = (r >> 30).is_multiple_of(2);
        let (s, rip) = if v6 {
            (
                format!("2001:db8::{ip:x}"),
                format!("2001:db8:1::{:x}", (r >> 4) % 16),
            )
        } else {
            (
                format!("10.{}.{}.{}", (ip >> 16) & 255, (ip >> 8) & 255, ip & 255),
                format!("198.51.100.{}", (r >> 4) % 16),
            )
        };
        p.push_failure(FailureBuf {
            sending_mta_ip: Some(s),
            receiving_mx_hostname: Some(format!("mx.{dom}")),
            receiving_mx_helo: Some(format!("250-mx.{dom}\r\n250-PIPELINING\r\n250 STARTTLS")),
            receiving_ip: Some(rip),
            failure_reason_code: Some("self-signed_certificate".into()),
            ..FailureBuf::new(&ResultType::ValidationFailure)
        });
    }
    dg.policies.push(p);
    dg.encode()
}

fn mix(n: usize) -> Vec<Vec<u8>> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    (0..n).map(|_| datagram(rng.next(), None)).collect()
}

/// Heap bytes per key of the aggregate and of the converted tally, 100,000 distinct keys.
fn memory_report() {
    let day = date(2026, 11, 28);
    let mut rng = Rng(42);
    // Every datagram fails with a distinct sending IP: one new failure key each.
    let dgs: Vec<Vec<u8>> = (0..100_000u64)
        .map(|i| datagram(rng.next(), Some(i)))
        .collect();
    let before = LIVE.load(Relaxed);
    let mut agg = Aggregator::new();
    for d in &dgs {
        agg.add(day, &decode(d).unwrap()).unwrap();
    }
    let keys = agg.key_count();
    let agg_bytes = LIVE.load(Relaxed) - before;
    let delta = agg.take();
    let before_tally = LIVE.load(Relaxed);
    let (tally, _) = delta.into_tally();
    let tally_bytes = LIVE.load(Relaxed) - before_tally;
    eprintln!(
        "memory: {keys} keys; aggregate {:.1} MiB ({} B/key); tally {:.1} MiB ({} B/key, {} keys)",
        agg_bytes as f64 / 1048576.0,
        agg_bytes / keys as isize,
        tally_bytes as f64 / 1048576.0,
        tally_bytes / tally.key_count().max(1) as isize,
        tally.key_count()
    );
    let avg_len = dgs.iter().map(Vec::len).sum::<usize>() / dgs.len();
    eprintln!("memory: average datagram {avg_len} bytes");
}

fn bench(c: &mut Criterion) {
    memory_report();
    let dgs = mix(10_000);
    let day = date(2026, 11, 28);
    let mut g = c.benchmark_group("collector");
    g.throughput(Throughput::Elements(dgs.len() as u64));
    // Steady state: keys already seen (the aggregate is warm).
    let mut warm = Aggregator::new();
    for d in &dgs {
        warm.add(day, &decode(d).unwrap()).unwrap();
    }
    g.bench_function("decode+aggregate (keys seen)", |b| {
        b.iter(|| {
            for d in &dgs {
                warm.add(day, &decode(black_box(d)).unwrap()).unwrap();
            }
        })
    });
    g.bench_function("decode+aggregate (fresh aggregate)", |b| {
        b.iter_batched(
            Aggregator::new,
            |mut agg| {
                for d in &dgs {
                    agg.add(day, &decode(black_box(d)).unwrap()).unwrap();
                }
                agg
            },
            BatchSize::LargeInput,
        )
    });
    g.bench_function("flush: take + into_tally", |b| {
        b.iter_batched(
            || {
                let mut agg = Aggregator::new();
                for d in &dgs {
                    agg.add(day, &decode(d).unwrap()).unwrap();
                }
                agg
            },
            |mut agg| agg.take().into_tally(),
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
