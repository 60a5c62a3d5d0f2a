//! The texts are embedded from `locales/` by `fluent_templates::static_loader!`, which finds
//! the language folders when the crate is compiled: rebuild when a folder or file is added.
fn main() {
    println!("cargo:rerun-if-changed=locales");
    println!("cargo:rerun-if-changed=templates");
}
