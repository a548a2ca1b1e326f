//! One module per command group; each leaf has an args struct with `run(self)`.

pub mod config;
pub mod disk;
pub mod disk_data;
pub mod image;
pub mod paper;
