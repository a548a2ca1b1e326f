//! The build timestamp. `SOURCE_DATE_EPOCH` wins everywhere (reproducible output); each
//! command chooses its own fallback when it is unset.

use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::BadInput;

/// `SOURCE_DATE_EPOCH` when set; a value that is not whole seconds is the user's error.
pub fn source_date_epoch() -> Result<Option<u64>, BadInput> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Err(_) => Ok(None),
        Ok(v) => v.trim().parse().map(Some).map_err(|_| {
            BadInput::new(format!(
                "SOURCE_DATE_EPOCH={v:?}: expected whole seconds since 1970"
            ))
        }),
    }
}

/// `SOURCE_DATE_EPOCH`, else the current time.
pub fn source_date_epoch_or_now() -> Result<u64, BadInput> {
    Ok(source_date_epoch()?.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }))
}
