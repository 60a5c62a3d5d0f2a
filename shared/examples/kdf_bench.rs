//! Times one Argon2id verification (OWASP parameters) the three ways a login can pay for it:
//! warm memory in a long-lived process, a fresh heap allocation, a fresh huge-page mapping.
//!
//! `cargo run --release -p apppw-shared --example kdf_bench [ROUNDS]`
#![allow(clippy::unwrap_used, clippy::expect_used)]

use apppw::hash::{Argon2Kdf, Kdf, Params};
use std::time::Instant;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(50);
    let params = Params::default();
    let pw = b"abcdefghijklmnopqrstuvwx";
    let stored = Argon2Kdf::new().hash_new(params, pw).unwrap();

    let mut warm = Argon2Kdf::new();
    warm.verify(&stored, pw).unwrap();
    let mut t_warm = Vec::new();
    let mut t_fresh = Vec::new();
    for _ in 0..rounds {
        let t = Instant::now();
        assert!(warm.verify(&stored, pw).unwrap());
        t_warm.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        assert!(Argon2Kdf::new().verify(&stored, pw).unwrap());
        t_fresh.push(t.elapsed().as_secs_f64() * 1e3);
    }
    println!(
        "argon2id m={} t={} p={}, {rounds} rounds, median ms",
        params.memory_kib, params.iterations, params.parallelism
    );
    println!(
        "  warm memory (reused buffer)        {:6.2}",
        median(t_warm)
    );
    println!(
        "  fresh huge-page mapping per verify {:6.2}",
        median(t_fresh)
    );
}
