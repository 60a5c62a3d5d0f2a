//! Tests of the Argon2 admission gate: slots, the queue timeout, the gate file and its trust.

use super::*;

fn settings(dir: &Path, n: u32, timeout_ms: u64) -> Settings {
    Settings {
        max_concurrent: n,
        queue_timeout: Duration::from_millis(timeout_ms),
        path: dir.join("argon2-gate"),
    }
}

/// Removes the set when the test ends (sets outlive processes).
struct Cleanup(c_int);
impl Drop for Cleanup {
    fn drop(&mut self) {
        sys::remove(self.0);
    }
}

#[test]
fn admits_at_most_n_and_times_out_after_that() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 2, 50);
    let gate = Gate::open(&s).unwrap().unwrap();
    let _c = Cleanup(gate.semid);
    let a = gate.enter().unwrap();
    let b = gate.enter().unwrap();
    let t = Instant::now();
    assert_eq!(gate.enter().unwrap_err(), Refused::Busy);
    assert!(
        t.elapsed() >= Duration::from_millis(45),
        "{:?}",
        t.elapsed()
    );
    drop(a);
    let c = gate.enter().unwrap();
    assert_eq!(
        gate.status().unwrap(),
        Status {
            free: 0,
            capacity: 2,
            waiting: 0
        }
    );
    drop((b, c));
    assert_eq!(gate.status().unwrap().free, 2);
}

#[test]
fn a_second_opening_finds_the_same_set_and_fits_its_capacity() {
    let dir = tempfile::tempdir().unwrap();
    let g1 = Gate::open(&settings(dir.path(), 2, 0)).unwrap().unwrap();
    let _c = Cleanup(g1.semid);
    let g2 = Gate::open(&settings(dir.path(), 3, 0)).unwrap().unwrap();
    assert_eq!(g1.semid, g2.semid);
    assert_eq!(g1.status().unwrap().capacity, 3);
    assert_eq!(g1.status().unwrap().free, 3);
    // Shrinking takes free slots only.
    let held: Vec<Slot> = (0..3).map(|_| g1.enter().unwrap()).collect();
    let g3 = Gate::open(&settings(dir.path(), 1, 0)).unwrap().unwrap();
    assert_eq!(
        g3.status().unwrap().capacity,
        3,
        "shrunk below the slots in use"
    );
    drop(held);
    let g4 = Gate::open(&settings(dir.path(), 1, 0)).unwrap().unwrap();
    assert_eq!(
        g4.status().unwrap(),
        Status {
            free: 1,
            capacity: 1,
            waiting: 0
        }
    );
}

#[test]
fn a_stale_file_is_replaced_and_junk_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 1, 0);
    let g1 = Gate::open(&s).unwrap().unwrap();
    sys::remove(g1.semid);
    let g2 = Gate::open(&s).unwrap().unwrap();
    let _c = Cleanup(g2.semid);
    assert_ne!(g1.semid, g2.semid);
    assert_eq!(g2.status().unwrap().free, 1);
    // A set that is not the file writer's (here: a set of the wrong shape) is replaced too.
    std::fs::write(&s.path, format!("{MAGIC} 1 semid={}\n", 0x7fff_fff0)).unwrap();
    let g3 = Gate::open(&s).unwrap().unwrap();
    let _c3 = Cleanup(g3.semid);
    std::fs::write(&s.path, "hello\n").unwrap();
    let e = Gate::open(&s).unwrap_err();
    assert!(e.contains("not an apppw gate file"), "{e}");
}

#[test]
fn unsafe_or_missing_places_are_refused_with_advice() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let e = Gate::open(&settings(&dir.path().join("nope"), 1, 0)).unwrap_err();
    assert!(
        e.contains("does not exist") && e.contains("tmpfiles"),
        "{e}"
    );
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let e = Gate::open(&settings(dir.path(), 1, 0)).unwrap_err();
    assert!(e.contains("writable by every user"), "{e}");
    assert!(Gate::open(&settings(dir.path(), 0, 0)).unwrap().is_none());
}

#[test]
fn the_set_is_group_shared_and_the_file_is_not_world_writable() {
    let dir = tempfile::tempdir().unwrap();
    let s = settings(dir.path(), 1, 0);
    let gate = Gate::open(&s).unwrap().unwrap();
    let _c = Cleanup(gate.semid);
    let ds = sys::stat(gate.semid).unwrap();
    assert_eq!(ds.sem_perm.mode & 0o777, 0o660);
    assert_eq!(
        ds.sem_perm.gid,
        std::fs::metadata(dir.path()).unwrap().gid()
    );
    let mode = std::fs::metadata(&s.path).unwrap().mode();
    assert_eq!(mode & 0o022, 0, "{mode:o}");
    // No temporary files are left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("argon2-gate")]);
}

#[test]
fn settings_from_the_config() {
    let d = Settings::default();
    assert_eq!(d.max_concurrent, online_cpus());
    assert_eq!(d.path, Path::new(DEFAULT_PATH));
    let spanned = |v| Some(toml::Spanned::new(0..1, v));
    let s = Settings::from_raw(
        spanned(4),
        spanned(250),
        Some(toml::Spanned::new(0..1, "/x/g".into())),
    )
    .unwrap();
    assert_eq!(
        s,
        Settings {
            max_concurrent: 4,
            queue_timeout: Duration::from_millis(250),
            path: PathBuf::from("/x/g")
        }
    );
    assert!(Settings::from_raw(spanned(MAX_SLOTS + 1), None, None).is_err());
    assert!(Settings::from_raw(None, spanned(MAX_QUEUE_TIMEOUT_MS + 1), None).is_err());
    assert!(Settings::from_raw(None, None, Some(toml::Spanned::new(0..1, "rel".into()))).is_err());
}
