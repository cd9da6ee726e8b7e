//! Serialising a message for one protocol revision, in field order.

use std::io;

use serde::ser::{Serialize, SerializeStruct, Serializer};
use serde_json::ser::{CompactFormatter, Compound};

use super::Revision;

/// Fields the 2018 revision does not know; dropped when sending it.
const NOT_IN_2018: [&str; 3] = ["userToken", "version", "refundDetails"];

/// Serialises `msg` as compact JSON for `rev`: the top-level `skillId` is
/// written `domainId` for [`Revision::R2018`], which also drops the
/// top-level `userToken`, `version` and `refundDetails`; [`Revision::R2019`]
/// writes the message as it is. Field order is the struct's. Only a struct at
/// the top level is rewritten; other values are written unchanged.
///
/// # Panics
/// If `msg`'s `Serialize` fails, which the message types of this module
/// never do; see [`try_to_wire`].
pub fn to_wire<T: Serialize + ?Sized>(msg: &T, rev: Revision) -> Vec<u8> {
    try_to_wire(msg, rev).expect("protocol messages always serialise")
}

/// [`to_wire`] returning the serialisation error instead of panicking.
pub fn try_to_wire<T: Serialize + ?Sized>(
    msg: &T,
    rev: Revision,
) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::new(&mut out);
    msg.serialize(TopLevel {
        inner: &mut ser,
        rev,
    })?;
    Ok(out)
}

/// Forwards everything to serde_json except `serialize_struct`.
struct TopLevel<'a, W> {
    inner: &'a mut serde_json::Serializer<W>,
    rev: Revision,
}

/// Renames or drops the top-level fields.
struct WireStruct<'a, W> {
    inner: Compound<'a, W, CompactFormatter>,
    rev: Revision,
}

type Json<'a, W> = Compound<'a, W, CompactFormatter>;

macro_rules! forward {
    ($($method:ident($($arg:ident: $ty:ty),*) -> $ret:ty;)*) => {$(
        fn $method(self, $($arg: $ty),*) -> Result<$ret, serde_json::Error> {
            self.inner.$method($($arg),*)
        }
    )*};
}

impl<'a, W: io::Write> Serializer for TopLevel<'a, W> {
    type Ok = ();
    type Error = serde_json::Error;
    type SerializeSeq = Json<'a, W>;
    type SerializeTuple = Json<'a, W>;
    type SerializeTupleStruct = Json<'a, W>;
    type SerializeTupleVariant = Json<'a, W>;
    type SerializeMap = Json<'a, W>;
    type SerializeStruct = WireStruct<'a, W>;
    type SerializeStructVariant = Json<'a, W>;

    forward! {
        serialize_bool(v: bool) -> ();
        serialize_i8(v: i8) -> ();
        serialize_i16(v: i16) -> ();
        serialize_i32(v: i32) -> ();
        serialize_i64(v: i64) -> ();
        serialize_i128(v: i128) -> ();
        serialize_u8(v: u8) -> ();
        serialize_u16(v: u16) -> ();
        serialize_u32(v: u32) -> ();
        serialize_u64(v: u64) -> ();
        serialize_u128(v: u128) -> ();
        serialize_f32(v: f32) -> ();
        serialize_f64(v: f64) -> ();
        serialize_char(v: char) -> ();
        serialize_str(v: &str) -> ();
        serialize_bytes(v: &[u8]) -> ();
        serialize_none() -> ();
        serialize_unit() -> ();
        serialize_unit_struct(name: &'static str) -> ();
        serialize_unit_variant(name: &'static str, index: u32, variant: &'static str) -> ();
        serialize_seq(len: Option<usize>) -> Self::SerializeSeq;
        serialize_tuple(len: usize) -> Self::SerializeTuple;
        serialize_tuple_struct(name: &'static str, len: usize) -> Self::SerializeTupleStruct;
        serialize_tuple_variant(
            name: &'static str,
            index: u32,
            variant: &'static str,
            len: usize
        ) -> Self::SerializeTupleVariant;
        serialize_map(len: Option<usize>) -> Self::SerializeMap;
        serialize_struct_variant(
            name: &'static str,
            index: u32,
            variant: &'static str,
            len: usize
        ) -> Self::SerializeStructVariant;
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result<(), serde_json::Error> {
        value.serialize(self)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(
        self,
        _name: &'static str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        name: &'static str,
        index: u32,
        variant: &'static str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        self.inner
            .serialize_newtype_variant(name, index, variant, value)
    }

    fn serialize_struct(
        self,
        name: &'static str,
        len: usize,
    ) -> Result<Self::SerializeStruct, serde_json::Error> {
        Ok(WireStruct {
            inner: self.inner.serialize_struct(name, len)?,
            rev: self.rev,
        })
    }
}

impl<W: io::Write> SerializeStruct for WireStruct<'_, W> {
    type Ok = ();
    type Error = serde_json::Error;

    fn serialize_field<T: Serialize + ?Sized>(
        &mut self,
        key: &'static str,
        value: &T,
    ) -> Result<(), serde_json::Error> {
        let key = match (self.rev, key) {
            (Revision::R2018, "skillId") => "domainId",
            (Revision::R2018, k) if NOT_IN_2018.contains(&k) => return Ok(()),
            (_, k) => k,
        };
        SerializeStruct::serialize_field(&mut self.inner, key, value)
    }

    fn skip_field(&mut self, key: &'static str) -> Result<(), serde_json::Error> {
        SerializeStruct::skip_field(&mut self.inner, key)
    }

    fn end(self) -> Result<(), serde_json::Error> {
        SerializeStruct::end(self.inner)
    }
}
