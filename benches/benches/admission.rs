//! Bandwidth admission (`admission`): the books call control consults once
//! per call.
//!
//! `cargo bench -p softswitch-benches --bench admission`
//!
//! Per iteration:
//! - `admission/reserve_release_two_legs`: one call between two phones of
//!   one site (its link crossed twice, 100 kbps each way per leg) reserved
//!   and then released, on a site with room and 40 other calls in progress,
//!   among 50 sites.
//! - `admission/reservation_kbps_g711_te`: `Estimator::reservation_kbps` for
//!   an offer of PCMU, PCMA and telephone-event at 20 ms (the most expensive
//!   codec counts, RTCP added, the 100 kbps floor applied).
//! - `admission/site_lookup`: which of 50 sites a phone's address belongs
//!   to (`Sites::lookup`), done for each leg of a call.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};

use admission::{Admission, Estimator, Leg, MediaLine, RtpMap, Site, Sites};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

const SITES: u8 = 50;

/// 50 customer sites, 10.0.N.0/24 each, 10 Mbps down and 2 Mbps up.
fn sites() -> Sites {
    let sites = (0..SITES)
        .map(|n| Site {
            name: format!("customer-{n:02}"),
            networks: vec![format!("10.0.{n}.0/24").parse().expect("valid CIDR")],
            down_kbps: 10_000,
            up_kbps: 2_000,
            max_calls: Some(100),
        })
        .collect();
    Sites::new(sites).expect("valid sites")
}

fn g711_offer() -> Vec<MediaLine> {
    let mut line = MediaLine::audio(&[0, 8, 101]);
    line.rtpmap = vec![
        RtpMap::from((0, "PCMU", 8000, None)),
        RtpMap::from((8, "PCMA", 8000, None)),
        RtpMap::from((101, "telephone-event", 8000, None)),
    ];
    line.ptime_ms = Some(20);
    vec![line]
}

fn bench_admission(c: &mut Criterion) {
    let sites = sites();
    let office = sites.lookup(IpAddr::V4(Ipv4Addr::new(10, 0, 17, 20)));
    assert_ne!(office, sites.default_site());

    let estimator = Estimator::default();
    let offer = g711_offer();
    let kbps = estimator.reservation_kbps(&offer);
    assert_eq!(kbps, 100, "G.711 at 20 ms reserves the floor");

    let mut g = c.benchmark_group("admission");
    g.throughput(Throughput::Elements(1));

    let mut books = Admission::with_capacity(&sites, 1024);
    let legs = [Leg::symmetric(office, kbps), Leg::symmetric(office, kbps)];
    // Other calls in progress: 40 local calls on the same site would need
    // 8 Mbps up, so spread them over the other sites.
    for call in 0..40u64 {
        let other = sites.lookup(IpAddr::V4(Ipv4Addr::new(10, 0, (call % 16) as u8, 9)));
        books
            .reserve(1_000 + call, &[Leg::symmetric(other, kbps)])
            .expect("room for the background calls");
    }
    let call_id = 1u64;
    g.bench_function("reserve_release_two_legs", |b| {
        b.iter(|| {
            let r = books.reserve(black_box(call_id), black_box(&legs));
            assert!(r.is_ok() && books.release(call_id));
        })
    });
    assert_eq!(books.active_calls(), 40, "every reservation was released");

    g.bench_function("reservation_kbps_g711_te", |b| {
        b.iter(|| estimator.reservation_kbps(black_box(&offer)))
    });

    let phone = IpAddr::V4(Ipv4Addr::new(10, 0, 42, 77));
    g.bench_function("site_lookup", |b| b.iter(|| sites.lookup(black_box(phone))));
    g.finish();
}

criterion_group!(benches, bench_admission);
criterion_main!(benches);
