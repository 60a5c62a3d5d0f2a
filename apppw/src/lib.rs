//! The `apppw` command-line definition, shared by the binary and the man page generator.
#![forbid(unsafe_code)]

pub mod cli;
