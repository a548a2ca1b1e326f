//! Shared harness for end-to-end tests: qemu boots with serial-console markers and forwarded ports.
