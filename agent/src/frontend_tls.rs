//! The frontend's TLS settings (protocols, ciphers, session handling, HSTS).

use crate::context::Context;

/// The directives inside the HTTPS `server` block; `real_cert`: the certificate is the
/// appliance's (ACME, operator or its self-signed fallback), not the per-boot placeholder.
pub fn server_directives(_ctx: &Context, _real_cert: bool) -> String {
    "    ssl_protocols TLSv1.2 TLSv1.3;\n".to_string()
}
