//! `batv._batv`, the native half of `import batv`: converts Python values to batv-core calls and
//! batv-core errors to Python exceptions, and decides nothing itself.
//!
//! Every call on the hot path (`sign`, `verify`, `status`, `strip`, `is_tagged`) borrows the
//! UTF-8 of the argument `str` without copying, works in a stack buffer, and allocates only the
//! `str` it returns (none at all when the answer is the argument itself). The core reads the
//! clock unless `now` is given; a `datetime` is converted only when one is passed.

#![forbid(unsafe_code)]

use std::borrow::Cow;
use std::path::PathBuf;

use batv_core::{AddressProblem, Outcome, SignError, Signed, VerifyError, SIGNED_MAX};
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyDateTime, PyInt, PyString, PyTuple};
use pyo3::{create_exception, intern};

create_exception!(
    batv,
    BatvError,
    PyValueError,
    "Base class of every batv error; a ValueError."
);
create_exception!(batv, Untagged, BatvError, "The address has no prvs= tag.");
create_exception!(
    batv,
    Malformed,
    BatvError,
    "The address starts like a prvs= tag but is not one."
);
create_exception!(
    batv,
    UnknownKey,
    BatvError,
    "The tag's key number is not in the keyring."
);
create_exception!(
    batv,
    BadSignature,
    BatvError,
    "The tag's signature does not match: it was not made with this keyring."
);
create_exception!(
    batv,
    Expired,
    BatvError,
    "The tag's signature matches, but its day is outside the keyring's window."
);
create_exception!(
    batv,
    KeyringError,
    BatvError,
    "A keyring could not be loaded or parsed; .path and .line say where (None when unknown)."
);

/// Longest piece of an address quoted in an error message.
const SHOWN_CHARS: usize = 80;

/// The text of a `str` argument, borrowed (no copy on the 3.10+ limited API), or a TypeError
/// that names the argument and the type that was passed.
fn text_of<'a>(obj: &'a Bound<'_, PyAny>, name: &str) -> PyResult<Cow<'a, str>> {
    match obj.cast::<PyString>() {
        Ok(s) => s.to_cow(),
        Err(_) => Err(wrong_type(obj, name, "a str")),
    }
}

#[cold]
fn wrong_type(obj: &Bound<'_, PyAny>, name: &str, expected: &str) -> PyErr {
    let ty = obj
        .get_type()
        .name()
        .map_or_else(|_| "an unknown type".to_string(), |n| n.to_string());
    let hint = if ty == "bytes" {
        " (decode it first)"
    } else {
        ""
    };
    PyTypeError::new_err(format!("{name} must be {expected}, not {ty}{hint}"))
}

/// A string as Python's repr() shows it.
#[cold]
fn py_repr(py: Python<'_>, s: &str) -> String {
    PyString::new(py, s)
        .repr()
        .map_or_else(|_| format!("{s:?}"), |r| r.to_string())
}

/// An address as Python's repr() shows it, shortened: for error messages only.
#[cold]
fn shown(py: Python<'_>, address: &str) -> String {
    match address.char_indices().nth(SHOWN_CHARS) {
        Some((cut, _)) => format!("{}...", py_repr(py, &address[..cut])),
        None => py_repr(py, address),
    }
}

/// `now` as Unix seconds: the system clock for None, an int as it is, an aware datetime at its
/// instant (floored to the second). A naive datetime is refused: it is local time to
/// `datetime.timestamp()` but UTC to `datetime.utcnow()`, and a guess could move the day.
fn unix_time(now: Option<&Bound<'_, PyAny>>) -> PyResult<i64> {
    let Some(now) = now else {
        return Ok(batv_core::unix_now());
    };
    if let Ok(int) = now.cast::<PyInt>() {
        if now.is_instance_of::<PyBool>() {
            return Err(PyTypeError::new_err(
                "now must be None, an int (Unix seconds) or an aware datetime, not bool",
            ));
        }
        return int.extract::<i64>().map_err(|_| {
            PyOverflowError::new_err("now is outside the range of a 64-bit Unix time")
        });
    }
    if let Ok(dt) = now.cast::<PyDateTime>() {
        return datetime_seconds(dt);
    }
    Err(wrong_type(
        now,
        "now",
        "None, an int (Unix seconds) or an aware datetime",
    ))
}

#[cold]
fn datetime_seconds(dt: &Bound<'_, PyDateTime>) -> PyResult<i64> {
    let py = dt.py();
    if dt.call_method0(intern!(py, "utcoffset"))?.is_none() {
        return Err(PyTypeError::new_err(
            "now is a naive datetime (no tzinfo), which could be local time or UTC; \
             pass an aware one such as datetime.now(timezone.utc)",
        ));
    }
    static TIMEGM: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    // utctimetuple() of an aware datetime is its instant in UTC without the microseconds, so
    // timegm gives the floor of the timestamp exactly (no float rounding at midnight).
    let utc = dt.call_method0(intern!(py, "utctimetuple"))?;
    TIMEGM
        .import(py, "calendar", "timegm")?
        .call1((utc,))?
        .extract::<i64>()
}

#[cold]
fn verify_error(py: Python<'_>, address: &str, e: VerifyError) -> PyErr {
    let msg = format!("{}: {e}", shown(py, address));
    match e {
        VerifyError::Untagged => Untagged::new_err(msg),
        VerifyError::Malformed(_) => Malformed::new_err(msg),
        VerifyError::UnknownKey(_) => UnknownKey::new_err(msg),
        VerifyError::BadSignature => BadSignature::new_err(msg),
        VerifyError::Expired => Expired::new_err(msg),
    }
}

#[cold]
fn sign_error(py: Python<'_>, address: &str, e: SignError) -> PyErr {
    let msg = match e {
        // The core's message already gives the length; the address itself would be noise.
        SignError::Address(
            p @ (AddressProblem::TooLong { .. } | AddressProblem::TooLongToSign { .. }),
        ) => format!("cannot sign: {p}"),
        SignError::Address(p) => format!("cannot sign {}: {p}", shown(py, address)),
        e => e.to_string(),
    };
    BatvError::new_err(msg)
}

/// A KeyringError with `.path` and `.line` set, and the core's one-line message (which names
/// the file and line and never a secret).
#[cold]
fn keyring_error(py: Python<'_>, e: batv_core::KeyringError) -> PyErr {
    let err = KeyringError::new_err(e.to_string());
    let value = err.value(py);
    let set = || -> PyResult<()> {
        value.setattr(
            intern!(py, "path"),
            e.path.as_deref().map(|p| p.as_os_str()),
        )?;
        value.setattr(intern!(py, "line"), e.line)?;
        Ok(())
    };
    match set() {
        Ok(()) => err,
        Err(other) => other,
    }
}

/// The core's outcome word, interned: each word is one Python object, made once.
fn outcome_word(py: Python<'_>, o: Outcome) -> Bound<'_, PyString> {
    PyString::intern(py, o.as_str())
}

/// An immutable set of BATV keys with their lifetime and skew; share one between threads.
#[pyclass(frozen, module = "batv")]
struct Keyring {
    inner: batv_core::Keyring,
}

#[pymethods]
impl Keyring {
    /// A new keyring with one random hmac-sha256 key, number 1.
    #[staticmethod]
    fn generate(py: Python<'_>) -> PyResult<Keyring> {
        match py.detach(batv_core::Keyring::generate) {
            Ok(inner) => Ok(Keyring { inner }),
            Err(e) => Err(keyring_error(py, e)),
        }
    }

    /// Loads a keyring file; refuses one that other users could read or write (by its mode,
    /// owner or ACL) and one that is not a regular file.
    #[staticmethod]
    fn load(py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<Keyring> {
        let path: PathBuf = path
            .extract()
            .map_err(|_| wrong_type(path, "path", "a str or os.PathLike"))?;
        match py.detach(|| batv_core::Keyring::load(&path)) {
            Ok(inner) => Ok(Keyring { inner }),
            Err(e) => Err(keyring_error(py, e)),
        }
    }

    /// Parses keyring text (no file, so no permission check).
    #[staticmethod]
    fn parse(py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<Keyring> {
        let text = text_of(text, "text")?;
        match batv_core::Keyring::parse(&text) {
            Ok(inner) => Ok(Keyring { inner }),
            Err(e) => Err(keyring_error(py, e)),
        }
    }

    /// Signs an envelope sender; returns the null sender and tagged addresses unchanged.
    #[pyo3(signature = (address, now = None))]
    fn sign<'py>(
        &self,
        address: &Bound<'py, PyAny>,
        now: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let py = address.py();
        let text = text_of(address, "address")?;
        let now = unix_time(now)?;
        let mut buf = [0u8; SIGNED_MAX];
        match self.inner.sign_into(&*text, now, &mut buf) {
            Ok(Signed::Unchanged) => Ok(address.clone()),
            Ok(Signed::Written(n)) => {
                // ASCII tag characters around pieces of a str: always UTF-8.
                let signed = String::from_utf8_lossy(&buf[..n]);
                Ok(PyString::new(py, &signed).into_any())
            }
            Err(e) => Err(sign_error(py, &text, e)),
        }
    }

    /// Verifies a tagged address and returns the original address, or raises the BatvError
    /// subclass that names the outcome.
    #[pyo3(signature = (address, now = None))]
    fn verify<'py>(
        &self,
        address: &Bound<'py, PyAny>,
        now: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyString>> {
        let py = address.py();
        let text = text_of(address, "address")?;
        let now = unix_time(now)?;
        match self.inner.verify_at(&*text, now) {
            Ok(original) => match original.as_contiguous() {
                Some(s) => Ok(PyString::new(py, s)),
                None => {
                    let mut buf = [0u8; SIGNED_MAX];
                    let n = original.copy_to(&mut buf).unwrap_or(0);
                    Ok(PyString::new(py, &String::from_utf8_lossy(&buf[..n])))
                }
            },
            Err(e) => Err(verify_error(py, &text, e)),
        }
    }

    /// The outcome word: valid, untagged, malformed, unknown-key, bad-signature or expired.
    #[pyo3(signature = (address, now = None))]
    fn status<'py>(
        &self,
        address: &Bound<'py, PyAny>,
        now: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyString>> {
        let text = text_of(address, "address")?;
        let now = unix_time(now)?;
        Ok(outcome_word(address.py(), self.inner.status_at(&*text, now)))
    }

    /// This keyring with a new random key of the signing key's scheme under a free key number
    /// (the first after the signing key, 9 wrapping to 0), which becomes the signing key; the
    /// old keys keep verifying. KeyringError when every number holds a key that may still verify.
    fn rotated(&self, py: Python<'_>) -> PyResult<Keyring> {
        match py.detach(|| self.inner.rotated(batv_core::unix_now())) {
            Ok(inner) => Ok(Keyring { inner }),
            Err(e) => Err(keyring_error(py, e)),
        }
    }

    /// The keyring as file text, SECRETS INCLUDED: write it only to a file of mode 0600.
    fn to_file_text(&self) -> String {
        self.inner.to_file_text().to_string()
    }

    /// Days a new tag lives.
    #[getter]
    fn lifetime_days(&self) -> u16 {
        self.inner.lifetime_days()
    }

    /// Days of clock skew tolerated beyond the lifetime.
    #[getter]
    fn skew_days(&self) -> u16 {
        self.inner.skew_days()
    }

    /// The number (0-9) of the key that signs.
    #[getter]
    fn sign_key(&self) -> u8 {
        self.inner.signing_key().number()
    }

    /// The numbers of all keys, which all verify, in ascending order.
    #[getter]
    fn key_numbers<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let numbers: Vec<u8> = self.inner.keys().map(|k| k.number()).collect();
        PyTuple::new(py, numbers)
    }

    fn __repr__(&self) -> String {
        let keys: Vec<String> = self
            .inner
            .keys()
            .map(|k| format!("{} {}", k.number(), k.scheme()))
            .collect();
        format!(
            "<batv.Keyring keys=[{}] sign_key={} lifetime_days={} skew_days={}>",
            keys.join(", "),
            self.inner.signing_key().number(),
            self.inner.lifetime_days(),
            self.inner.skew_days()
        )
    }
}

/// The decision for one recipient of one SMTP transaction.
#[pyclass(frozen, eq, hash, module = "batv")]
#[derive(PartialEq, Eq, Hash)]
struct Verdict {
    accepted: bool,
    reason: batv_core::Reason,
    deliver_to: Option<String>,
    smtp_reply: Option<&'static str>,
    monitored: bool,
}

#[pymethods]
impl Verdict {
    /// Whether to accept the recipient (always True in monitor mode).
    #[getter]
    fn accepted(&self) -> bool {
        self.accepted
    }

    /// valid, exempt, not-bounce, untagged, malformed, unknown-key, bad-signature or expired.
    #[getter]
    fn reason(&self) -> &'static str {
        self.reason.as_str()
    }

    /// The address to deliver to (the original address for a tagged recipient); None when
    /// rejected.
    #[getter]
    fn deliver_to(&self) -> Option<&str> {
        self.deliver_to.as_deref()
    }

    /// The SMTP reply for a reject ("550 5.7.1 ..."); None when accepted.
    #[getter]
    fn smtp_reply(&self) -> Option<&'static str> {
        self.smtp_reply
    }

    /// True when monitor mode accepted what it would otherwise have rejected.
    #[getter]
    fn monitored(&self) -> bool {
        self.monitored
    }

    fn __repr__(&self, py: Python<'_>) -> String {
        let opt = |v: Option<&str>| v.map_or_else(|| "None".to_string(), |s| py_repr(py, s));
        format!(
            "Verdict(accepted={}, reason={}, deliver_to={}, smtp_reply={}, monitored={})",
            py_bool(self.accepted),
            py_repr(py, self.reason.as_str()),
            opt(self.deliver_to.as_deref()),
            opt(self.smtp_reply),
            py_bool(self.monitored)
        )
    }
}

fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

/// The bounce policy (docs/scheme.md, "Bounce policy") with the keyring it verifies against.
#[pyclass(frozen, module = "batv")]
struct Policy {
    keyring: Py<Keyring>,
    exempt: Py<PyTuple>,
    bounce_local_parts: Py<PyTuple>,
    inner: batv_core::Policy,
}

/// The items of an iterable of str as a tuple, refusing a bare str (which would iterate as
/// characters) and anything that is not a str.
fn str_items<'py>(obj: &Bound<'py, PyAny>, name: &str) -> PyResult<Bound<'py, PyTuple>> {
    if obj.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(format!(
            "{name} must be an iterable of str, not a single str (write ({},))",
            py_repr(obj.py(), &obj.to_string())
        )));
    }
    let iter = obj
        .try_iter()
        .map_err(|_| wrong_type(obj, name, "an iterable of str"))?;
    let mut items = Vec::new();
    for item in iter {
        let item = item?;
        let name = format!("each item of {name}");
        text_of(&item, &name)?;
        items.push(item);
    }
    PyTuple::new(obj.py(), items)
}

#[pymethods]
impl Policy {
    #[new]
    #[pyo3(signature = (keyring, exempt = None, bounce_local_parts = None, monitor = None))]
    // A list because inspect drops the comma of a one-element tuple in a text signature.
    #[pyo3(
        text_signature = "(keyring, exempt=(), bounce_local_parts=['mailer-daemon'], monitor=False)"
    )]
    fn new(
        py: Python<'_>,
        keyring: &Bound<'_, PyAny>,
        exempt: Option<&Bound<'_, PyAny>>,
        bounce_local_parts: Option<&Bound<'_, PyAny>>,
        monitor: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Policy> {
        let keyring = keyring
            .cast::<Keyring>()
            .map_err(|_| wrong_type(keyring, "keyring", "a batv.Keyring"))?
            .clone()
            .unbind();
        let monitor = match monitor {
            None => false,
            Some(m) => m
                .cast::<PyBool>()
                .map_err(|_| wrong_type(m, "monitor", "a bool"))?
                .is_true(),
        };
        let exempt = match exempt {
            Some(e) => str_items(e, "exempt")?,
            None => PyTuple::empty(py),
        };
        let mut inner = batv_core::Policy::default();
        inner.set_monitor(monitor);
        for pattern in exempt.iter() {
            let text = text_of(&pattern, "exempt")?;
            inner.add_exempt(&text).map_err(|e| {
                BatvError::new_err(format!("exempt pattern {}: {e}", shown(py, &text)))
            })?;
        }
        let bounce_local_parts = match bounce_local_parts {
            Some(b) => {
                let given = str_items(b, "bounce_local_parts")?;
                let mut parts = Vec::with_capacity(given.len());
                for part in given.iter() {
                    parts.push(text_of(&part, "bounce_local_parts")?.into_owned());
                }
                inner
                    .set_bounce_local_parts(&parts)
                    .map_err(|e| BatvError::new_err(format!("bounce_local_parts: {e}")))?;
                given
            }
            // The core's default, as the core has it.
            None => PyTuple::new(py, inner.bounce_local_parts().collect::<Vec<_>>())?,
        };
        Ok(Policy {
            keyring,
            exempt: exempt.unbind(),
            bounce_local_parts: bounce_local_parts.unbind(),
            inner,
        })
    }

    /// Decides one recipient: accept a valid tag (deliver to the original address), accept an
    /// exempt or non-bounce recipient, reject a bounce to an untagged or badly tagged one.
    #[pyo3(signature = (sender, recipient, now = None))]
    fn check(
        &self,
        sender: &Bound<'_, PyAny>,
        recipient: &Bound<'_, PyAny>,
        now: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Verdict> {
        let sender = text_of(sender, "sender")?;
        let recipient = text_of(recipient, "recipient")?;
        let now = unix_time(now)?;
        let v = self
            .inner
            .check(&self.keyring.get().inner, &*sender, &*recipient, now);
        Ok(Verdict {
            accepted: v.accepted,
            reason: v.reason,
            deliver_to: v.deliver_to,
            smtp_reply: v.smtp_reply,
            monitored: v.monitored,
        })
    }

    /// The keyring this policy verifies against.
    #[getter]
    fn keyring(&self, py: Python<'_>) -> Py<Keyring> {
        self.keyring.clone_ref(py)
    }

    /// The exemption patterns, as given.
    #[getter]
    fn exempt(&self, py: Python<'_>) -> Py<PyTuple> {
        self.exempt.clone_ref(py)
    }

    /// The sender local parts that count as bounces besides the null sender, as given.
    #[getter]
    fn bounce_local_parts(&self, py: Python<'_>) -> Py<PyTuple> {
        self.bounce_local_parts.clone_ref(py)
    }

    /// Whether monitor mode (log, never reject) is on.
    #[getter]
    fn monitor(&self) -> bool {
        self.inner.is_monitor()
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "batv.Policy({}, exempt={}, bounce_local_parts={}, monitor={})",
            self.keyring.bind(py).repr()?,
            self.exempt.bind(py).repr()?,
            self.bounce_local_parts.bind(py).repr()?,
            py_bool(self.inner.is_monitor())
        ))
    }
}

/// The original address of a tagged address, without verifying anything; the address itself
/// when it is untagged or malformed.
#[pyfunction]
fn strip<'py>(address: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyAny>> {
    let text = text_of(address, "address")?;
    let stripped = batv_core::strip(&*text);
    if stripped.len() == text.len() {
        // strip only ever removes octets, so the same length is the same address.
        return Ok(address.clone());
    }
    // What is left of a str, cut at ASCII octets, is UTF-8.
    Ok(PyString::new(address.py(), &String::from_utf8_lossy(&stripped)).into_any())
}

/// Whether the address carries a well-formed prvs= tag (verified or not).
#[pyfunction]
fn is_tagged(address: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(batv_core::is_tagged(&*text_of(address, "address")?))
}

#[pymodule(gil_used = false)]
fn _batv(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<Keyring>()?;
    m.add_class::<Policy>()?;
    m.add_class::<Verdict>()?;
    m.add_function(wrap_pyfunction!(strip, m)?)?;
    m.add_function(wrap_pyfunction!(is_tagged, m)?)?;
    m.add("BatvError", py.get_type::<BatvError>())?;
    m.add("Untagged", py.get_type::<Untagged>())?;
    m.add("Malformed", py.get_type::<Malformed>())?;
    m.add("UnknownKey", py.get_type::<UnknownKey>())?;
    m.add("BadSignature", py.get_type::<BadSignature>())?;
    m.add("Expired", py.get_type::<Expired>())?;
    let keyring_error = py.get_type::<KeyringError>();
    // Class defaults, so a KeyringError raised by Python code also has both attributes.
    keyring_error.setattr("path", py.None())?;
    keyring_error.setattr("line", py.None())?;
    m.add("KeyringError", keyring_error)?;
    Ok(())
}
