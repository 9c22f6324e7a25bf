//! Properties of the admission core under arbitrary interleavings, and
//! all-or-nothing under concurrent use through a mutex.

use std::collections::HashMap;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;

use admission::{Admission, Leg, Limits, Refusal, Site, SiteId, Sites};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Reserve(u64, Vec<Leg>),
    Adjust(u64, Vec<Leg>),
    Release(u64),
}

const SITES: u32 = 4; // three configured + the default site

fn legs() -> impl Strategy<Value = Vec<Leg>> {
    prop::collection::vec(
        (0..SITES, 0u32..300, 0u32..300).prop_map(|(s, up, down)| Leg {
            site: SiteId(s),
            up_kbps: up,
            down_kbps: down,
        }),
        0..4,
    )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u64..8, legs()).prop_map(|(c, l)| Op::Reserve(c, l)),
        2 => (0u64..8, legs()).prop_map(|(c, l)| Op::Adjust(c, l)),
        2 => (0u64..8).prop_map(Op::Release),
    ]
}

fn limits() -> impl Strategy<Value = (u32, u32, Option<u32>)> {
    (100u32..1000, 100u32..1000, prop::option::of(1u32..4))
}

fn build(l: &[(u32, u32, Option<u32>)]) -> Sites {
    let sites = l[..3]
        .iter()
        .enumerate()
        .map(|(i, &(up, down, max_calls))| Site {
            name: format!("site-{i}"),
            networks: vec![format!("10.{i}.0.0/16").parse().unwrap()],
            down_kbps: down,
            up_kbps: up,
            max_calls,
        })
        .collect();
    let (up, down, max_calls) = l[3];
    Sites::with_default(
        sites,
        Limits {
            up_kbps: Some(up),
            down_kbps: Some(down),
            max_calls,
        },
    )
    .unwrap()
}

/// Per site (up, down, calls) implied by the calls the model holds.
fn expected(model: &HashMap<u64, Vec<Leg>>) -> Vec<(u64, u64, u32)> {
    let mut out = vec![(0u64, 0u64, 0u32); SITES as usize];
    for legs in model.values() {
        let mut seen = [false; SITES as usize];
        for l in legs {
            let e = &mut out[l.site.index()];
            e.0 += u64::from(l.up_kbps);
            e.1 += u64::from(l.down_kbps);
            if !seen[l.site.index()] {
                seen[l.site.index()] = true;
                e.2 += 1;
            }
        }
    }
    out
}

fn snapshot(a: &Admission) -> Vec<(u64, u64, u32)> {
    (0..SITES)
        .map(|s| {
            let u = a.usage(SiteId(s)).unwrap();
            (u.up_kbps, u.down_kbps, u.calls)
        })
        .collect()
}

/// Whether going from `before` to `after` is allowed: each quantity either
/// fits its limit or does not grow.
fn allowed(sites: &Sites, before: &[(u64, u64, u32)], after: &[(u64, u64, u32)]) -> bool {
    (0..SITES as usize).all(|i| {
        let lim = sites.get(SiteId(i as u32)).unwrap().limits();
        let fits =
            |cap: Option<u32>, b: u64, a: u64| a <= b || cap.map_or(true, |c| a <= u64::from(c));
        fits(lim.up_kbps, before[i].0, after[i].0)
            && fits(lim.down_kbps, before[i].1, after[i].1)
            && fits(lim.max_calls, u64::from(before[i].2), u64::from(after[i].2))
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn admission_books_stay_exact(lims in prop::collection::vec(limits(), 4), ops in prop::collection::vec(op(), 1..60)) {
        let sites = build(&lims);
        let mut a = Admission::new(&sites);
        let mut model: HashMap<u64, Vec<Leg>> = HashMap::new();
        for op in ops {
            let before = expected(&model);
            let refusals_before: u64 = (0..SITES).map(|s| a.usage(SiteId(s)).unwrap().refusals).sum();
            let refused = match op {
                Op::Reserve(call, legs) => {
                    let mut next = model.clone();
                    let fresh = next.insert(call, legs.clone()).is_none();
                    let ok = fresh && allowed(&sites, &before, &expected(&next));
                    let got = a.reserve(call, &legs);
                    prop_assert_eq!(got.is_ok(), ok, "reserve {} {:?}: {:?}", call, legs, got);
                    if ok { model = next; }
                    got.err()
                }
                Op::Adjust(call, legs) => {
                    let mut next = model.clone();
                    let known = next.insert(call, legs.clone()).is_some();
                    let ok = known && allowed(&sites, &before, &expected(&next));
                    let got = a.adjust(call, &legs);
                    prop_assert_eq!(got.is_ok(), ok, "adjust {} {:?}: {:?}", call, legs, got);
                    if ok { model = next; }
                    got.err()
                }
                Op::Release(call) => {
                    prop_assert_eq!(a.release(call), model.remove(&call).is_some());
                    None
                }
            };
            let refusals: u64 = (0..SITES).map(|s| a.usage(SiteId(s)).unwrap().refusals).sum();
            let counted = u64::from(refused.as_ref().is_some_and(Refusal::is_capacity));
            prop_assert_eq!(refusals, refusals_before + counted);
            // The books match the model, so a refusal changed nothing.
            prop_assert_eq!(snapshot(&a), expected(&model));
            for s in 0..SITES {
                let u = a.usage(SiteId(s)).unwrap();
                prop_assert!(u.limits.up_kbps.map_or(true, |c| u.up_kbps <= u64::from(c)));
                prop_assert!(u.limits.down_kbps.map_or(true, |c| u.down_kbps <= u64::from(c)));
                prop_assert!(u.limits.max_calls.map_or(true, |m| u.calls <= m));
            }
            prop_assert_eq!(a.active_calls(), model.len());
        }
        for call in model.keys() {
            prop_assert!(a.release(*call));
            prop_assert!(!a.release(*call));
        }
        prop_assert_eq!(snapshot(&a), vec![(0, 0, 0); SITES as usize]);
        prop_assert_eq!(a.active_calls(), 0);
    }
}

#[test]
fn concurrent_reservations_admit_exactly_what_fits() {
    const N: u32 = 8;
    let sites = Sites::new(vec![Site {
        name: "geneva-office".into(),
        networks: vec!["192.0.2.0/24".parse().unwrap()],
        down_kbps: N * 100,
        up_kbps: N * 100,
        max_calls: None,
    }])
    .unwrap();
    let site = sites.lookup("192.0.2.1".parse().unwrap());
    let admission = Arc::new(Mutex::new(Admission::new(&sites)));
    let barrier = Arc::new(Barrier::new(2 * N as usize));
    let handles: Vec<_> = (0..2 * N)
        .map(|call| {
            let admission = Arc::clone(&admission);
            let barrier = Arc::clone(&barrier);
            thread::spawn(move || {
                barrier.wait();
                let got = admission
                    .lock()
                    .unwrap()
                    .reserve(u64::from(call), &[Leg::symmetric(site, 100)]);
                got.is_ok()
            })
        })
        .collect();
    let admitted = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|&ok| ok)
        .count();
    assert_eq!(admitted, N as usize);
    let mut a = admission.lock().unwrap();
    let u = a.usage(site).unwrap();
    assert_eq!((u.up_kbps, u.down_kbps, u.calls), (800, 800, N));
    assert_eq!(u.refusals, u64::from(N));
    for call in 0..2 * N {
        a.release(u64::from(call));
    }
    assert_eq!(a.usage(site).unwrap().up_kbps, 0);
}
