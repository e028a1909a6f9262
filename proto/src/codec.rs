//! The gRPC codec of every Switchboard service: prost, except that a message
//! that does not decode is refused with INVALID_ARGUMENT and a reason (tonic's
//! own codec answers INTERNAL, which blames the server for the caller's bytes).

use std::marker::PhantomData;

use prost::Message;
use tonic::Status;
use tonic::codec::BufferSettings;
use tonic::codec::Codec;
use tonic::codec::DecodeBuf;
use tonic::codec::Decoder;
use tonic_prost::ProstEncoder;

/// Prost with precise decode errors.
#[derive(Debug, Clone)]
pub struct StrictCodec<T, U> {
    _types: PhantomData<(T, U)>,
}

impl<T, U> Default for StrictCodec<T, U> {
    fn default() -> Self {
        StrictCodec {
            _types: PhantomData,
        }
    }
}

impl<T, U> Codec for StrictCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder {
            _message: PhantomData,
        }
    }
}

/// Decodes one prost message; malformed bytes are INVALID_ARGUMENT.
#[derive(Debug, Clone)]
pub struct StrictDecoder<U> {
    _message: PhantomData<U>,
}

impl<U: Message + Default> Decoder for StrictDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf)
            .map(Some)
            .map_err(|error| Status::invalid_argument(format!("malformed message: {error}")))
    }
}
