//! Cross-crate acceptance tests for mapcore and mapcore-std; the tests live in `tests/tests/`.
