//! The `authorizer` section as written: one listener or a list of them, each answering one
//! gateway.

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// One authorizer listener, or a list of them (one per gateway).
#[derive(Debug)]
pub(crate) struct RawAuthorizers(pub Vec<RawAuthorizer>);

impl<'de> Deserialize<'de> for RawAuthorizers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct OneOrMany;
        impl<'de> Visitor<'de> for OneOrMany {
            type Value = Vec<RawAuthorizer>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an authorizer listener (listen, gateway) or a list of them")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                RawAuthorizer::deserialize(MapAccessDeserializer::new(map)).map(|a| vec![a])
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Self::Value, A::Error> {
                Vec::deserialize(SeqAccessDeserializer::new(seq))
            }
        }
        deserializer.deserialize_any(OneOrMany).map(RawAuthorizers)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuthorizer {
    pub listen: String,
    pub gateway: Option<Gateway>,
    pub envoy_path_prefix: Option<String>,
    #[serde(default)]
    pub tls: bool,
}

/// The gateway an authorizer listener answers; it decides which hint headers are read.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Gateway {
    /// nginx `auth_request`: `X-Original-Method`, `X-Original-URI`, `Host`.
    Nginx,
    /// Traefik `forwardAuth`: `X-Forwarded-Method`, `-Uri`, `-Host`, `-Proto`.
    Traefik,
    /// Envoy `ext_authz` (HTTP service): the original method and path after a prefix.
    Envoy,
    /// Envoy `ext_authz` (gRPC service, also Istio's `envoyExtAuthzGrpc`): `CheckRequest`.
    #[serde(rename = "envoy-grpc")]
    EnvoyGrpc,
}

impl std::fmt::Display for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Gateway::Nginx => "nginx",
            Gateway::Traefik => "traefik",
            Gateway::Envoy => "envoy",
            Gateway::EnvoyGrpc => "envoy-grpc",
        })
    }
}
