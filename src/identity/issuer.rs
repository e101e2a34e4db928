//! One issuer of JWTs and how its tokens are checked: its keys (configured, or fetched from a
//! JWKS URL or through OIDC discovery), its claim mapping, what it may grant and which tenants it
//! may act on. The global issuers (`identity.jwt`) and each tenant's own identity providers are
//! both issuers; only where they are configured differs.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde_json::Value;

use crate::config::ClaimNames;

use super::jwks::{JwksCache, Remote};
use super::keys::VerifyKey;
use super::principal::{AuthMethod, Principal};

pub(crate) struct Issuer {
    pub issuer: String,
    pub leeway: Duration,
    pub claims: ClaimNames,
    /// The claim holding the IdP's groups, and the roles each group grants.
    pub groups: Option<(String, BTreeMap<String, Vec<String>>)>,
    pub keys: Vec<VerifyKey>,
    pub remote: Option<(Remote, Duration)>,
    pub validations: HashMap<Algorithm, Validation>,
    /// The tenants this issuer may act on; `None`: any.
    pub tenants: Option<Arc<[String]>>,
    /// Whether its tokens name their tenant (`claims.tenant`), or belong to the one tenant
    /// that configured the issuer.
    pub tenant_claim: bool,
    /// Operator roles this issuer may not grant.
    pub forbidden_roles: Vec<String>,
}

/// What checking a token against one issuer came to.
pub(crate) enum Attempt {
    /// No key of this issuer has the token's `alg` and `kid`, or the signature is not its.
    NotMine(&'static str),
    /// Signed by this issuer, and refused (expired, wrong audience, bad claims).
    Refused(&'static str),
    Accepted(Box<Principal>),
}

/// The algorithms a remote set may hold (symmetric keys never come from a JWKS).
const REMOTE_ALGS: [Algorithm; 4] = [
    Algorithm::RS256,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// One validation per algorithm: the issuer, the audiences (none: not checked), `exp` and
/// `iss` required, `nbf` checked, with `leeway`.
pub(crate) fn validations(
    issuer: &str,
    audiences: &[String],
    leeway: Duration,
    keys: &[VerifyKey],
    remote: bool,
) -> HashMap<Algorithm, Validation> {
    let mut algs: Vec<Algorithm> = keys.iter().map(|k| k.alg).collect();
    if remote {
        algs.extend(REMOTE_ALGS);
    }
    algs.into_iter()
        .map(|alg| {
            let mut v = Validation::new(alg);
            v.leeway = leeway.as_secs();
            v.validate_nbf = true;
            v.set_issuer(&[issuer]);
            if audiences.is_empty() {
                v.validate_aud = false;
            } else {
                v.set_audience(audiences);
            }
            v.set_required_spec_claims(&["exp", "iss"]);
            (alg, v)
        })
        .collect()
}

impl Issuer {
    /// Checks `token` (whose header is `header`) against this issuer's keys, fetching its
    /// remote set when needed; an unknown `kid` refetches it at most once per `refetch`.
    pub async fn attempt(
        &self,
        token: &str,
        header: &Header,
        jwks: &JwksCache,
        refetch: Duration,
    ) -> Attempt {
        let Some(validation) = self.validations.get(&header.alg) else {
            return Attempt::NotMine("no key matches the token's kid and alg");
        };
        let matches =
            |k: &&VerifyKey| k.alg == header.alg && (header.kid.is_none() || k.kid == header.kid);
        let mut refusal = "no key matches the token's kid and alg";
        let mut tried = false;
        for key in self.keys.iter().filter(matches) {
            tried = true;
            match self.check(token, key, validation) {
                Ok(principal) => return Attempt::Accepted(Box::new(principal)),
                Err(why) => refusal = why,
            }
        }
        if let Some((remote, refresh)) = &self.remote {
            // Boxed: the fetch is a large future every request would otherwise carry.
            let remote = Box::pin(jwks.remote_keys(remote, *refresh, header, refetch)).await;
            for key in remote.iter().filter(matches) {
                tried = true;
                match self.check(token, key, validation) {
                    Ok(principal) => return Attempt::Accepted(Box::new(principal)),
                    Err(why) => refusal = why,
                }
            }
        }
        if tried && refusal != "bad signature" {
            Attempt::Refused(refusal)
        } else {
            Attempt::NotMine(refusal)
        }
    }

    fn check(
        &self,
        token: &str,
        key: &VerifyKey,
        validation: &Validation,
    ) -> Result<Principal, &'static str> {
        let data =
            jsonwebtoken::decode::<Value>(token, &key.decoding, validation).map_err(|e| match e
                .kind()
            {
                ErrorKind::ExpiredSignature => "token expired",
                ErrorKind::ImmatureSignature => "token not yet valid",
                ErrorKind::InvalidAudience => "token has the wrong audience",
                ErrorKind::InvalidIssuer => "token has the wrong issuer",
                ErrorKind::InvalidSignature => "bad signature",
                ErrorKind::MissingRequiredClaim(_) => "token lacks a required claim",
                _ => "invalid token",
            })?;
        self.principal(&data.claims)
    }

    fn principal(&self, claims: &Value) -> Result<Principal, &'static str> {
        let claim = |path: &str| path.split('.').try_fold(claims, |v, k| v.get(k));
        let subject = claim(&self.claims.subject)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .ok_or("token has no subject")?;
        let tenant = match &self.tenants {
            Some(own) if !self.tenant_claim => own.first().cloned(),
            _ => claim(&self.claims.tenant)
                .and_then(Value::as_str)
                .map(str::to_string),
        };
        let mfa = match claim(&self.claims.mfa) {
            Some(Value::Bool(b)) => *b,
            // An `amr`-style list of methods.
            Some(Value::Array(methods)) => methods.iter().any(|m| m == "mfa"),
            _ => false,
        };
        let valid_until = claims
            .get("exp")
            .and_then(Value::as_u64)
            .map(|exp| UNIX_EPOCH + Duration::from_secs(exp) + self.leeway);
        let mut roles = strings(claim(&self.claims.roles))?;
        if let Some((groups_claim, granted)) = &self.groups {
            for group in strings(claim(groups_claim))? {
                for role in granted.get(&group).into_iter().flatten() {
                    if !roles.contains(role) {
                        roles.push(role.clone());
                    }
                }
            }
        }
        let mut principal = Principal::new(
            subject.to_string(),
            AuthMethod::Jwt,
            tenant,
            roles,
            strings(claim(&self.claims.scopes))?,
            mfa,
            valid_until,
        )?;
        if principal.has_any_role(&self.forbidden_roles) {
            return Err("the token's issuer may not grant an operator role");
        }
        principal.issuer_tenants = self.tenants.clone();
        Ok(principal)
    }
}

/// A list claim: a JSON array of strings, or one space-separated string (OAuth `scope`). An
/// array with anything but strings is refused, not filtered.
fn strings(value: Option<&Value>) -> Result<Vec<String>, &'static str> {
    match value {
        Some(Value::String(s)) => Ok(s.split_whitespace().map(str::to_string).collect()),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| {
                item.as_str()
                    .map(str::to_string)
                    .ok_or("a role or scope list holds something other than strings")
            })
            .collect(),
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(_) => Err("a role or scope claim is neither a list nor a string"),
    }
}
