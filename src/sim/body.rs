//! Response bodies the simulator sends: whole ones, and one that never ends (to prove that
//! clients cap what they read).

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};

static ENDLESS_CHUNK: [u8; 16 * 1024] = [b' '; 16 * 1024];

#[derive(Debug)]
pub(super) enum SimBody {
    Whole(Option<Bytes>),
    Endless,
}

impl SimBody {
    pub(super) fn empty() -> Self {
        SimBody::Whole(None)
    }

    pub(super) fn text(text: impl Into<Bytes>) -> Self {
        SimBody::Whole(Some(text.into()))
    }
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        match self.get_mut() {
            SimBody::Whole(bytes) => Poll::Ready(bytes.take().map(|b| Ok(Frame::data(b)))),
            SimBody::Endless => {
                Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&ENDLESS_CHUNK)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self, SimBody::Whole(None))
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            SimBody::Whole(Some(bytes)) => SizeHint::with_exact(bytes.len() as u64),
            SimBody::Whole(None) => SizeHint::with_exact(0),
            SimBody::Endless => SizeHint::default(),
        }
    }
}
