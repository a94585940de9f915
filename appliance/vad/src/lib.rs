//! vb-vad (being written).
