//! Request bodies at the edge: an answer given before its request's body was read says
//! `Connection: close` (the server drops such a connection, and a client that reused it would
//! lose its next request), and large raw bodies are spooled to a temporary file rather than
//! held in memory while they arrive.

use std::{
    pin::Pin,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    task::{Context, Poll},
};

use axum::{
    body::{Body, Bytes},
    extract::Request,
    http::{HeaderValue, header},
    middleware::Next,
    response::Response,
};
use futures_util::StreamExt as _;
use http_body::{Frame, SizeHint};
use tokio::io::AsyncWriteExt as _;

use crate::error::{Error, Result};

/// A request body that notes when it has been read to its end.
struct Watched {
    inner: Body,
    finished: Arc<AtomicBool>,
}

impl http_body::Body for Watched {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, axum::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.inner.is_end_stream() {
            self.finished.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Adds `Connection: close` to an answer whose request still had body left unread (a 413, a
/// refusal before the body was looked at): hyper will not reuse that connection, so the client
/// must not either.
pub async fn close_if_unread(req: Request, next: Next) -> Response {
    // A request without a body (most reads) has nothing left unread.
    if http_body::Body::is_end_stream(req.body()) {
        return next.run(req).await;
    }
    let (parts, body) = req.into_parts();
    let finished = Arc::new(AtomicBool::new(false));
    let watched = Watched {
        inner: body,
        finished: finished.clone(),
    };
    let mut res = next
        .run(Request::from_parts(parts, Body::new(watched)))
        .await;
    if !finished.load(Ordering::Acquire) {
        res.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    res
}

/// Bodies up to this size stay in memory; a larger one goes to a temporary file as it arrives.
const SPOOL_AT: usize = 256 * 1024;

/// A request body read under a limit: in memory when small, else in a temporary file.
pub enum Spooled {
    Memory(Bytes),
    File(std::fs::File),
}

/// Reads `body` as it arrives, refusing (`too_large`) once it passes `limit` bytes: past
/// [`SPOOL_AT`] bytes it goes on into an anonymous temporary file (rewound, ready to read), so a
/// slow or large body holds little memory.
pub async fn spool(body: Body, limit: usize, too_large: impl Fn() -> Error) -> Result<Spooled> {
    let mut stream = body.into_data_stream();
    let mut memory: Vec<u8> = Vec::new();
    let mut file: Option<tokio::fs::File> = None;
    let mut written = 0usize;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|_| {
            Error::bad_request("unreadable_body", "the request body could not be read")
        })?;
        written += chunk.len();
        if written > limit {
            return Err(too_large());
        }
        match &mut file {
            Some(out) => out.write_all(&chunk).await.map_err(Error::internal)?,
            None if written <= SPOOL_AT => memory.extend_from_slice(&chunk),
            None => {
                let made = tokio::task::spawn_blocking(tempfile::tempfile)
                    .await
                    .map_err(Error::internal)?
                    .map_err(Error::internal)?;
                let mut out = tokio::fs::File::from_std(made);
                out.write_all(&memory).await.map_err(Error::internal)?;
                out.write_all(&chunk).await.map_err(Error::internal)?;
                memory = Vec::new();
                file = Some(out);
            }
        }
    }
    let Some(mut out) = file else {
        return Ok(Spooled::Memory(memory.into()));
    };
    out.flush().await.map_err(Error::internal)?;
    let mut file = out.into_std().await;
    use std::io::Seek as _;
    file.rewind().map_err(Error::internal)?;
    Ok(Spooled::File(file))
}
