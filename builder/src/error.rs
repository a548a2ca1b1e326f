//! Exit codes: 2 for bad usage or bad input (config files, flags, plans), 1 for a failed operation.

/// Marks an error as the user's input being wrong (exit code 2). Carry the file, key or line
/// and what was expected in the message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct BadInput(pub String);

impl BadInput {
    pub fn new(msg: impl Into<String>) -> Self {
        BadInput(msg.into())
    }
}

/// 2 when any error in the chain is `BadInput`, else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    if err.chain().any(|e| e.is::<BadInput>()) {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn bad_input_anywhere_in_chain_is_2() {
        let err = Err::<(), _>(BadInput::new("env.yml: key x"))
            .context("checking")
            .unwrap_err();
        assert_eq!(exit_code(&err), 2);
        assert_eq!(exit_code(&anyhow::anyhow!("disk full")), 1);
    }
}
