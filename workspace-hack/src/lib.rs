//! No code: this crate is here for the features it turns on in its dependencies
//! (see its Cargo.toml).
