//! End-to-end tests: the real stage binaries on real files.

mod browser;
mod build;
mod collect;
mod common;
mod corpus;
mod extract_csv;
mod fake_postgrest;
mod faults;
mod pipeline;
mod postgres;
mod progress;
mod report;
mod serve;
mod status;
mod supabase;
mod synth;
mod train;
mod transform;
mod validate;
mod versions;
