//! vb-models (being written).
