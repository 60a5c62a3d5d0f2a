//! Takes slots of an apppw Argon2 admission gate for the integration tests, as a separate
//! process (the gate is shared between processes, and its slots belong to processes):
//!
//! ```text
//! apppw-test-gate hold CONFIG [N]    take N slots (one after another, each waiting up to the
//!                                     config's queue timeout); print "held" (or "busy"), then
//!                                     hold them until stdin ends or gives a line
//! apppw-test-gate cycle CONFIG LOG ROUNDS MS
//!                                     ROUNDS times: take a slot, append "PID enter NS" to LOG,
//!                                     hold it MS ms, append "PID leave NS", give it back
//! apppw-test-gate status CONFIG       print "FREE CAPACITY WAITING"
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use apppw::gate::{Gate, Refused};
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn gate(config: &str) -> Gate {
    let config = apppw::Config::load_file(Path::new(config)).unwrap();
    Gate::open(&config.gate)
        .unwrap()
        .expect("the config turns the gate off")
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos()
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut out = std::io::stdout();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["hold", config, ref rest @ ..] => {
            let n: usize = rest.first().map_or(1, |n| n.parse().unwrap());
            let gate = gate(config);
            let mut slots = Vec::new();
            for _ in 0..n {
                match gate.enter() {
                    Ok(slot) => slots.push(slot),
                    Err(Refused::Busy) => {
                        writeln!(out, "busy").unwrap();
                        std::process::exit(1);
                    }
                    Err(Refused::Broken(why)) => {
                        writeln!(out, "broken: {why}").unwrap();
                        std::process::exit(2);
                    }
                }
            }
            writeln!(out, "held").unwrap();
            out.flush().unwrap();
            let mut line = String::new();
            let _ = std::io::stdin().lock().read_line(&mut line);
            drop(slots);
            writeln!(out, "released").unwrap();
        }
        ["cycle", config, log, rounds, ms] => {
            let gate = gate(config);
            let hold = Duration::from_millis(ms.parse().unwrap());
            let pid = std::process::id();
            let mut log = std::fs::OpenOptions::new()
                .append(true)
                .create(true)
                .open(log)
                .unwrap();
            for _ in 0..rounds.parse::<usize>().unwrap() {
                let slot = gate.enter().expect("a slot within the queue timeout");
                // One write per line with O_APPEND: lines of several processes never mix.
                log.write_all(format!("{pid} enter {}\n", now_ns()).as_bytes())
                    .unwrap();
                std::thread::sleep(hold);
                log.write_all(format!("{pid} leave {}\n", now_ns()).as_bytes())
                    .unwrap();
                drop(slot);
            }
        }
        ["status", config] => {
            let s = gate(config).status().unwrap();
            writeln!(out, "{} {} {}", s.free, s.capacity, s.waiting).unwrap();
        }
        _ => panic!("usage: see the source"),
    }
}
