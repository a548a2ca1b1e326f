//! Small host plumbing shared by `ecs-build` and `ecs-agent`.
//!
//! It owns what every other crate would otherwise re-invent: running external tools (found
//! once, named with their Debian package when missing, failing with argv and stderr), writing
//! files so that nothing half-written ever appears under a final name, and hiding the passwords
//! URLs carry before they are shown or logged (`redact`), and reading named config files
//! safely (`read`: regular files only, size-capped).
//! It knows nothing of ECS, images or appliances.

pub mod atomic;
pub mod command;
pub mod read;
pub mod redact;
pub mod space;
pub mod tool;
pub mod user;

pub use atomic::{AtomicDir, AtomicFile, write_atomic};
pub use command::{CommandError, CommandExt};
pub use read::read_regular;
pub use redact::{redact_url, redact_urls};
pub use space::{available_bytes, free_space_note};
pub use tool::{MissingTool, Tool};
pub use user::is_root;
