//! Where a dump goes: a [`Sink`] takes whole frames. [`SliceSink`] fills a memory region
//! (one that survives a reboot, a buffer); under `std`, [`IoSink`] writes any
//! `io::Write` (a file, a serial device). A kernel's serial port implements [`Sink`].

/// Why a sink refused bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SinkError {
    /// The region is full: what fit was written.
    Full,
    /// The device or file failed.
    Io,
}

impl core::fmt::Display for SinkError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(match self {
            SinkError::Full => "dump sink full",
            SinkError::Io => "dump sink I/O error",
        })
    }
}

/// A byte sink. Called once per frame, at panic or trap time: must not allocate.
pub trait Sink {
    fn write(&mut self, bytes: &[u8]) -> Result<(), SinkError>;
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

impl<S: Sink + ?Sized> Sink for &mut S {
    fn write(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        (**self).write(bytes)
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        (**self).flush()
    }
}

/// A memory region. When full, writes the prefix that fits (a decoder reports the cut
/// frame) and fails.
#[derive(Debug)]
pub struct SliceSink<'a> {
    buf: &'a mut [u8],
    len: usize,
}

impl<'a> SliceSink<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        SliceSink { buf, len: 0 }
    }
    /// The bytes written so far.
    pub fn written(&self) -> &[u8] {
        &self.buf[..self.len]
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Sink for SliceSink<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        let room = self.buf.len() - self.len;
        let n = bytes.len().min(room);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        if n < bytes.len() {
            Err(SinkError::Full)
        } else {
            Ok(())
        }
    }
}

/// A sink that calls a function with each frame (a UART's transmit loop).
pub struct FnSink<F: FnMut(&[u8]) -> Result<(), SinkError>>(pub F);

impl<F: FnMut(&[u8]) -> Result<(), SinkError>> Sink for FnSink<F> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        (self.0)(bytes)
    }
}

/// Appends to a vector (tests, hosts; allocates, so not for a panic path).
#[cfg(feature = "alloc")]
impl Sink for alloc::vec::Vec<u8> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        self.extend_from_slice(bytes);
        Ok(())
    }
}

/// Any `io::Write`: a file opened before the panic, a serial device, stderr. One
/// `write_all` per frame; wrap slow writers in a `BufWriter` created beforehand.
#[cfg(feature = "std")]
#[derive(Debug)]
pub struct IoSink<W: std::io::Write>(pub W);

#[cfg(feature = "std")]
impl<W: std::io::Write> Sink for IoSink<W> {
    fn write(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        self.0.write_all(bytes).map_err(|_| SinkError::Io)
    }
    fn flush(&mut self) -> Result<(), SinkError> {
        self.0.flush().map_err(|_| SinkError::Io)
    }
}

/// A file sink: create it at start-up (opening allocates), write at panic time.
#[cfg(feature = "std")]
pub type FileSink = IoSink<std::fs::File>;

#[cfg(feature = "std")]
impl FileSink {
    /// Creates (truncates) the dump file.
    pub fn create(path: impl AsRef<std::path::Path>) -> std::io::Result<FileSink> {
        Ok(IoSink(std::fs::File::create(path)?))
    }
}
