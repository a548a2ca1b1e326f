//! One module per command group; each leaf has an args struct with `run(self)`.

pub mod config;
pub mod disk;
pub mod image;
pub mod paper;
