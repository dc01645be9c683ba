//! `KeyRing::verify` on tokens assembled from three fuzzed segments, so the
//! fuzzer gets past the split and the base64 decoding into the header and
//! claims checks. A segment is either described (a JSON object whose fields
//! are chosen, with the right or a wrong value, or left out) or raw bytes;
//! each is base64url-encoded (or oddly encoded); the signature is a real
//! HS256 signature over the first two segments by a chosen key, a damaged
//! one, or raw bytes. The ring's leeway is fuzzed within what the settings
//! allow (at most `MAX_DURATION_SECS`).
//!
//! Oracles: never a panic; an accepted token was signed by the ring key its
//! `kid` names, declares HS256, and has the ring's issuer, audience and a
//! current validity window; a well-formed, correctly signed, current token
//! is accepted, and one that is only expired or only not yet valid is
//! refused with that reason.
#![no_main]

use arbitrary::Arbitrary;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use libfuzzer_sys::fuzz_target;
use tessera::auth::tokens::TokenError;
use tessera::settings::MAX_DURATION_SECS;
use tessera_fuzz::{
    AUDIENCE, CLOCK_SLACK_SECS, CURRENT_SECRET, FOREIGN_SECRET, ISSUER, PREVIOUS_SECRET,
    check_accepted_claims, hs256_signature, kid_of, now, ring,
};

/// A UUIDv7, as tessera puts in `jti`.
const JTI: &str = "01890a5d-ac96-774b-bcce-b302099a8057";

#[derive(Arbitrary, Debug)]
enum Scalar {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(String),
}

#[derive(Arbitrary, Debug)]
enum Json {
    Scalar(Scalar),
    Array(Vec<Scalar>),
    Object(Vec<(String, Scalar)>),
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

fn scalar_text(value: &Scalar) -> String {
    match value {
        Scalar::Null => "null".to_owned(),
        Scalar::Bool(b) => b.to_string(),
        Scalar::Int(i) => i.to_string(),
        Scalar::UInt(u) => u.to_string(),
        // NaN and the infinities render as null.
        Scalar::Float(f) => serde_json::to_string(f).unwrap_or_default(),
        Scalar::Str(s) => quote(s),
    }
}

fn json_text(value: &Json) -> String {
    match value {
        Json::Scalar(s) => scalar_text(s),
        Json::Array(items) => {
            let items: Vec<String> = items.iter().map(scalar_text).collect();
            format!("[{}]", items.join(","))
        }
        Json::Object(fields) => {
            let fields: Vec<String> = fields
                .iter()
                .map(|(k, v)| format!("{}:{}", quote(k), scalar_text(v)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
    }
}

/// A JSON object written field by field, so keys may repeat.
#[derive(Default)]
struct Object(Vec<String>);

impl Object {
    fn raw(&mut self, key: &str, value: String) {
        self.0.push(format!("{}:{}", quote(key), value));
    }
    fn text(self) -> String {
        format!("{{{}}}", self.0.join(","))
    }
}

#[derive(Arbitrary, Debug, Clone, Copy, PartialEq, Eq)]
enum Key {
    Current,
    Previous,
    Foreign,
    Empty,
}

impl Key {
    fn secret(self) -> &'static str {
        match self {
            Key::Current => CURRENT_SECRET,
            Key::Previous => PREVIOUS_SECRET,
            Key::Foreign => FOREIGN_SECRET,
            Key::Empty => "",
        }
    }
    fn in_ring(self) -> bool {
        matches!(self, Key::Current | Key::Previous)
    }
}

#[derive(Arbitrary, Debug, PartialEq, Eq)]
enum Alg {
    Hs256,
    Hs384,
    Hs512,
    None,
    Rs256,
    Es256,
    EdDsa,
    LowerHs256,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Field<T> {
    /// The usual value.
    Usual(T),
    /// Any JSON value instead.
    Value(Json),
    Missing,
}

#[derive(Arbitrary, Debug)]
enum KidValue {
    Of(Key),
    Text(String),
}

#[derive(Arbitrary, Debug)]
struct HeaderSpec {
    alg: Field<Alg>,
    kid: Field<KidValue>,
    typ: Option<Scalar>,
    extra: Vec<(String, Json)>,
}

impl HeaderSpec {
    fn text(&self) -> String {
        let mut object = Object::default();
        match &self.alg {
            Field::Usual(alg) => {
                let name = match alg {
                    Alg::Hs256 => "HS256",
                    Alg::Hs384 => "HS384",
                    Alg::Hs512 => "HS512",
                    Alg::None => "none",
                    Alg::Rs256 => "RS256",
                    Alg::Es256 => "ES256",
                    Alg::EdDsa => "EdDSA",
                    Alg::LowerHs256 => "hs256",
                    Alg::Other(other) => other,
                };
                object.raw("alg", quote(name));
            }
            Field::Value(value) => object.raw("alg", json_text(value)),
            Field::Missing => {}
        }
        if let Some(typ) = &self.typ {
            object.raw("typ", scalar_text(typ));
        }
        match &self.kid {
            Field::Usual(KidValue::Of(key)) => object.raw("kid", quote(&kid_of(key.secret()))),
            Field::Usual(KidValue::Text(kid)) => object.raw("kid", quote(kid)),
            Field::Value(value) => object.raw("kid", json_text(value)),
            Field::Missing => {}
        }
        for (key, value) in &self.extra {
            object.raw(key, json_text(value));
        }
        object.text()
    }

    /// The ring key the `kid` names, if the header is otherwise plain.
    fn plain_kid(&self) -> Option<Key> {
        let plain_typ = match &self.typ {
            None => true,
            Some(Scalar::Str(typ)) => typ == "JWT",
            Some(_) => false,
        };
        match (&self.alg, &self.kid) {
            (Field::Usual(Alg::Hs256), Field::Usual(KidValue::Of(key)))
                if plain_typ && self.extra.is_empty() && key.in_ring() =>
            {
                Some(*key)
            }
            _ => None,
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Time {
    /// Seconds from now.
    Relative(i16),
    Absolute(i64),
}

#[derive(Arbitrary, Debug)]
struct ClaimsSpec {
    iss: Field<Option<String>>,
    aud: Field<Option<String>>,
    sub: Field<String>,
    exp: Field<Time>,
    iat: Field<Time>,
    nbf: Field<Time>,
    jti: Field<Option<String>>,
    role: Field<bool>,
    username: Field<String>,
    extra: Vec<(String, Json)>,
}

/// Where a described payload's validity window lies.
#[derive(Debug, PartialEq, Eq)]
enum Window {
    Current,
    Expired,
    NotYet,
    Unclear,
}

impl ClaimsSpec {
    fn text(&self, now: i64) -> String {
        let mut object = Object::default();
        for (key, field, usual) in [
            ("iss", &self.iss, ISSUER),
            ("aud", &self.aud, AUDIENCE),
            ("jti", &self.jti, JTI),
        ] {
            match field {
                Field::Usual(None) => object.raw(key, quote(usual)),
                Field::Usual(Some(other)) => object.raw(key, quote(other)),
                Field::Value(value) => object.raw(key, json_text(value)),
                Field::Missing => {}
            }
        }
        for (key, field) in [("sub", &self.sub), ("username", &self.username)] {
            match field {
                Field::Usual(s) => object.raw(key, quote(s)),
                Field::Value(value) => object.raw(key, json_text(value)),
                Field::Missing => {}
            }
        }
        for (key, field) in [("exp", &self.exp), ("iat", &self.iat), ("nbf", &self.nbf)] {
            match field {
                Field::Usual(Time::Relative(r)) => {
                    object.raw(key, (now + i64::from(*r)).to_string());
                }
                Field::Usual(Time::Absolute(t)) => object.raw(key, t.to_string()),
                Field::Value(value) => object.raw(key, json_text(value)),
                Field::Missing => {}
            }
        }
        match &self.role {
            Field::Usual(admin) => object.raw("role", quote(if *admin { "admin" } else { "user" })),
            Field::Value(value) => object.raw("role", json_text(value)),
            Field::Missing => {}
        }
        for (key, value) in &self.extra {
            object.raw(key, json_text(value));
        }
        object.text()
    }

    /// Whether every claim is present, well-typed and the ring's own, and if
    /// so where `now` lies against `exp` and `nbf` (with a clock margin).
    fn window(&self, leeway: i64) -> Option<Window> {
        let good_text = |f: &Field<Option<String>>| matches!(f, Field::Usual(None));
        let plain = good_text(&self.iss)
            && good_text(&self.aud)
            && matches!(self.jti, Field::Usual(_))
            && matches!(self.sub, Field::Usual(_))
            && matches!(self.username, Field::Usual(_))
            && matches!(self.role, Field::Usual(_))
            && matches!(self.iat, Field::Usual(Time::Relative(_)))
            && self.extra.is_empty();
        let (Field::Usual(Time::Relative(exp)), Field::Usual(Time::Relative(nbf))) =
            (&self.exp, &self.nbf)
        else {
            return None;
        };
        if !plain {
            return None;
        }
        let (exp, nbf) = (i64::from(*exp), i64::from(*nbf));
        let slack = CLOCK_SLACK_SECS;
        let fresh = exp + leeway > slack;
        let stale = exp + leeway < -slack;
        let started = nbf - leeway < -slack;
        let future = nbf - leeway > slack;
        Some(match (fresh, stale, started, future) {
            (true, _, true, _) => Window::Current,
            (_, true, true, _) => Window::Expired,
            (true, _, _, true) => Window::NotYet,
            _ => Window::Unclear,
        })
    }
}

#[derive(Arbitrary, Debug)]
enum Segment<T> {
    Spec(T),
    Raw(Vec<u8>),
}

/// A non-canonical encoding; `None` in the input means base64url unpadded.
#[derive(Arbitrary, Debug, Clone, Copy)]
enum OddEncoding {
    UrlPadded,
    Standard,
    /// The bytes themselves, as (lossy) text.
    Verbatim,
}

fn encode(bytes: &[u8], encoding: Option<OddEncoding>) -> String {
    match encoding {
        None => URL_SAFE_NO_PAD.encode(bytes),
        Some(OddEncoding::UrlPadded) => URL_SAFE.encode(bytes),
        Some(OddEncoding::Standard) => STANDARD.encode(bytes),
        Some(OddEncoding::Verbatim) => String::from_utf8_lossy(bytes).into_owned(),
    }
}

#[derive(Arbitrary, Debug)]
enum SignatureSpec {
    By(Key),
    /// A real signature with characters cut from its end (at least one).
    Truncated(Key, u8),
    /// A real signature with one character replaced by another.
    Altered(Key, u8, u8),
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Shape {
    Three,
    /// `header.payload`
    NoSignature,
    /// `header.payload.signature.<more>`
    Extra(String),
    /// `<prefix>header.payload.signature`
    Prefixed(String),
}

#[derive(Arbitrary, Debug)]
struct Input {
    header: Segment<HeaderSpec>,
    header_encoding: Option<OddEncoding>,
    payload: Segment<ClaimsSpec>,
    payload_encoding: Option<OddEncoding>,
    signature: SignatureSpec,
    signature_encoding: Option<OddEncoding>,
    shape: Shape,
    leeway: u32,
}

/// An accepted token's header names, as `kid`, the key that signed it, and
/// as `alg`, if a string, HS256. (serde also reads the enum from the map
/// `{"HS256": null}`: harmless, since the signature was checked as HS256.)
fn check_accepted_header(header: &[u8], signer: Key, token: &str) {
    let header: serde_json::Value = match serde_json::from_slice(header) {
        Ok(header) => header,
        Err(e) => panic!("accepted a header that is not JSON ({e}): {token:?}"),
    };
    assert_eq!(
        header["kid"].as_str(),
        Some(kid_of(signer.secret()).as_str()),
        "accepted a token whose kid is not its signer {signer:?}: {token:?}"
    );
    if let Some(alg) = header["alg"].as_str() {
        assert_eq!(alg, "HS256", "accepted alg {alg:?}: {token:?}");
    }
    assert!(
        !header["alg"].is_null(),
        "accepted a token without alg: {token:?}"
    );
}

const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn signature_text(spec: &SignatureSpec, message: &str, encoding: Option<OddEncoding>) -> String {
    match spec {
        SignatureSpec::By(key) => hs256_signature(key.secret(), message.as_bytes()),
        SignatureSpec::Truncated(key, cut) => {
            let mut sig = hs256_signature(key.secret(), message.as_bytes());
            let keep = sig.len() - 1 - usize::from(*cut) % sig.len();
            sig.truncate(keep);
            sig
        }
        SignatureSpec::Altered(key, at, with) => {
            let mut sig = hs256_signature(key.secret(), message.as_bytes()).into_bytes();
            let at = usize::from(*at) % sig.len();
            let mut replacement = B64URL[usize::from(*with) % B64URL.len()];
            if replacement == sig[at] {
                replacement = if sig[at] == b'A' { b'B' } else { b'A' };
            }
            sig[at] = replacement;
            String::from_utf8_lossy(&sig).into_owned()
        }
        SignatureSpec::Raw(bytes) => encode(bytes, encoding),
    }
}

fuzz_target!(|input: Input| {
    let now = now();
    let leeway_secs = u64::from(input.leeway) % (MAX_DURATION_SECS + 1);
    let leeway = i64::try_from(leeway_secs).unwrap_or(i64::MAX);
    let ring = ring(leeway_secs);

    let header = match &input.header {
        Segment::Spec(spec) => spec.text().into_bytes(),
        Segment::Raw(bytes) => bytes.clone(),
    };
    let payload = match &input.payload {
        Segment::Spec(spec) => spec.text(now).into_bytes(),
        Segment::Raw(bytes) => bytes.clone(),
    };
    let message = format!(
        "{}.{}",
        encode(&header, input.header_encoding),
        encode(&payload, input.payload_encoding)
    );
    let signature = signature_text(&input.signature, &message, input.signature_encoding);
    let token = match &input.shape {
        Shape::Three => format!("{message}.{signature}"),
        Shape::NoSignature => message.clone(),
        Shape::Extra(more) => format!("{message}.{signature}.{more}"),
        Shape::Prefixed(prefix) => format!("{prefix}{message}.{signature}"),
    };

    let result = ring.verify(&token);

    if let Ok(claims) = &result {
        check_accepted_claims(&ring, claims, leeway_secs);
        let SignatureSpec::By(key) = input.signature else {
            panic!("accepted a token without a valid signature: {token:?}");
        };
        assert!(
            key.in_ring(),
            "accepted a token signed by {key:?}: {token:?}"
        );
        // What the verifier read from the header, when it was encoded
        // canonically (so these are the bytes it decoded).
        if input.header_encoding.is_none() {
            check_accepted_header(&header, key, &token);
        }
    }

    // A plain, correctly signed token: its fate is known.
    let plain = matches!(input.shape, Shape::Three)
        && input.header_encoding.is_none()
        && input.payload_encoding.is_none();
    if let (true, Segment::Spec(header), Segment::Spec(claims), SignatureSpec::By(key)) =
        (plain, &input.header, &input.payload, &input.signature)
    {
        if header.plain_kid() == Some(*key) {
            match claims.window(leeway) {
                Some(Window::Current) => assert!(
                    result.is_ok(),
                    "refused a valid token ({result:?}): {token:?}"
                ),
                Some(Window::Expired) => assert_eq!(
                    result.as_ref().err(),
                    Some(&TokenError::Expired),
                    "{token:?}"
                ),
                Some(Window::NotYet) => assert_eq!(
                    result.as_ref().err(),
                    Some(&TokenError::NotYetValid),
                    "{token:?}"
                ),
                Some(Window::Unclear) | None => {}
            }
        }
    }
});
