//! Where addresses come from: the command line, or standard input one per line.
//!
//! Standard input is read through one reused line buffer, so a pipeline of millions of lines
//! allocates nothing per line. A line longer than [`MAX_LINE`] is never held whole: its first
//! [`MAX_LINE`] octets are kept and its full length is reported.

use crate::Fatal;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};

/// Octets of one input line kept in memory. An address has at most 254; the rest of a longer
/// line is skipped (and the line reported as too long), so memory stays bounded on any input.
pub const MAX_LINE: usize = 4096;

/// Read and write in chunks this large.
pub const IO_CHUNK: usize = 64 * 1024;

/// Where an address came from, for messages: `argument 2` or `line 7`.
#[derive(Clone, Copy, Debug)]
pub enum Place {
    /// The n-th address on the command line (1-based).
    Argument(usize),
    /// The n-th line of standard input (1-based).
    Line(u64),
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Place::Argument(n) => write!(f, "argument {n}"),
            Place::Line(n) => write!(f, "line {n}"),
        }
    }
}

/// One address as given: raw bytes, without the line end.
pub struct Address<'a> {
    /// The octets kept (all of them unless the line was longer than [`MAX_LINE`]).
    pub bytes: &'a [u8],
    /// The full length of the line in octets.
    pub full_len: usize,
    /// Where it came from.
    pub place: Place,
}

impl<'a> Address<'a> {
    /// Whether the line was longer than [`MAX_LINE`] and only its start was kept.
    pub fn is_truncated(&self) -> bool {
        self.full_len > self.bytes.len()
    }

    /// A short, escaped rendering of the input for an error message (addresses are not
    /// secrets; this keeps a control character or a huge line from garbling the terminal).
    pub fn preview(&self) -> String {
        const SHOWN: usize = 80;
        let cut = &self.bytes[..self.bytes.len().min(SHOWN)];
        let more = if self.full_len > cut.len() { "..." } else { "" };
        let mut shown = String::with_capacity(cut.len() + 8);
        shown.push('"');
        for chunk in cut.utf8_chunks() {
            shown.extend(chunk.valid().escape_debug());
            for b in chunk.invalid() {
                shown.push_str(&format!("\\x{b:02x}"));
            }
        }
        shown.push('"');
        shown.push_str(more);
        shown
    }
}

/// Calls `visit` for every address: the arguments when there are any, else every line of
/// standard input. Returns whether every call returned true.
///
/// `visit` writes its output line to `out`; standard input is read in [`IO_CHUNK`] pieces and
/// `out` is flushed whenever the next read could block, so `batv` also answers line by line
/// when it runs as a co-process.
pub fn each_address<W: Write>(
    args: &[OsString],
    out: &mut W,
    mut visit: impl FnMut(Address<'_>, &mut W) -> io::Result<bool>,
) -> Result<bool, Fatal> {
    let mut all_ok = true;
    if !args.is_empty() {
        for (i, arg) in args.iter().enumerate() {
            let bytes = arg.as_encoded_bytes();
            let address = Address {
                bytes,
                full_len: bytes.len(),
                place: Place::Argument(i + 1),
            };
            all_ok &= visit(address, out).map_err(Fatal::writing)?;
        }
        return Ok(all_ok);
    }

    let stdin = io::stdin();
    if stdin.is_terminal() {
        crate::say(format_args!(
            "reading addresses from standard input, one per line (end with Ctrl-D)"
        ));
    }
    let mut reader = BufReader::with_capacity(IO_CHUNK, stdin.lock());
    let mut line = Vec::with_capacity(MAX_LINE);
    let mut number: u64 = 0;
    while let Some(full_len) = read_line(&mut reader, &mut line, out)? {
        number += 1;
        let address = Address {
            bytes: &line,
            full_len,
            place: Place::Line(number),
        };
        all_ok &= visit(address, out).map_err(Fatal::writing)?;
    }
    Ok(all_ok)
}

/// Reads the next line into `line` without its `\n` or `\r\n`, keeping at most [`MAX_LINE`]
/// octets. Returns the full length of the line, or `None` at the end of input. A last line
/// without a final newline still counts.
fn read_line<R: Read, W: Write>(
    reader: &mut BufReader<R>,
    line: &mut Vec<u8>,
    out: &mut W,
) -> Result<Option<usize>, Fatal> {
    line.clear();
    let mut full_len = 0usize;
    let mut started = false;
    loop {
        if reader.buffer().is_empty() {
            // The next read may wait for the writer upstream: hand over what is done first.
            out.flush().map_err(Fatal::writing)?;
        }
        let chunk = match reader.fill_buf() {
            Ok(chunk) => chunk,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Fatal::Message(format!("cannot read standard input: {e}"))),
        };
        if chunk.is_empty() {
            if !started {
                return Ok(None);
            }
            break;
        }
        started = true;
        let (piece, used, ends) = match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => (&chunk[..i], i + 1, true),
            None => (chunk, chunk.len(), false),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        line.extend_from_slice(&piece[..piece.len().min(room)]);
        full_len += piece.len();
        reader.consume(used);
        if ends {
            break;
        }
    }
    if full_len == line.len() && line.last() == Some(&b'\r') {
        line.pop();
        full_len -= 1;
    }
    Ok(Some(full_len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<(Vec<u8>, usize)> {
        let mut reader = BufReader::with_capacity(7, input);
        let mut line = Vec::new();
        let mut sink = Vec::new();
        let mut got = Vec::new();
        while let Some(n) = read_line(&mut reader, &mut line, &mut sink).ok().flatten() {
            got.push((line.clone(), n));
        }
        got
    }

    #[test]
    fn strips_lf_and_crlf_and_keeps_a_last_line_without_newline() {
        let got = lines(b"a@b\r\nc@d\n\n\re@f");
        let want: Vec<(Vec<u8>, usize)> = vec![
            (b"a@b".to_vec(), 3),
            (b"c@d".to_vec(), 3),
            (b"".to_vec(), 0),
            (b"\re@f".to_vec(), 4),
        ];
        assert_eq!(got, want);
        assert!(lines(b"").is_empty());
        assert_eq!(lines(b"\n"), vec![(Vec::new(), 0)]);
    }

    #[test]
    fn a_long_line_is_cut_but_its_length_counted() {
        let mut input = vec![b'x'; MAX_LINE + 100];
        input.extend_from_slice(b"\r\nnext@example.com\n");
        let got = lines(&input);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0.len(), MAX_LINE);
        // The \r of a cut line is not seen, so it is counted: the line is too long anyway.
        assert_eq!(got[0].1, MAX_LINE + 101);
        assert_eq!(got[1], (b"next@example.com".to_vec(), 16));
    }
}
