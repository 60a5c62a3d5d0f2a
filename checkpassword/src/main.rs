//! `apppw-checkpassword`: the Dovecot 2.3 checkpassword backend for apppw (the program is in
//! `lib.rs`). Without OpenSSL; a database that needs TLS is handed to
//! `apppw-checkpassword-tls`.
#![deny(unsafe_code)]

fn main() {
    apppw_checkpassword::program(false)
}
