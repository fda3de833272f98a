//! Bounds on how long a connection may hold resources without doing its part: a first
//! request within [`FIRST_REQUEST_TIMEOUT`], each request's headers within
//! [`HEADER_READ_TIMEOUT`], each request body within [`REQUEST_BODY_TIMEOUT`], and HTTP/1.1
//! only (nothing Herald serves needs HTTP/2, whose connections would escape these bounds).

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use axum_server::accept::Accept;
use bytes::Bytes;
use futures_util::future::BoxFuture;
use http_body::{Body as HttpBody, Frame, SizeHint};
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// How long a client may take to send a request's headers, and a TLS client its handshake.
pub(super) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a new connection may take to send its first request (or websocket upgrade).
pub(super) const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a request's body may take to arrive, whole.
pub(super) const REQUEST_BODY_TIMEOUT: Duration = Duration::from_secs(10);

/// HTTP/2's connection preface starts with the method HTTP/1 never uses.
const HTTP2_PREFACE_START: &[u8; 3] = b"PRI";

/// Wraps an acceptor: a connection that opens with the HTTP/2 preface is closed; any other
/// gets its first bytes back through [`Rewind`].
#[derive(Clone, Debug)]
pub(super) struct Http1Only<A>(pub A);

impl<A, I, S> Accept<I, S> for Http1Only<A>
where
    A: Accept<I, S> + Clone + Send + Sync + 'static,
    A::Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    A::Service: Send + 'static,
    A::Future: Send + 'static,
    I: Send + 'static,
    S: Send + 'static,
{
    type Stream = Rewind<A::Stream>;
    type Service = A::Service;
    type Future = BoxFuture<'static, io::Result<(Self::Stream, Self::Service)>>;

    fn accept(&self, stream: I, service: S) -> Self::Future {
        let inner = self.0.accept(stream, service);
        Box::pin(async move {
            let (mut stream, service) = inner.await?;
            let mut first = [0u8; 3];
            let mut read = 0;
            let reading = async {
                while read < first.len() {
                    match stream.read(&mut first[read..]).await? {
                        0 => break,
                        n => read += n,
                    }
                }
                Ok::<(), io::Error>(())
            };
            match tokio::time::timeout(FIRST_REQUEST_TIMEOUT, reading).await {
                Ok(result) => result?,
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        "no request in time",
                    ));
                }
            }
            if &first == HTTP2_PREFACE_START {
                return Err(io::Error::new(
                    io::ErrorKind::Unsupported,
                    "HTTP/2 is not served",
                ));
            }
            Ok((Rewind::new(stream, first, read), service))
        })
    }
}

/// A stream that first gives back the bytes read from it to look at them.
#[derive(Debug)]
pub(super) struct Rewind<S> {
    inner: S,
    prefix: [u8; 3],
    start: u8,
    end: u8,
}

impl<S> Rewind<S> {
    fn new(inner: S, prefix: [u8; 3], len: usize) -> Rewind<S> {
        Rewind {
            inner,
            prefix,
            start: 0,
            end: len.min(prefix.len()) as u8,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.start < self.end {
            let pending = &self.prefix[self.start as usize..self.end as usize];
            let n = pending.len().min(buf.remaining());
            buf.put_slice(&pending[..n]);
            self.start += n as u8;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Middleware: a request body must arrive whole within [`REQUEST_BODY_TIMEOUT`] (a body sent
/// a byte at a time would otherwise hold the connection for as long as the client likes).
pub(super) async fn limit_body_time(req: Request, next: Next) -> Response {
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let body = Body::new(DeadlineBody {
        inner: body,
        deadline: Box::pin(tokio::time::sleep(REQUEST_BODY_TIMEOUT)),
    });
    next.run(Request::from_parts(parts, body)).await
}

/// A body that fails once its deadline passes.
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
}

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        ready!(this.deadline.as_mut().poll(cx));
        Poll::Ready(Some(Err(axum::Error::new(io::Error::new(
            io::ErrorKind::TimedOut,
            format!(
                "the request body did not arrive within {} s",
                REQUEST_BODY_TIMEOUT.as_secs()
            ),
        )))))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rewind_gives_back_the_bytes_it_looked_at() {
        let (client, server) = tokio::io::duplex(64);
        let mut rewound = Rewind::new(server, *b"GET", 3);
        let mut client = client;
        tokio::io::AsyncWriteExt::write_all(&mut client, b" / HTTP/1.1")
            .await
            .expect("write");
        drop(client);
        let mut all = String::new();
        rewound.read_to_string(&mut all).await.expect("read");
        assert_eq!(all, "GET / HTTP/1.1");
    }
}
