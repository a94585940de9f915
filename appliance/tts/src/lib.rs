//! vb-tts (being written).
