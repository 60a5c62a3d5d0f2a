//! Tests of Argon2id hashing: PHC strings, both implementations against each other and the
//! known answers, the self-test and the admission gate's effect on the KDF.

use super::selftest::{VECTORS, Vector, run_vector, run_vectors};
use super::*;

/// Cheap parameters for unit tests; real ones are exercised by the integration tests.
pub(crate) const FAST: Params = Params {
    memory_kib: 1024,
    iterations: 1,
    parallelism: 1,
};

#[test]
fn hash_then_verify() {
    let mut kdf = Argon2Kdf::new();
    let h = kdf.hash_new(FAST, b"abcdefghijklmnopqrstuvwx").unwrap();
    assert!(h.starts_with("$argon2id$v=19$m=1024,t=1,p=1$"), "{h}");
    assert!(kdf.verify(&h, b"abcdefghijklmnopqrstuvwx").unwrap());
    assert!(!kdf.verify(&h, b"abcdefghijklmnopqrstuvwy").unwrap());
    let h2 = kdf.hash_new(FAST, b"abcdefghijklmnopqrstuvwx").unwrap();
    assert_ne!(h, h2, "salts must differ");
}

#[test]
fn matches_the_reference_implementation_on_both_paths() {
    // Produced by the reference C implementation (libargon2's `argon2id_hash_encoded`, the
    // `argon2` command line tool's library) for the password "password".
    let cases = [
        // 8-byte salt: the crate (`echo -n password | argon2 somesalt -id -t 2 -m 10`).
        (
            "$argon2id$v=19$m=1024,t=2,p=1$c29tZXNhbHQ$\
                 7FfsnA6vUe7qLpL/3Kqc3uR48ZJyFbUVt7jWZlf0Htk",
            Implementation::Argon2Crate,
        ),
        // 16-byte salt, one lane: libsodium.
        (
            "$argon2id$v=19$m=1024,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$\
                 CKGe5/bX9YnCq2rxjW5yQXKxn31v1GKzhDCrMc6r6vA",
            Implementation::Libsodium,
        ),
        // Two lanes: the crate.
        (
            "$argon2id$v=19$m=1024,t=2,p=2$c29tZXNhbHRzb21lc2FsdA$\
                 E2UjtrDTCgIx4mfpqQ9GwLzvabuQuVCcwisqBRbSI+4",
            Implementation::Argon2Crate,
        ),
        // 20-byte salt: the crate.
        (
            "$argon2id$v=19$m=1024,t=2,p=1$c29tZXNhbHRzb21lc2FsdHNvbWU$\
                 TNhaeeQGSgpQuU2eom8Bl7JP3APyZDnPhCvgMbrmwYM",
            Implementation::Argon2Crate,
        ),
    ];
    let mut kdf = Argon2Kdf::new();
    for (reference, implementation) in cases {
        let phc = Phc::parse(reference).unwrap();
        assert_eq!(phc.encode(), reference);
        assert_eq!(
            Implementation::for_hash(phc.params, phc.salt.len()),
            implementation,
            "{reference}"
        );
        assert!(kdf.verify(reference, b"password").unwrap(), "{reference}");
        assert!(!kdf.verify(reference, b"Password").unwrap(), "{reference}");
    }
}

#[test]
fn the_self_test_passes_with_the_real_implementations() {
    assert_eq!(self_test(), Ok(()));
    assert_eq!(self_test_failure(), None);
    // Each vector really runs on its implementation, and the libsodium one's tag is also
    // what the crate computes (three implementations agree on it).
    for v in &VECTORS {
        assert_eq!(run_vector(v).unwrap(), v.tag, "{}", v.name);
    }
    for i in [1, 2] {
        let crate_only = Vector {
            implementation: Implementation::Argon2Crate,
            ..VECTORS[i]
        };
        assert_eq!(run_vector(&crate_only).unwrap(), VECTORS[i].tag);
    }
    // Both profiles pass and check RFC 9106 plus one libsodium vector each.
    assert_eq!(run_vectors(&VECTORS, &[0, 1]), Ok(()));
    assert_eq!(run_vectors(&VECTORS, &[0, 2]), Ok(()));
    let mut broken = VECTORS;
    broken[2].tag[0] ^= 1;
    assert!(run_vectors(&broken, &[0, 1]).is_ok());
    let e = run_vectors(&broken, &[0, 2]).unwrap_err();
    assert!(
        e.contains("m=1024,t=2,p=1 (libsodium): wrong result"),
        "{e}"
    );
}

#[test]
fn a_failed_self_test_fails_every_computation_closed() {
    let mut kdf = Argon2Kdf::new();
    let stored = kdf.hash_new(FAST, b"abcdefghijklmnopqrstuvwx").unwrap();
    // In this thread only: the known-answer test now compares with a wrong tag.
    seam::break_self_test_in_this_thread();
    let why = self_test_failure().unwrap();
    assert!(
        why.contains("m=19456,t=2,p=1 (libsodium): wrong result"),
        "{why}"
    );
    assert_eq!(
        kdf.verify(&stored, b"abcdefghijklmnopqrstuvwx"),
        Err(HashError::SelfTest)
    );
    assert_eq!(
        kdf.hash_new(FAST, b"abcdefghijklmnopqrstuvwx"),
        Err(HashError::SelfTest)
    );
    let p2 = Params {
        parallelism: 2,
        ..FAST
    };
    assert_eq!(
        kdf.hash_new(p2, b"abcdefghijklmnopqrstuvwx"),
        Err(HashError::SelfTest)
    );
    kdf.dummy(FAST, b"abcdefghijklmnopqrstuvwx");
    // Other threads (and processes) are unaffected.
    std::thread::spawn(move || {
        assert_eq!(self_test_failure(), None);
        assert!(
            Argon2Kdf::new()
                .verify(&stored, b"abcdefghijklmnopqrstuvwx")
                .unwrap()
        );
    })
    .join()
    .unwrap();
}

#[test]
fn with_a_gate_the_crate_path_holds_no_pages_between_computations() {
    use crate::hugemem::tests::resident_kib;
    let dir = tempfile::tempdir().unwrap();
    let settings = crate::gate::Settings {
        max_concurrent: 1,
        queue_timeout: std::time::Duration::from_millis(200),
        path: dir.path().join("argon2-gate"),
    };
    let p2 = Params {
        parallelism: 2,
        ..FAST
    };
    let stored = Argon2Kdf::new()
        .hash_new(p2, b"abcdefghijklmnopqrstuvwx")
        .unwrap();
    let start = |kdf: &mut Argon2Kdf| {
        let m = kdf.crate_memory.as_mut().unwrap();
        m.for_computation(0).as_ptr() as usize
    };
    // Without a gate the 1 MiB stays resident (warm) for the next computation...
    let mut warm = Argon2Kdf::new();
    assert!(warm.verify(&stored, b"abcdefghijklmnopqrstuvwx").unwrap());
    let kib = resident_kib(start(&mut warm));
    assert!(kib >= 1024, "{kib} KiB");
    // ...with one, its pages go back to the kernel before the slot does.
    let mut gated = Argon2Kdf::new();
    gated.use_gate(&settings);
    assert!(gated.is_gated(), "{:?}", gated.take_warning());
    for _ in 0..2 {
        assert!(gated.verify(&stored, b"abcdefghijklmnopqrstuvwx").unwrap());
        let kib = resident_kib(start(&mut gated));
        assert!(kib < 64, "{kib} KiB resident between computations");
    }
    crate::gate::remove(&settings.path).unwrap();
}

#[test]
fn the_crate_path_wipes_its_memory_after_each_computation() {
    let p2 = Params {
        parallelism: 2,
        ..FAST
    };
    let mut kdf = Argon2Kdf::new();
    let stored = kdf.hash_new(p2, b"abcdefghijklmnopqrstuvwx").unwrap();
    assert!(kdf.verify(&stored, b"abcdefghijklmnopqrstuvwx").unwrap());
    let memory = kdf.crate_memory.as_mut().unwrap();
    let blocks = memory.len();
    assert_eq!(blocks, 1024);
    let all_zero = memory
        .for_computation(blocks)
        .iter()
        .all(|b| b.as_ref().iter().all(|&w| w == 0));
    assert!(all_zero, "password-derived blocks left in memory");
    // The libsodium path keeps no memory of ours at all.
    let mut kdf = Argon2Kdf::new();
    kdf.hash_new(FAST, b"abcdefghijklmnopqrstuvwx").unwrap();
    assert!(kdf.crate_memory.is_none());
}

#[test]
fn dummy_takes_the_path_of_a_real_hash_with_the_same_parameters() {
    for params in [
        FAST,
        Params {
            parallelism: 2,
            ..FAST
        },
        Params::default(),
    ] {
        let stored = Phc::parse(&Argon2Kdf::new().hash_new(params, b"x").unwrap()).unwrap();
        assert_eq!(
            Implementation::for_hash(params, b"apppw-dummy-salt".len()),
            Implementation::for_hash(stored.params, stored.salt.len()),
        );
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]

    /// libsodium and the crate compute the same Argon2id wherever both can (one lane,
    /// 16-byte salt): a hash written by one verifies with the other.
    #[test]
    fn libsodium_and_the_crate_agree(
        password in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        salt in proptest::prelude::any::<[u8; 16]>(),
        memory_kib in 8u32..300,
        iterations in 1u32..4,
    ) {
        let params = Params { memory_kib, iterations, parallelism: 1 };
        let mut ours = [0u8; OUTPUT_LEN];
        sodium::argon2id(&mut ours, &password, &salt, iterations, memory_kib).unwrap();
        let mut theirs = [0u8; OUTPUT_LEN];
        Argon2Kdf::new().with_crate(params, &password, &salt, &mut theirs).unwrap();
        proptest::prop_assert_eq!(ours, theirs);
    }
}

#[test]
fn rejects_malformed_phc() {
    for bad in [
        "",
        "$argon2i$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$AAAA",
        "$argon2id$v=16$m=1024,t=1,p=1$c29tZXNhbHQ$AAAA",
        "$argon2id$v=19$m=1024,t=1$c29tZXNhbHQ$AAAA",
        "$argon2id$v=19$m=1024,t=1,p=1$!!!$AAAA",
        "$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$AAAA",
        "$argon2id$v=19$m=8,t=1,p=1$c29tZXNhbHQ$7FfsnA6vUe7qLpL/3Kqc3uR48ZJyFbUVt7jWZlf0Htk",
    ] {
        assert!(Phc::parse(bad).is_err(), "{bad}");
    }
    let mut kdf = Argon2Kdf::new();
    assert_eq!(kdf.verify("garbage", b"x"), Err(HashError::Malformed));
}

#[test]
fn params_validation() {
    assert!(Params::default().validate().is_ok());
    assert!(FAST.validate().is_ok());
    assert!(
        Params {
            memory_kib: 512,
            ..FAST
        }
        .validate()
        .is_err()
    );
    assert!(
        Params {
            iterations: 0,
            ..FAST
        }
        .validate()
        .is_err()
    );
    assert!(
        Params {
            parallelism: 0,
            ..FAST
        }
        .validate()
        .is_err()
    );
}
