//! Links `pam_apppw.so` with `-z nodelete`: once a host has loaded it, `dlclose` (libpam calls
//! it in every `pam_end`) leaves it in memory. A long-lived host such as Dovecot's auth worker
//! then pays the load and relocation once, not per login, and the module can keep its Argon2
//! memory and database connection for the next attempt (see `src/lib.rs`). It also spares the
//! host the unloading of Rust code whose thread-local destructors may still be registered.
fn main() {
    println!("cargo:rustc-cdylib-link-arg=-Wl,-z,nodelete");
}
