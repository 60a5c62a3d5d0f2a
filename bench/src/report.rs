//! What is printed after the tables: the targets with the measured values, PostgreSQL against
//! SQLite, and the throughput rows as CSV for `bench/plot.py`.

use crate::Res;
use crate::concurrency::HAMMER_CLIENTS;
use crate::stats::Results;
use std::path::Path;

/// Each PostgreSQL row against the same row on SQLite: ratio and difference of the medians.
pub fn pg_comparison(r: &Results) -> String {
    let mut out = String::from(
        "| attempt | SQLite ms | PostgreSQL TCP ms | TCP / SQLite | PostgreSQL socket ms | socket / SQLite |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    let rows = [
        (
            "checkpassword: correct app password",
            "cp_ok",
            "cp_pg_ok",
            "cp_pgs_ok",
        ),
        (
            "checkpassword: wrong app password (known tag)",
            "cp_wrong",
            "cp_pg_wrong",
            "cp_pgs_wrong",
        ),
        (
            "checkpassword: normal password, off campus",
            "cp_normal",
            "cp_pg_normal",
            "cp_pgs_normal",
        ),
        (
            "PAM module: correct app password",
            "pam_ok",
            "pam_pg_ok",
            "pam_pgs_ok",
        ),
        (
            "PAM module: wrong app password (known tag)",
            "pam_wrong",
            "pam_pg_wrong",
            "pam_pgs_wrong",
        ),
        (
            "store work of a success (lib)",
            "lib_store_ok",
            "lib_pg_store_ok",
            "lib_pgs_store_ok",
        ),
        (
            "store work of a failure (lib)",
            "lib_store_fail",
            "lib_pg_store_fail",
            "lib_pgs_store_fail",
        ),
    ];
    let cell = |v: Option<f64>| v.map_or("–".to_owned(), |v| format!("{v:.2}"));
    for (what, sqlite, tcp, socket) in rows {
        let (s, t, u) = (r.median(sqlite), r.median(tcp), r.median(socket));
        if t.is_none() && u.is_none() {
            continue;
        }
        let ratio = |pg: Option<f64>| match (pg, s) {
            (Some(p), Some(s)) => format!("{:.2}× ({:+.2} ms)", p / s, p - s),
            _ => "–".to_owned(),
        };
        out.push_str(&format!(
            "| {what} | {} | {} | {} | {} | {} |\n",
            cell(s),
            cell(t),
            ratio(t),
            cell(u),
            ratio(u)
        ));
    }
    out
}

/// The throughput rows as CSV (`what,clients,logins_per_second,median_ms,p90_ms`), plus the
/// ideal `cores × 1/(warm verify)` as the row `ideal`.
pub fn write_csv(path: &Path, r: &Results) -> Res<()> {
    let mut out = String::from("what,clients,logins_per_second,median_ms,p90_ms\n");
    for t in &r.throughput {
        let (m, p) = t.latency.map_or((String::new(), String::new()), |s| {
            (s.median.to_string(), s.p90.to_string())
        });
        out.push_str(&format!(
            "\"{}\",{},{},{m},{p}\n",
            t.what.replace('"', "'"),
            t.clients,
            t.per_second
        ));
    }
    if let (Some(c), Some(w)) = (r.values.get("cores"), r.median("argon_warm")) {
        out.push_str(&format!("\"ideal\",0,{},,\n", c * 1000.0 / w));
    }
    std::fs::write(path, out)?;
    Ok(())
}

/// The targets, with the measured values.
pub fn targets(r: &Results) -> String {
    let m = |k| r.median(k);
    let mut out = String::from("| target | measured | limit | met |\n|---|---:|---:|---|\n");
    let mut line =
        |what: &str, v: Option<f64>, limit: f64, unit: &str, fmt: &dyn Fn(f64) -> String| {
            let (val, met) = match v {
                Some(v) => (
                    format!("{}{unit}", fmt(v)),
                    if v <= limit { "yes" } else { "**no**" },
                ),
                None => ("–".into(), "not measured"),
            };
            out.push_str(&format!(
                "| {what} | {val} | ≤ {}{unit} | {met} |\n",
                fmt(limit)
            ));
        };
    let ms2 = |v: f64| format!("{v:.2}");
    let x2 = |v: f64| format!("{v:.2}");
    let sub = |a: Option<f64>, b: Option<f64>| Some(a? - b?);
    let div = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
    line(
        "checkpassword overhead beyond a process that only verifies (correct − bare verification process)",
        sub(m("cp_ok"), m("cp_bare_process")),
        2.0,
        " ms",
        &ms2,
    );
    line(
        "checkpassword overhead beyond one bare Argon2 (correct − warm verify)",
        sub(m("cp_ok"), m("argon_warm")),
        2.0,
        " ms",
        &ms2,
    );
    line(
        "checkpassword overhead beyond one bare Argon2 (correct − fresh-process verify)",
        sub(m("cp_ok"), m("argon_fresh")),
        2.0,
        " ms",
        &ms2,
    );
    line(
        "checkpassword overhead beyond its self-test and one Argon2 (correct − fresh-process one-attempt self-test − fresh-process verify)",
        sub(sub(m("cp_ok"), m("argon_selftest_one")), m("argon_fresh")),
        2.0,
        " ms",
        &ms2,
    );
    line(
        "PAM module overhead, no Argon2 (normal password off campus − pam_permit)",
        sub(m("pam_normal"), m("pam_permit")),
        0.3,
        " ms",
        &ms2,
    );
    line(
        "PAM module overhead beyond one fresh Argon2 (correct − pam_permit − fresh verify)",
        sub(sub(m("pam_ok"), m("pam_permit")), m("argon_fresh")),
        0.3,
        " ms",
        &ms2,
    );
    line(
        "PAM module overhead beyond one warm Argon2 (correct − pam_permit − interleaved warm verify)",
        sub(sub(m("pam_ok"), m("pam_permit")), m("pam_bare")),
        0.3,
        " ms",
        &ms2,
    );
    line(
        "wrong app password (known tag) / correct, checkpassword",
        div(m("cp_wrong"), m("cp_ok")),
        1.1,
        "×",
        &x2,
    );
    line(
        "wrong app password (unknown tag) / correct, checkpassword",
        div(m("cp_wrong_tag"), m("cp_ok")),
        1.1,
        "×",
        &x2,
    );
    line(
        "unknown user / correct, checkpassword",
        div(m("cp_unknown_user"), m("cp_ok")),
        1.1,
        "×",
        &x2,
    );
    line(
        "wrong app password / correct, PAM module",
        div(m("pam_wrong"), m("pam_ok")),
        1.1,
        "×",
        &x2,
    );
    for (what, wrong, ok) in [
        (
            "wrong app password / correct, checkpassword, PostgreSQL TCP",
            "cp_pg_wrong",
            "cp_pg_ok",
        ),
        (
            "wrong app password / correct, checkpassword, PostgreSQL unix socket",
            "cp_pgs_wrong",
            "cp_pgs_ok",
        ),
        (
            "wrong app password / correct, PAM module, PostgreSQL TCP",
            "pam_pg_wrong",
            "pam_pg_ok",
        ),
        (
            "wrong app password / correct, PAM module, PostgreSQL unix socket",
            "pam_pgs_wrong",
            "pam_pgs_ok",
        ),
    ] {
        if r.by_key.contains_key(ok) {
            line(what, div(m(wrong), m(ok)), 1.1, "×", &x2);
        }
    }
    line(
        "normal password off campus, checkpassword total",
        m("cp_normal"),
        2.0,
        " ms",
        &ms2,
    );
    line(
        "normal password off campus, kept store: exemption read + report write",
        m("lib_offcampus_enforce"),
        0.3,
        " ms",
        &ms2,
    );
    line(
        "unknown-format input, checkpassword total",
        m("cp_bad"),
        2.0,
        " ms",
        &ms2,
    );
    line(
        "100 app passwords / 1 app password",
        div(m("cp_100"), m("cp_ok")),
        1.1,
        "×",
        &x2,
    );
    line(
        "large database / 1000 users",
        div(m("cp_big"), m("cp_1k")),
        1.1,
        "×",
        &x2,
    );

    // Dovecot's passwd-file verifies {ARGON2ID} with the same libsodium in its auth process:
    // the PAM path's time beyond it is apppw's, Dovecot's auth-worker hop and libpam's.
    line(
        "passdb pam + pam_apppw.so / passwd-file {ARGON2ID} (same libsodium), median at the auth socket",
        div(m("dc_pam"), m("dc_file_argon")),
        1.05,
        "×",
        &x2,
    );
    let rate = |what: &str, clients: usize| {
        r.throughput
            .iter()
            .find(|t| t.what == what && t.clients == clients)
            .map(|t| t.per_second)
    };
    for clients in [2, 8] {
        let (pam, file) = (
            rate("passdb pam + pam_apppw.so", clients),
            rate("passwd-file {ARGON2ID}", clients),
        );
        let (val, met) = match div(pam, file) {
            Some(v) => (
                format!(
                    "{v:.2}× ({:.1}/s vs {:.1}/s)",
                    pam.unwrap_or(0.0),
                    file.unwrap_or(0.0)
                ),
                if v >= 1.8 { "yes" } else { "**no**" },
            ),
            None => ("–".into(), "not measured"),
        };
        out.push_str(&format!(
            "| throughput, passdb pam + pam_apppw.so / passwd-file {{ARGON2ID}}, {clients} concurrent clients | {val} | ≥ 1.80× | {met} |\n"
        ));
    }

    let cores = r.values.get("cores").copied();
    let ideal = match (cores, m("argon_warm")) {
        (Some(c), Some(w)) => Some(c * 1000.0 / w),
        _ => None,
    };
    let measured_bare = r.values.get("argon_parallel_rate").copied();
    let mut at_least = |what: String, v: Option<f64>, limit: f64, shown: String| {
        let (val, met) = match v {
            Some(v) => (
                format!("{:.0}% ({shown})", v * 100.0),
                if v >= limit { "yes" } else { "**no**" },
            ),
            None => ("–".into(), "not measured"),
        };
        out.push_str(&format!(
            "| {what} | {val} | ≥ {:.0}% | {met} |\n",
            limit * 100.0
        ));
    };
    for (what, limit) in [
        ("passdb pam + pam_apppw.so", 0.9),
        ("checkpassword + apppw-checkpassword", 0.8),
    ] {
        let two = rate(what, 2);
        at_least(
            format!("throughput, {what}, 2 concurrent clients, vs cores × 1/(warm verify)"),
            div(two, ideal),
            limit,
            format!(
                "{:.1}/s of {:.1}/s",
                two.unwrap_or(0.0),
                ideal.unwrap_or(0.0)
            ),
        );
    }
    for what in [
        "passdb pam + pam_apppw.so",
        "checkpassword + apppw-checkpassword",
        "passdb pam + pam_apppw.so, no gate (max_concurrent = 0)",
    ] {
        for clients in [8, 32] {
            let (many, two) = (rate(what, clients), rate(what, 2));
            at_least(
                format!("throughput, {what}, {clients} concurrent clients vs 2"),
                div(many, two),
                0.9,
                format!(
                    "{:.1}/s vs {:.1}/s",
                    many.unwrap_or(0.0),
                    two.unwrap_or(0.0)
                ),
            );
        }
    }
    for (what, idle, hammered) in [
        ("passdb pam + pam_apppw.so", "dc_pam_idle", "dc_pam_hammer"),
        (
            "checkpassword + apppw-checkpassword",
            "dc_cp_idle",
            "dc_cp_hammer",
        ),
    ] {
        let p90 = |k: &str| r.by_key.get(k).map(|s| s.p90);
        let v = div(p90(hammered), p90(idle));
        let (val, met) = match v {
            Some(v) => (
                format!(
                    "{v:.2}× ({:.1} ms vs {:.1} ms)",
                    p90(hammered).unwrap_or(0.0),
                    p90(idle).unwrap_or(0.0)
                ),
                if v <= 2.0 { "yes" } else { "**no**" },
            ),
            None => ("–".into(), "not measured"),
        };
        out.push_str(&format!(
            "| p90 of a real user's login while {HAMMER_CLIENTS} clients hammer wrong app passwords from one address (cool-down on) / idle p90, {what} | {val} | ≤ 2.00× | {met} |\n"
        ));
    }
    for m in r.memory.iter().filter(|m| m.gate.is_some()) {
        let limit = m.gate.unwrap_or(0) as usize + 1;
        let v = m.usage.buffers;
        out.push_str(&format!(
            "| Argon2 memory in the auth workers at once, {}, {} clients ({} workers) | {v} × 19 MiB | ≤ {limit} × 19 MiB | {} |\n",
            m.what,
            m.clients,
            m.usage.workers,
            if v <= limit { "yes" } else { "**no**" }
        ));
    }
    if let Some(b) = measured_bare {
        out.push_str(&format!(
            "\nMeasured in-process bare Argon2id rate with one thread per core: {b:.1}/s.\n"
        ));
    }
    out
}
