//! pyo3 module.
