//! vb-stt (being written).
