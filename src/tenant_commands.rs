//! `tollgate tenants`: the tenant lifecycle API from the command line. `apply` reads YAML or
//! JSON (one tenant, a list, or a tenants file's `tenants:`) and PUTs each tenant; `suspend` and
//! `resume` patch the status; `policy` lists, reads, puts and deletes a tenant's policy files. The API's refusals are printed as it words them (every message of
//! a 422), and the exit code is 1.

use std::net::SocketAddr;
use std::path::Path;

use serde_json::{Value, json};

use crate::admin_client::{Answer, request};
use crate::cli::TenantsCommand;

/// Where the admin API is.
pub struct Admin<'a> {
    pub addr: SocketAddr,
    pub token: Option<&'a str>,
}

/// What a command did: its output, and whether the API refused something.
pub struct Done {
    pub output: String,
    pub refused: bool,
}

impl Admin<'_> {
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Answer, String> {
        let body = body.map(Value::to_string);
        self.send(
            method,
            path,
            body.as_deref().map(|b| ("application/json", b)),
        )
    }

    fn send(&self, method: &str, path: &str, body: Option<(&str, &str)>) -> Result<Answer, String> {
        request(self.addr, method, path, self.token, body)?.ok_or_else(|| {
            format!(
                "no Tollgate admin listener answers at {} (--admin)",
                self.addr
            )
        })
    }
}

/// Runs one `tollgate tenants` command.
pub fn run(admin: &Admin<'_>, command: &TenantsCommand) -> Result<Done, String> {
    use TenantsCommand as C;
    match command {
        C::List {
            status,
            plan,
            origin,
            prefix,
            format,
        } => list(
            admin,
            &[
                ("status", status.as_deref()),
                ("plan", plan.as_deref()),
                ("origin", origin.as_deref()),
                ("prefix", prefix.as_deref()),
            ],
            matches!(format, crate::cli::UsageFormat::Json),
        ),
        C::Get { id } => get(admin, id),
        C::Apply { file } => apply(admin, file),
        C::Suspend { id } => set_status(admin, id, "suspended"),
        C::Resume { id } => set_status(admin, id, "active"),
        C::Delete { id } => delete(admin, id),
        C::Policy { command } => {
            use crate::cli::PolicyCommand as P;
            match command {
                P::List { id } => policies(admin, id),
                P::Get { id, name } => policy(admin, id, name),
                P::Put { id, name, file } => put_policy(admin, id, name, file),
                P::Delete { id, name } => delete_policy(admin, id, name),
            }
        }
    }
}

/// The API's refusal in a line (and every message of a 422).
fn refusal(id: &str, answer: &Answer) -> String {
    let problem: Value = serde_json::from_str(&answer.body).unwrap_or(Value::Null);
    let mut text = format!(
        "{id}: {} {}",
        answer.status,
        problem["detail"].as_str().unwrap_or(answer.body.trim())
    );
    for error in problem["errors"].as_array().into_iter().flatten() {
        text.push_str(&format!("\n  {}", error.as_str().unwrap_or_default()));
    }
    text
}

/// `output` when the API answered `status`, else its refusal of `id`.
fn answered(answer: Answer, status: u16, id: &str, output: impl FnOnce(String) -> String) -> Done {
    if answer.status == status {
        Done {
            output: output(answer.body),
            refused: false,
        }
    } else {
        Done {
            output: refusal(id, &answer),
            refused: true,
        }
    }
}

pub fn list(
    admin: &Admin<'_>,
    filters: &[(&str, Option<&str>)],
    json_out: bool,
) -> Result<Done, String> {
    let mut tenants = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let mut query = vec!["limit=1000".to_string()];
        query.extend(
            filters
                .iter()
                .filter_map(|(k, v)| v.map(|v| format!("{k}={v}"))),
        );
        query.extend(after.iter().map(|a| format!("after={a}")));
        let answer = admin.call("GET", &format!("/tenants?{}", query.join("&")), None)?;
        if answer.status != 200 {
            return Ok(Done {
                output: refusal("tenants", &answer),
                refused: true,
            });
        }
        let page: Value = serde_json::from_str(&answer.body).map_err(|e| e.to_string())?;
        tenants.extend(page["tenants"].as_array().cloned().unwrap_or_default());
        match page["next"].as_str() {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    let output = if json_out {
        Value::Array(tenants).to_string()
    } else {
        let mut out = format!(
            "{:<24} {:<14} {:<10} {:<7} {:>8}\n",
            "ID", "PLAN", "STATUS", "ORIGIN", "REVISION"
        );
        for t in &tenants {
            let served = if t["served"] == false {
                "  (not served)"
            } else {
                ""
            };
            out.push_str(&format!(
                "{:<24} {:<14} {:<10} {:<7} {:>8}{served}\n",
                t["id"].as_str().unwrap_or_default(),
                t["plan"].as_str().unwrap_or_default(),
                t["status"].as_str().unwrap_or_default(),
                t["origin"].as_str().unwrap_or_default(),
                t["revision"],
            ));
        }
        out.trim_end().to_string()
    };
    Ok(Done {
        output,
        refused: false,
    })
}

pub fn get(admin: &Admin<'_>, id: &str) -> Result<Done, String> {
    let answer = admin.call("GET", &format!("/tenants/{id}"), None)?;
    Ok(answered(answer, 200, id, |body| body))
}

/// PATCHes `status`.
pub fn set_status(admin: &Admin<'_>, id: &str, status: &str) -> Result<Done, String> {
    let answer = admin.call(
        "PATCH",
        &format!("/tenants/{id}"),
        Some(&json!({ "status": status })),
    )?;
    Ok(answered(answer, 200, id, |_| format!("{id}: {status}")))
}

pub fn delete(admin: &Admin<'_>, id: &str) -> Result<Done, String> {
    let answer = admin.call("DELETE", &format!("/tenants/{id}"), None)?;
    Ok(answered(answer, 204, id, |_| format!("{id}: deleted")))
}

/// `tenants policy list`: the names of a tenant's policy files, one a line.
pub fn policies(admin: &Admin<'_>, id: &str) -> Result<Done, String> {
    let answer = admin.call("GET", &format!("/tenants/{id}/policies"), None)?;
    Ok(answered(answer, 200, id, |body| {
        let listed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        let names: Vec<&str> = listed["policies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        names.join("\n")
    }))
}

/// `tenants policy get`: one file's text, as stored.
pub fn policy(admin: &Admin<'_>, id: &str, name: &str) -> Result<Done, String> {
    let answer = admin.call("GET", &format!("/tenants/{id}/policies/{name}"), None)?;
    Ok(answered(answer, 200, id, |body| {
        body.trim_end().to_string()
    }))
}

/// `tenants policy put`: the file `path` as the tenant's policy file `name`.
pub fn put_policy(admin: &Admin<'_>, id: &str, name: &str, path: &Path) -> Result<Done, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let answer = admin.send(
        "PUT",
        &format!("/tenants/{id}/policies/{name}"),
        Some(("text/plain; charset=utf-8", &text)),
    )?;
    let created = answer.status == 201;
    let status = if created { 201 } else { 200 };
    Ok(answered(answer, status, id, |_| {
        let what = if created { "created" } else { "replaced" };
        format!("{id}/{name}: {what}")
    }))
}

pub fn delete_policy(admin: &Admin<'_>, id: &str, name: &str) -> Result<Done, String> {
    let answer = admin.call("DELETE", &format!("/tenants/{id}/policies/{name}"), None)?;
    Ok(answered(answer, 204, id, |_| {
        format!("{id}/{name}: deleted")
    }))
}

/// The tenants of a file: one tenant, a list of them, or a tenants file.
fn tenants_of(path: &Path) -> Result<Vec<Value>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let value: Value =
        serde_yaml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let list = match value {
        Value::Array(list) => list,
        Value::Object(mut o) if o.contains_key("tenants") => match o.remove("tenants") {
            Some(Value::Array(list)) => list,
            _ => return Err(format!("{}: tenants must be a list", path.display())),
        },
        one @ Value::Object(_) => vec![one],
        _ => {
            return Err(format!(
                "{}: expected a tenant, a list of them, or tenants:",
                path.display()
            ));
        }
    };
    for (i, tenant) in list.iter().enumerate() {
        if !tenant["id"].is_string() {
            return Err(format!("{}: tenant {i} has no id", path.display()));
        }
    }
    Ok(list)
}

/// PUTs every tenant of `path`; goes on after a refusal, so that one run reports them all.
pub fn apply(admin: &Admin<'_>, path: &Path) -> Result<Done, String> {
    let mut lines = Vec::new();
    let mut refused = false;
    for tenant in tenants_of(path)? {
        let id = tenant["id"].as_str().unwrap_or_default().to_string();
        let answer = admin.call("PUT", &format!("/tenants/{id}"), Some(&tenant))?;
        match answer.status {
            201 => lines.push(format!("{id}: created")),
            200 => lines.push(format!("{id}: replaced")),
            _ => {
                refused = true;
                lines.push(refusal(&id, &answer));
            }
        }
    }
    Ok(Done {
        output: lines.join("\n"),
        refused,
    })
}
