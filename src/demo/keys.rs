//! The demo's signing key pair, made for each demo directory: no binary or image carries a
//! private key anyone could read (the pair in `config/keys/` is for the example configuration
//! only, and `serve` warns about it).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

/// The DER of a P-256 `SubjectPublicKeyInfo` up to its 65-byte uncompressed point.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

/// A fresh ES256 key pair: (private key as PKCS#8 PEM, public key as SPKI PEM).
pub(super) fn generate() -> Result<(String, String), String> {
    let alg = &ECDSA_P256_SHA256_FIXED_SIGNING;
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(alg, &SystemRandom::new())
        .map_err(|_| "cannot make the demo's signing key")?;
    let pair = EcdsaKeyPair::from_pkcs8(alg, pkcs8.as_ref())
        .map_err(|_| "cannot read the demo's signing key back")?;
    let mut spki = P256_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(pair.public_key().as_ref());
    Ok((pem("PRIVATE KEY", pkcs8.as_ref()), pem("PUBLIC KEY", &spki)))
}

/// `der` as a PEM block with `label`, 64 base64 characters a line.
fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut text = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            let six = ((n >> (18 - 6 * i)) & 63) as usize;
            text.push(if i <= chunk.len() {
                char::from(ALPHABET[six])
            } else {
                '='
            });
        }
    }
    let lines: Vec<&str> = text
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pem_is_base64_in_lines_of_64() {
        assert_eq!(
            pem("X", b"Man"),
            "-----BEGIN X-----\nTWFu\n-----END X-----\n"
        );
        assert_eq!(
            pem("X", b"Ma"),
            "-----BEGIN X-----\nTWE=\n-----END X-----\n"
        );
        assert_eq!(pem("X", b"M"), "-----BEGIN X-----\nTQ==\n-----END X-----\n");
        let long = pem("X", &[0u8; 60]);
        assert_eq!(long.lines().nth(1).map(str::len), Some(64));
    }

    #[test]
    fn a_generated_pair_signs_and_verifies_as_es256() {
        let (private, public) = generate().unwrap();
        let signing = jsonwebtoken::EncodingKey::from_ec_pem(private.as_bytes()).unwrap();
        let verifying = jsonwebtoken::DecodingKey::from_ec_pem(public.as_bytes()).unwrap();
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        let claims = serde_json::json!({ "sub": "a", "exp": 4_000_000_000u64 });
        let token = jsonwebtoken::encode(&header, &claims, &signing).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.required_spec_claims.clear();
        jsonwebtoken::decode::<serde_json::Value>(&token, &verifying, &validation).unwrap();
        assert_ne!(generate().unwrap().0, private, "a new pair each time");
    }
}
