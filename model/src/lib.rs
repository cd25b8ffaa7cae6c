//! The trained-model format, shared by the stages that make and use models:
//! `train` fits and saves them, `predict` and `serve` load and apply them.
//! One implementation of the features' encoding and of every algorithm's
//! prediction, so a served prediction is the number `predict` gives.

pub mod artifact;
pub mod features;
pub mod models;
pub mod omp;

pub use omp::respawn_with_passive_openmp;
