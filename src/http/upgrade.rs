//! The upgraded socket: the client's connection after a `101`, with the bytes already read
//! replayed first (`Prefixed`), the hand-over from the listener to the proxy
//! (`ClientUpgrade`), and `write_through!` for wrappers that only watch reads.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use http::Request;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

/// `AsyncWrite` for a wrapper `$ty<S>` that only watches or replays reads: every write goes
/// straight to its field `$field`.
macro_rules! write_through {
    ($ty:ident, $field:ident) => {
        impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for $ty<S> {
            fn poll_write(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                buf: &[u8],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().$field).poll_write(cx, buf)
            }

            fn poll_flush(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().$field).poll_flush(cx)
            }

            fn poll_shutdown(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
            ) -> std::task::Poll<std::io::Result<()>> {
                std::pin::Pin::new(&mut self.get_mut().$field).poll_shutdown(cx)
            }

            fn poll_write_vectored(
                self: std::pin::Pin<&mut Self>,
                cx: &mut std::task::Context<'_>,
                bufs: &[std::io::IoSlice<'_>],
            ) -> std::task::Poll<std::io::Result<usize>> {
                std::pin::Pin::new(&mut self.get_mut().$field).poll_write_vectored(cx, bufs)
            }

            fn is_write_vectored(&self) -> bool {
                self.$field.is_write_vectored()
            }
        }
    };
}
pub(crate) use write_through;

/// The client's side of an upgraded HTTP/1.1 connection (WebSocket): its socket, with any
/// bytes it sent after the request replayed first.
pub type ClientIo = Prefixed<TcpStream>;

/// In the extensions of a request that asks for an upgrade: the client's connection, handed
/// over once the `101` has been written. (The server serves HTTP/1.1 without hyper's own
/// upgrade support, so that it can take idle connections back from hyper; see `serve_http1`.)
#[derive(Clone)]
pub struct ClientUpgrade(Arc<Mutex<Option<oneshot::Receiver<ClientIo>>>>);

impl ClientUpgrade {
    /// The hand-over the server puts in an upgrade request's extensions.
    pub(crate) fn new(rx: oneshot::Receiver<ClientIo>) -> Self {
        ClientUpgrade(Arc::new(Mutex::new(Some(rx))))
    }

    /// Takes the hand-over from `req`; `None` if the request did not come through this server
    /// as an HTTP/1.1 upgrade request.
    pub fn take<B>(req: &mut Request<B>) -> Option<oneshot::Receiver<ClientIo>> {
        let handle = req.extensions_mut().remove::<ClientUpgrade>()?;
        let rx = handle
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        rx
    }
}

/// A stream whose first bytes were already read: they are replayed before the rest.
/// (hyper-util's `Rewind` does this but is private.)
pub struct Prefixed<S> {
    prefix: Bytes,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(prefix: Bytes, inner: S) -> Self {
        Prefixed { prefix, inner }
    }

    /// The stream under the replayed bytes.
    pub(crate) fn get_ref(&self) -> &S {
        &self.inner
    }

    pub(crate) fn has_prefix(&self) -> bool {
        !self.prefix.is_empty()
    }

    /// Puts `front` before what is still to be replayed.
    pub(crate) fn unshift(&mut self, front: Bytes) {
        if front.is_empty() {
            // Dropped: an empty `Bytes` from hyper may still hold its whole read buffer.
            return;
        }
        if self.prefix.is_empty() {
            // A copy, so the rest of hyper's buffer is not kept alive by it.
            self.prefix = Bytes::copy_from_slice(&front);
        } else {
            let mut both = BytesMut::with_capacity(front.len() + self.prefix.len());
            both.extend_from_slice(&front);
            both.extend_from_slice(&self.prefix);
            self.prefix = both.freeze();
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if !this.prefix.is_empty() && buf.remaining() > 0 {
            let n = buf.remaining().min(this.prefix.len());
            buf.put_slice(&this.prefix[..n]);
            this.prefix.advance(n);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

write_through!(Prefixed, inner);
