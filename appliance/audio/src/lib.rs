//! vb-audio (being written).
