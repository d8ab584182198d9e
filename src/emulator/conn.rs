//! Connections that a handler can cut: the listener wraps every accepted socket so that the
//! `timeout`, `reset` and `drop` faults end the connection without writing a response.
//!
//! A handler marks the connection (`close` or `reset`) through the [`ConnHandle`] it receives as
//! connect info. From then on every read and write on the socket fails, so hyper writes nothing,
//! gives up on the connection and drops the socket. For a reset the drop first sets `SO_LINGER`
//! to zero, so the kernel sends RST instead of FIN.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

const OPEN: u8 = 0;
const CLOSE: u8 = 1;
const RESET: u8 = 2;

/// A per-connection switch, given to handlers as `ConnectInfo<ConnHandle>`.
#[derive(Clone, Debug)]
pub struct ConnHandle {
    state: Arc<AtomicU8>,
}

impl ConnHandle {
    /// End the connection with FIN, without a response.
    pub fn close(&self) {
        let _ = self
            .state
            .compare_exchange(OPEN, CLOSE, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// End the connection with RST, without a response.
    pub fn reset(&self) {
        self.state.store(RESET, Ordering::SeqCst);
    }

    fn cut(&self) -> bool {
        self.state.load(Ordering::SeqCst) != OPEN
    }
}

/// A TCP stream whose reads and writes fail once its [`ConnHandle`] is cut.
#[derive(Debug)]
pub struct ControlledStream {
    inner: TcpStream,
    handle: ConnHandle,
}

impl Drop for ControlledStream {
    fn drop(&mut self) {
        if self.handle.state.load(Ordering::SeqCst) == RESET {
            let _ = self.inner.set_zero_linger();
        }
    }
}

fn cut_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::ConnectionAborted,
        "connection cut by a fault",
    )
}

impl AsyncRead for ControlledStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.handle.cut() {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for ControlledStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.handle.cut() {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.handle.cut() {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.handle.cut() {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if self.handle.cut() {
            return Poll::Ready(Err(cut_error()));
        }
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A TCP listener producing [`ControlledStream`]s.
#[derive(Debug)]
pub struct ControlledListener {
    inner: TcpListener,
}

impl ControlledListener {
    /// Wrap a bound listener.
    pub fn new(inner: TcpListener) -> Self {
        ControlledListener { inner }
    }
}

impl Listener for ControlledListener {
    type Io = ControlledStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let handle = ConnHandle {
                        state: Arc::new(AtomicU8::new(OPEN)),
                    };
                    return (
                        ControlledStream {
                            inner: stream,
                            handle,
                        },
                        peer,
                    );
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "emulator: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}

impl Connected<IncomingStream<'_, ControlledListener>> for ConnHandle {
    fn connect_info(stream: IncomingStream<'_, ControlledListener>) -> Self {
        stream.io().handle.clone()
    }
}
