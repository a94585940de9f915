//! vb-dialog (being written).
