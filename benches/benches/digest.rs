//! Digest authentication (`pbx::auth`): verifying one REGISTER's
//! `Authorization` with MD5 and with SHA-256 (`qop=auth`), and issuing the
//! challenge of a 401.
//!
//! `cargo bench -p softswitch-benches --bench digest`
//!
//! Per iteration:
//! - `digest/verify_md5_register`, `digest/verify_sha256_register`: one
//!   REGISTER's `Authorization` value verified by `DigestAuth::verify`:
//!   parsing the credentials, checking the nonce's MAC and age, the password
//!   lookup (a map of 200 users), the request-digest and the nonce-count
//!   replay check. Replay protection refuses a nonce-count seen before, so
//!   the values are made untimed in chunks: each chunk answers one fresh
//!   challenge with nc = 1, 2, 3, ... as a phone re-registering does.
//! - `digest/verify_credentials_md5`: the same on already parsed
//!   `Credentials` (`DigestAuth::verify_credentials`), to separate parsing.
//! - `digest/challenge_sha256_md5`: one 401's `WWW-Authenticate` values
//!   (SHA-256 and MD5 sharing one fresh nonce: a random salt and an
//!   HMAC-SHA-256 over time, salt and realm).

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use pbx::auth::{Algorithm, Challenge, Credentials, DigestAuth, DEFAULT_NONCE_TTL};

const REALM: &str = "pbx.example.com";
const RURI: &str = "sip:pbx.example.com";
const USER: &str = "101";
const PASSWORD: &str = "s3cret-Pass-4711";
/// Authorization values prepared (untimed) per timed run.
const CHUNK: u64 = 1_000;

fn directory() -> HashMap<String, String> {
    (100..300)
        .map(|n| (n.to_string(), format!("s3cret-Pass-{}", 4610 + n)))
        .collect()
}

fn auth() -> DigestAuth {
    DigestAuth::new(REALM, [42; 32], DEFAULT_NONCE_TTL)
}

/// A fresh challenge of `auth` for `alg`, as the phone parses it.
fn challenge(auth: &DigestAuth, now: SystemTime, alg: Algorithm) -> Challenge {
    auth.challenge(now, false)
        .iter()
        .filter_map(|v| Challenge::parse(v.as_bytes()).ok())
        .find(|c| c.algorithm == alg)
        .expect("the server offers the algorithm")
}

/// The `Authorization` values answering one fresh challenge with nc = 1..=n.
fn authorizations(auth: &DigestAuth, now: SystemTime, alg: Algorithm, n: u64) -> Vec<String> {
    let ch = challenge(auth, now, alg);
    (1..=n)
        .map(|nc| {
            let nc = u32::try_from(nc).expect("chunk fits a nonce-count");
            ch.authorization("REGISTER", RURI, USER, PASSWORD, "0a4f113b9c2d", nc)
        })
        .collect()
}

/// Times `verify` over `iters` authorizations made in chunks; every one must pass.
fn run_verify(
    iters: u64,
    alg: Algorithm,
    mut verify: impl FnMut(&DigestAuth, SystemTime, &str) -> bool,
) -> Duration {
    let auth = auth();
    let mut total = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let n = (iters - done).min(CHUNK);
        let now = SystemTime::now();
        let values = authorizations(&auth, now, alg, n);
        let start = Instant::now();
        let mut ok = 0u64;
        for v in &values {
            ok += u64::from(verify(&auth, now, v));
        }
        total += start.elapsed();
        assert_eq!(ok, n, "every Authorization must verify");
        done += n;
    }
    total
}

fn bench_digest(c: &mut Criterion) {
    let users = directory();
    assert_eq!(users.get(USER).map(String::as_str), Some(PASSWORD));
    let password_of = |u: &str| users.get(u).cloned();

    let mut g = c.benchmark_group("digest");
    g.throughput(Throughput::Elements(1));
    for (id, alg) in [
        ("verify_md5_register", Algorithm::Md5),
        ("verify_sha256_register", Algorithm::Sha256),
    ] {
        g.bench_function(id, |b| {
            b.iter_custom(|iters| {
                run_verify(iters, alg, |auth, now, v| {
                    auth.verify(
                        now,
                        black_box("REGISTER"),
                        black_box(RURI.as_bytes()),
                        black_box(v.as_bytes()),
                        password_of,
                    )
                    .is_ok()
                })
            })
        });
    }

    g.bench_function("verify_credentials_md5", |b| {
        b.iter_custom(|iters| {
            let auth = auth();
            let mut total = Duration::ZERO;
            let mut done = 0;
            while done < iters {
                let n = (iters - done).min(CHUNK);
                let now = SystemTime::now();
                let creds: Vec<Credentials> = authorizations(&auth, now, Algorithm::Md5, n)
                    .iter()
                    .map(|v| Credentials::parse(v.as_bytes()).expect("own value parses"))
                    .collect();
                let start = Instant::now();
                let mut ok = 0u64;
                for cr in &creds {
                    let r = auth.verify_credentials(
                        now,
                        black_box("REGISTER"),
                        black_box(RURI.as_bytes()),
                        black_box(cr),
                        password_of,
                    );
                    ok += u64::from(r.is_ok());
                }
                total += start.elapsed();
                assert_eq!(ok, n, "every credential must verify");
                done += n;
            }
            total
        })
    });

    let auth = auth();
    let now = SystemTime::now();
    g.bench_function("challenge_sha256_md5", |b| {
        b.iter(|| auth.challenge(black_box(now), false))
    });
    g.finish();
}

criterion_group!(benches, bench_digest);
criterion_main!(benches);
