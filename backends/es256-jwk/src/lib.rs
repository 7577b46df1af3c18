//! The public JWK of an ES256 (P-256) key.
//!
//! One rule for the `kid`: the key's RFC 7638 SHA-256 thumbprint. The auth
//! service puts it in the tokens it signs (unless `JWT_ES256_KEY_ID` names
//! another) and publishes the JWK at `/.well-known/jwks.json`;
//! `gatewayctl jwks` writes the same JWK into the gateway's configuration
//! (docs/deploy.md, "JWT signing key"). Both call [`public_jwk`], so the two
//! cannot disagree on a key's id.
//!
//! Only the public half of a key ever leaves this crate.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, KeyAlgorithm, PublicKeyUse, ThumbprintHash,
};
use p256::elliptic_curve::sec1::{Coordinates, ToEncodedPoint};
use p256::pkcs8::{DecodePrivateKey, DecodePublicKey};
use p256::{PublicKey, SecretKey};

/// Why a PEM text is not a usable P-256 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyError(String);

impl fmt::Display for KeyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for KeyError {}

/// The public key in `pem`: a PKCS#8 P-256 private key (`PRIVATE KEY`,
/// as `openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256`
/// writes it; only its public half is kept) or a P-256
/// SubjectPublicKeyInfo (`PUBLIC KEY`, as `openssl pkey -pubout` writes it).
pub fn public_key(pem: &str) -> Result<PublicKey, KeyError> {
    if pem.contains("-----BEGIN PRIVATE KEY-----") {
        SecretKey::from_pkcs8_pem(pem)
            .map(|secret| secret.public_key())
            .map_err(|_| KeyError("not a PKCS#8 P-256 private key".into()))
    } else if pem.contains("-----BEGIN PUBLIC KEY-----") {
        PublicKey::from_public_key_pem(pem)
            .map_err(|_| KeyError("not an EC P-256 public key".into()))
    } else {
        Err(KeyError(
            "not a PEM P-256 key (BEGIN PRIVATE KEY or BEGIN PUBLIC KEY)".into(),
        ))
    }
}

/// The JWK of `key`: `kty` EC, `crv` P-256, `alg` ES256, `use` sig, and
/// `kid` its RFC 7638 thumbprint.
pub fn jwk(key: &PublicKey) -> Jwk {
    let point = key.to_encoded_point(false);
    let (x, y) = match point.coordinates() {
        Coordinates::Uncompressed { x, y } => {
            (URL_SAFE_NO_PAD.encode(x), URL_SAFE_NO_PAD.encode(y))
        }
        // `to_encoded_point(false)` of a public key (never the identity)
        // is always uncompressed.
        _ => unreachable!("uncompressed point"),
    };
    let mut jwk = Jwk {
        common: CommonParameters {
            public_key_use: Some(PublicKeyUse::Signature),
            key_algorithm: Some(KeyAlgorithm::ES256),
            ..CommonParameters::default()
        },
        algorithm: AlgorithmParameters::EllipticCurve(EllipticCurveKeyParameters {
            key_type: EllipticCurveKeyType::EC,
            curve: EllipticCurve::P256,
            x,
            y,
        }),
    };
    jwk.common.key_id = Some(jwk.thumbprint(ThumbprintHash::SHA256));
    jwk
}

/// [`jwk`] of the key in `pem` (see [`public_key`]).
pub fn public_jwk(pem: &str) -> Result<Jwk, KeyError> {
    public_key(pem).map(|key| jwk(&key))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]

    use super::*;
    use sha2::Digest as _;

    /// RFC 7638 §3.1 uses an RSA key; this is the P-256 key of RFC 7515
    /// appendix A.3, whose thumbprint is computed by hand below.
    const X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    #[test]
    fn the_kid_is_the_sha256_of_the_canonical_members() {
        let mut sec1 = vec![4u8];
        sec1.extend(URL_SAFE_NO_PAD.decode(X).unwrap());
        sec1.extend(URL_SAFE_NO_PAD.decode(Y).unwrap());
        let key = PublicKey::from_sec1_bytes(&sec1).unwrap();
        let jwk = jwk(&key);
        let AlgorithmParameters::EllipticCurve(ec) = &jwk.algorithm else {
            panic!("{jwk:?}")
        };
        assert_eq!((ec.x.as_str(), ec.y.as_str()), (X, Y));
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{X}","y":"{Y}"}}"#);
        let want = URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(canonical.as_bytes()));
        assert_eq!(jwk.common.key_id.as_deref(), Some(want.as_str()));
        assert_eq!(jwk.common.key_algorithm, Some(KeyAlgorithm::ES256));
        assert_eq!(jwk.common.public_key_use, Some(PublicKeyUse::Signature));
    }

    #[test]
    fn other_texts_are_refused_without_echoing_them() {
        for bad in [
            "",
            "not a pem",
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
        ] {
            let err = public_jwk(bad).unwrap_err().to_string();
            assert!(err.contains("P-256"), "{err}");
            assert!(!err.contains("AAAA"), "{err}");
        }
    }
}
