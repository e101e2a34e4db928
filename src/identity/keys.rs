//! A key a JWT signature is checked with, from a PEM file, an HMAC secret or a JWKS: the one
//! type `jwt.rs` (verification) and `jwks.rs` (key sets) share.

use jsonwebtoken::{Algorithm, DecodingKey};

pub struct VerifyKey {
    /// The `kid` a token must name to use this key (`None`: any).
    pub kid: Option<String>,
    pub alg: Algorithm,
    pub decoding: DecodingKey,
}
