//! The demo's signing key pair ships in Tollgate's repository (`config/keys/`): anyone can sign
//! tokens with it. A configuration that uses it is fine for `tollgate demo` and nowhere else, so
//! `serve` and `check` say so loudly.

use std::path::PathBuf;

use crate::config::Config;

/// SHA-256 of the repository's demo keys (`config/keys/demo-es256.pem` and `.pub.pem`, without
/// surrounding whitespace): the binary recognises them without carrying the private one.
const SHIPPED: [&str; 2] = [
    "07c3e235f797a2f013ad5229fd59e5838b00afcfe3b70c0e99f6184835026d2d",
    "2ba0413cc154570b9f6e8930d707f896a6ee6500a49a3b70f80007f83ebb0e6d",
];

fn sha256_hex(text: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.trim().as_bytes());
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The JWT key files of `config` that hold a key shipped in the repository.
pub fn shipped_keys(config: &Config) -> Vec<PathBuf> {
    let shipped = |text: &str| SHIPPED.contains(&sha256_hex(text).as_str());
    config
        .identity
        .jwt
        .iter()
        .flat_map(|provider| &provider.keys)
        .flat_map(|key| [&key.public_key_file, &key.private_key_file])
        .flatten()
        .filter(|path| std::fs::read_to_string(path).is_ok_and(|text| shipped(&text)))
        .cloned()
        .collect()
}

/// What to say about a shipped key.
pub fn warning(path: &std::path::Path) -> String {
    format!(
        "{} is the demo key shipped in Tollgate's repository: anyone can sign tokens this \
         configuration accepts. Use a key of your own (or jwks_url) outside `tollgate demo`.",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_digests_are_those_of_the_shipped_files() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("config/keys");
        for (file, digest) in ["demo-es256.pem", "demo-es256.pub.pem"]
            .iter()
            .zip(super::SHIPPED)
        {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            assert_eq!(super::sha256_hex(&text), digest, "{file}");
        }
    }
}
