//! Paper backup: bytes as chunked, labelled QR codes in a deterministic PDF, and back.
