//! libbatv.
