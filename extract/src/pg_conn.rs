//! A PostgreSQL connection string, URL (`postgresql://...?sslmode=...`) or
//! key-value (`host=... sslmode=...`) form, with libpq's TLS modes, which the
//! `postgres` crate does not parse itself:
//!
//! | sslmode | encrypts | verifies the certificate chain | verifies the host name |
//! |---|---|---|---|
//! | disable | no | | |
//! | allow, prefer | when the server offers it | no | no |
//! | require | yes | only when `sslrootcert` is given (as libpq) | no |
//! | verify-ca | yes | yes | no |
//! | verify-full | yes | yes | yes |
//!
//! `sslrootcert` names a PEM file of trusted roots; without it (or with
//! `sslrootcert=system`) the verifying modes use the system's trust store.
//! Errors say what is wrong and never quote the string, which may hold a password.

use std::str::FromStr;

use anyhow::{Context, Result, anyhow, bail};
use postgres::Config;
use postgres::config::SslMode;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl TlsMode {
    fn parse(value: &str) -> Result<Self> {
        Ok(match value {
            "disable" => TlsMode::Disable,
            "allow" | "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            other => bail!(
                "DATABASE_URL: sslmode `{other}` is not one of disable, allow, prefer, require, verify-ca, verify-full"
            ),
        })
    }
}

/// A parsed connection string: the driver's settings and how to do TLS.
pub struct ConnSpec {
    pub config: Config,
    pub tls: TlsMode,
    /// PEM file of trusted roots; `None` = the system's.
    pub root_cert: Option<String>,
}

/// The TLS options we handle ourselves; any other goes to the driver.
const TLS_KEYS: [&str; 2] = ["sslmode", "sslrootcert"];

pub fn parse(conn: &str) -> Result<ConnSpec> {
    let conn = conn.trim();
    let (rest, tls_options) =
        if conn.starts_with("postgres://") || conn.starts_with("postgresql://") {
            split_url(conn)?
        } else {
            split_key_values(conn)?
        };
    let mut tls = TlsMode::Prefer;
    let mut root_cert = None;
    for (key, value) in tls_options {
        match key.as_str() {
            "sslmode" => tls = TlsMode::parse(&value)?,
            _ => root_cert = Some(value).filter(|v| v != "system"),
        }
    }
    if tls == TlsMode::Require && root_cert.is_some() {
        // libpq: "if a root CA file exists, require behaves like verify-ca".
        tls = TlsMode::VerifyCa;
    }
    let mut config = Config::from_str(&rest).map_err(|e| {
        // The driver's message names the option, never its value.
        anyhow!("DATABASE_URL is not a valid PostgreSQL connection string: {e}")
    })?;
    config.ssl_mode(match tls {
        TlsMode::Disable => SslMode::Disable,
        TlsMode::Prefer => SslMode::Prefer,
        _ => SslMode::Require,
    });
    Ok(ConnSpec {
        config,
        tls,
        root_cert,
    })
}

/// The URL without its TLS query parameters, and those parameters.
fn split_url(conn: &str) -> Result<(String, Vec<(String, String)>)> {
    let Some((head, query)) = conn.split_once('?') else {
        return Ok((conn.to_string(), Vec::new()));
    };
    let mut keep = Vec::new();
    let mut tls = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        if TLS_KEYS.contains(&key) {
            let value = url::form_urlencoded::parse(format!("v={value}").as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default();
            tls.push((key.to_string(), value));
        } else {
            keep.push(pair);
        }
    }
    let rest = if keep.is_empty() {
        head.to_string()
    } else {
        format!("{head}?{}", keep.join("&"))
    };
    Ok((rest, tls))
}

/// `key=value` pairs (values may be single-quoted, with `\'` and `\\`), split
/// into the driver's part and the TLS options.
fn split_key_values(conn: &str) -> Result<(String, Vec<(String, String)>)> {
    let mut keep = Vec::new();
    let mut tls = Vec::new();
    let mut chars = conn.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.next() != Some('=') {
            bail!(
                "DATABASE_URL: `{key}` has no value (expected key=value pairs or a postgresql:// URL)"
            );
        }
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let mut raw = String::new();
        let mut value = String::new();
        if chars.peek() == Some(&'\'') {
            raw.push('\'');
            chars.next();
            loop {
                match chars.next() {
                    Some('\\') => {
                        let c = chars
                            .next()
                            .context("DATABASE_URL: unterminated quoted value")?;
                        raw.push('\\');
                        raw.push(c);
                        value.push(c);
                    }
                    Some('\'') => {
                        raw.push('\'');
                        break;
                    }
                    Some(c) => {
                        raw.push(c);
                        value.push(c);
                    }
                    None => bail!("DATABASE_URL: unterminated quoted value for `{key}`"),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() {
                    break;
                }
                raw.push(c);
                value.push(c);
                chars.next();
            }
        }
        if TLS_KEYS.contains(&key.as_str()) {
            tls.push((key, value));
        } else {
            keep.push(format!("{key}={raw}"));
        }
    }
    Ok((keep.join(" "), tls))
}

/// The TLS connector for a spec; `None` when TLS is off.
pub fn connector(spec: &ConnSpec) -> Result<Option<native_tls::TlsConnector>> {
    let mut builder = native_tls::TlsConnector::builder();
    match spec.tls {
        TlsMode::Disable => return Ok(None),
        TlsMode::Prefer | TlsMode::Require => {
            // libpq's prefer/require encrypt without checking who is on the other end.
            builder
                .danger_accept_invalid_certs(true)
                .danger_accept_invalid_hostnames(true);
        }
        TlsMode::VerifyCa => {
            builder.danger_accept_invalid_hostnames(true);
        }
        TlsMode::VerifyFull => {}
    }
    if let Some(path) = &spec.root_cert {
        let pem = std::fs::read(path)
            .with_context(|| format!("DATABASE_URL: reading sslrootcert {path}"))?;
        let cert = native_tls::Certificate::from_pem(&pem).map_err(|e| {
            anyhow!("DATABASE_URL: sslrootcert {path} is not a PEM certificate: {e}")
        })?;
        builder.add_root_certificate(cert);
        builder.disable_built_in_roots(true);
    }
    Ok(Some(builder.build().context("setting up TLS")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_tls_options_are_taken_out() {
        let spec = parse(
            "postgresql://gm:pw@db.example:6543/gm?sslmode=verify-full&sslrootcert=%2Ftmp%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(spec.tls, TlsMode::VerifyFull);
        assert_eq!(spec.root_cert.as_deref(), Some("/tmp/ca.pem"));
        assert_eq!(spec.config.get_application_name(), Some("x"));
        assert_eq!(spec.config.get_ports(), [6543]);
    }

    #[test]
    fn key_value_form_and_libpq_defaults() {
        let spec = parse(r"host=db user=gm password='it\'s' sslmode=require").unwrap();
        assert_eq!(spec.tls, TlsMode::Require);
        assert_eq!(spec.config.get_password(), Some(&b"it's"[..]));
        let spec = parse("host=db sslmode=require sslrootcert=/ca.pem").unwrap();
        assert_eq!(
            spec.tls,
            TlsMode::VerifyCa,
            "require with a root file verifies"
        );
        assert_eq!(parse("host=db").unwrap().tls, TlsMode::Prefer);
    }

    #[test]
    fn errors_never_quote_the_string() {
        for bad in [
            "postgresql://gm:hunter22@db/x?sslmode=verify-everything",
            "postgresql://gm:hunter22@db:notaport/x",
            "host=db password=hunter22 bogus",
            "postgresql://gm:hunter22@db/x?frobnicate=1",
        ] {
            let err = match parse(bad) {
                Ok(_) => panic!("{bad} should not parse"),
                Err(e) => format!("{e:#}"),
            };
            assert!(!err.contains("hunter22"), "{err}");
            assert!(err.starts_with("DATABASE_URL"), "{err}");
        }
    }
}
