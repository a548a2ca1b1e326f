//! Client certificates: the app's CA, seeded from env.yml when the app has none, and the
//! frontend's verification against it.

use crate::context::Context;

/// The directives inside the HTTPS `server` block that verify client certificates.
pub fn nginx_directives(_ctx: &Context) -> String {
    String::new()
}
