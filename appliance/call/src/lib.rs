//! vb-call (being written).
