//! The one response body type: either a streamed upstream body, passed through untouched, or
//! a small buffered body the sidecar wrote itself.

use bytes::Bytes;
use http_body_util::{Either, Full};
use hyper::body::Incoming;

/// Response body of every answer the sidecar gives.
pub type Body = Either<Incoming, Full<Bytes>>;

/// A buffered body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Either::Right(Full::new(bytes.into()))
}

/// A streamed body from a peer.
pub fn streamed(incoming: Incoming) -> Body {
    Either::Left(incoming)
}
