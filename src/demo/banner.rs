//! The demo's banner: where everything is, what to paste first, and the lines to try, each with
//! the outcome it has (`scripts/smoke.py` runs every line as printed and checks that outcome).

use std::net::SocketAddr;
use std::path::Path;

/// What the banner shows: where everything is and the lines to paste, each with the outcome it
/// has (the smoke test runs every line as printed and checks that outcome).
pub(super) struct Banner<'a> {
    pub(super) proxy: SocketAddr,
    pub(super) admin: SocketAddr,
    pub(super) upstream: SocketAddr,
    pub(super) authorizer: SocketAddr,
    pub(super) dir: &'a Path,
    pub(super) kept: bool,
    pub(super) state: &'a Path,
    pub(super) main_file: &'a Path,
    pub(super) bin: String,
    pub(super) credentials: &'a [(&'static str, String, &'static str)],
    pub(super) admin_token: &'a str,
    pub(super) audit_file: Option<&'a str>,
}

impl Banner<'_> {
    pub(super) fn render(&self) -> String {
        let mut exports: String = self
            .credentials
            .iter()
            .map(|(name, value, what)| format!("  export {name}='{value}'   # {what}\n"))
            .collect();
        exports.push_str(&format!(
            "  export TOLLGATE_ADMIN_TOKEN='{}'   # the admin listener's /usage\n",
            self.admin_token
        ));
        exports.push_str(&format!(
            "  export TOLLGATE_ADMIN_LISTEN={} TOLLGATE_STATE_DIR={}   # where `usage` finds this demo\n",
            self.admin,
            shell_word(&self.state.display().to_string())
        ));
        let tries: String = self
            .tries()
            .iter()
            .map(|(line, outcome)| format!("  {line}   # {outcome}\n"))
            .collect();
        let kept = if self.kept {
            "yours: edits are reloaded within 2s and kept"
        } else {
            "a temporary copy, removed on exit; `tollgate demo --dir DIR` keeps one to edit"
        };
        format!(
            "Tollgate demo
  proxy      http://{proxy}   -> echo upstream http://{upstream}
  admin      http://{admin}   (/healthz /readyz /metrics /usage)
  authorizer http://{authorizer} (nginx auth_request), :{envoy} (Envoy ext_authz), :{traefik} (Traefik forwardAuth): see deploy/
  files      {dir}   ({kept})
  state      {state}   (usage store and audit file of this demo)

Tenants (each <id>.localhost): acme (professional), globex (basic), initech (suspended),
umbrella (trial ended), hooli (enterprise), soylent (pending)

Paste these first (credentials valid 24h):
{exports}
Then try (after each `#`: the status or text you will see):
{tries}
Ctrl-C stops the demo.",
            proxy = self.proxy,
            upstream = self.upstream,
            admin = self.admin,
            authorizer = self.authorizer,
            envoy = self.authorizer.port().saturating_add(1),
            traefik = self.authorizer.port().saturating_add(2),
            dir = self.dir.display(),
            state = self.state.display(),
        )
    }

    /// The lines to paste and what each shows: a leading status is the answer's, and every
    /// `quoted` text appears in the output.
    fn tries(&self) -> Vec<(String, String)> {
        let p = self.proxy;
        let admin = self.admin;
        let bin = &self.bin;
        let acme = "-H 'Host: acme.localhost'";
        let globex = "-H 'Host: globex.localhost'";
        let mut lines = vec![
            (
                format!("curl -si {acme} http://{p}/anything"),
                "200 a public route: `\"x-tenant-id\":\"acme\"` reached the echo upstream"
                    .to_string(),
            ),
            (
                format!(
                    "curl -si {acme} -H \"Authorization: Bearer $ALICE\" http://{p}/api/v1/agents/7"
                ),
                "200 alice is a viewer of acme: `\"x-user-id\":\"alice\"`".into(),
            ),
            (
                format!(
                    "curl -si -X DELETE {acme} -H \"Authorization: Bearer $ALICE\" http://{p}/api/v1/agents/7"
                ),
                "403 `forbidden`: viewers only read".into(),
            ),
            (
                format!(
                    "curl -si {globex} -H \"Authorization: Bearer $CAROL\" http://{p}/api/v1/analytics/usage"
                ),
                "403 `forbidden`: the basic plan has no analytics".into(),
            ),
            (
                format!("curl -si {acme} -H \"Authorization: Bearer $BOB\" http://{p}/admin/users"),
                "200 a tenant_admin with MFA".into(),
            ),
            (
                format!("curl -si {acme} -H 'X-Tenant-Id: globex' http://{p}/public/docs"),
                "200 a spoofed tenant header is replaced: `\"x-tenant-id\":\"acme\"`".into(),
            ),
            (
                format!("curl -si -H \"X-API-Key: $GLOBEX_KEY\" http://{p}/t/globex/api/v1/agents"),
                "200 tenant from the path prefix, an API key: `\"path\":\"/api/v1/agents\"`".into(),
            ),
            (
                format!(
                    "curl -si {globex} -H \"Authorization: Bearer $ALICE\" http://{p}/api/v1/agents"
                ),
                "403 `tenant-mismatch`: alice is acme's".into(),
            ),
            (
                format!("curl -si -H 'Host: initech.localhost' http://{p}/public/x"),
                "403 `tenant-suspended`".into(),
            ),
            (
                format!("curl -si -H 'Host: umbrella.localhost' http://{p}/public/x"),
                "402 `subscription-inactive`: the trial ended".into(),
            ),
            (
                format!("curl -si {acme} http://{p}/api/v1/agents"),
                "401 `unauthenticated`".into(),
            ),
            (
                format!("curl -si {acme} http://{p}/nowhere"),
                "403 `no-route`".into(),
            ),
            (
                format!("curl -si --path-as-is {acme} 'http://{p}/public/../admin'"),
                "401 judged and forwarded as /admin".into(),
            ),
            (
                format!(
                    "for i in $(seq 60); do curl -s -o /dev/null -w '%{{http_code}} ' {globex} -H \"Authorization: Bearer $CAROL\" http://{p}/api/v1/agents; done; echo"
                ),
                "429 after 50: basic allows a burst of 50".into(),
            ),
            (
                format!(
                    "curl -si {globex} -H \"Authorization: Bearer $CAROL\" http://{p}/api/v1/agents | grep -i ratelimit"
                ),
                "`ratelimit-policy` and `ratelimit` headers".into(),
            ),
            (
                format!(
                    "{bin} usage --config {} --tenant globex",
                    shell_word(&self.main_file.display().to_string())
                ),
                "`api_calls` of globex, from this demo (kept across restarts)".into(),
            ),
            (
                format!(
                    "curl -s -H \"Authorization: Bearer $TOLLGATE_ADMIN_TOKEN\" http://{admin}/usage/globex"
                ),
                "the same as JSON: `\"tenant\":\"globex\"`".into(),
            ),
        ];
        if let Some(file) = self.audit_file {
            lines.push((
                format!("{bin} audit --file {} --since 10m", shell_word(file)),
                "the audit records: `\"decision\":\"deny\"`".into(),
            ));
        }
        lines.push((
            format!("curl -s http://{admin}/metrics | grep tollgate_requests_total"),
            "requests by tenant, plan, decision and stage: `tenant=\"globex\"`".into(),
        ));
        lines
    }
}

/// `text` as one shell word: as it is when it has nothing a shell treats specially, else quoted.
pub(super) fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:=@%,".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}
