//! The harness lives in `vb_llm::testing` (feature `testing`) so the call
//! loop's tests start the same llama.cpp server and fault servers.

pub use vb_llm::testing::*;
