//! `apppw-checkpassword-tls`: `apppw-checkpassword` with TLS to PostgreSQL (the system's
//! OpenSSL), which `apppw-checkpassword` runs in its place when the config's database needs
//! TLS. Run directly, it behaves the same.
#![deny(unsafe_code)]

fn main() {
    apppw::store::enable_postgres_tls();
    apppw_checkpassword::program(true)
}
