//! Secrets come only from the environment and never leave the process: every
//! line a stage prints goes through [`redact`], which blanks the values of the
//! secret variables (and a connection string's password) wherever they appear,
//! including in text a server sent back, plus anything shaped like a Supabase
//! key or a JWT.

/// The Supabase project URL (not a secret).
pub const SUPABASE_URL: &str = "SUPABASE_URL";

/// The Supabase key variables, in the order extract tries them: an explicit
/// SUPABASE_KEY, then the secret keys (every row), then the publishable ones
/// (only the rows Row Level Security lets the anon role read).
pub const SUPABASE_KEY_VARS: [&str; 5] = [
    "SUPABASE_KEY",
    "SUPABASE_SECRET_KEY",
    "SUPABASE_SERVICE_ROLE_KEY",
    "SUPABASE_PUBLISHABLE_KEY",
    "SUPABASE_ANON_KEY",
];

/// A PostgreSQL connection string, password included.
pub const DATABASE_URL: &str = "DATABASE_URL";

/// serve's bearer token.
pub const SERVE_TOKEN: &str = "SERVE_TOKEN";

/// The variables holding API keys, connection strings or tokens.
pub const SECRET_VARS: [&str; 7] = [
    SUPABASE_KEY_VARS[0],
    SUPABASE_KEY_VARS[1],
    SUPABASE_KEY_VARS[2],
    SUPABASE_KEY_VARS[3],
    SUPABASE_KEY_VARS[4],
    DATABASE_URL,
    SERVE_TOKEN,
];

const MASK: &str = "[redacted]";

/// The secret strings of this process's environment, longest first.
fn secrets() -> Vec<String> {
    let mut out = Vec::new();
    for var in SECRET_VARS {
        let Ok(value) = std::env::var(var) else {
            continue;
        };
        if let Some(password) = password_of(&value) {
            out.push(password);
        }
        out.push(value);
    }
    out.retain(|s| s.trim().len() >= 4);
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out.dedup();
    out
}

/// The password of a connection string, URL (`postgresql://u:pw@h/db`) or
/// key-value (`password=pw`) form, as written and percent-decoded.
fn password_of(conn: &str) -> Option<String> {
    if let Some(rest) = conn.split_once("://").map(|(_, r)| r) {
        let userinfo = rest.split(['/', '?']).next()?.rsplit_once('@')?.0;
        let raw = userinfo.split_once(':')?.1;
        let password = percent_encoding::percent_decode_str(raw).decode_utf8_lossy();
        return Some(password.into_owned()).filter(|p| !p.is_empty());
    }
    conn.split_whitespace()
        .find_map(|kv| kv.strip_prefix("password="))
        .map(|p| p.trim_matches('\'').to_string())
}

/// Whether a token looks like a key even when it is not ours: Supabase's
/// `sb_secret_`/`sb_publishable_` keys and JWTs (`eyJ...`, three parts).
fn looks_like_key(token: &str) -> bool {
    let keyish = |rest: &str| {
        rest.len() >= 8
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    };
    token.strip_prefix("sb_secret_").is_some_and(keyish)
        || token.strip_prefix("sb_publishable_").is_some_and(keyish)
        || (token.starts_with("eyJ") && token.split('.').count() == 3 && token.len() > 30)
}

/// `text` with every secret blanked out.
pub fn redact(text: &str) -> String {
    let mut out = text.to_string();
    for secret in secrets() {
        if out.contains(&secret) {
            out = out.replace(&secret, MASK);
        }
    }
    let is_token_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    let mut result = String::with_capacity(out.len());
    let mut token = String::new();
    let flush = |token: &mut String, result: &mut String| {
        if looks_like_key(token) {
            result.push_str(MASK);
        } else {
            result.push_str(token);
        }
        token.clear();
    };
    for c in out.chars() {
        if is_token_char(c) {
            token.push(c);
        } else {
            flush(&mut token, &mut result);
            result.push(c);
        }
    }
    flush(&mut token, &mut result);
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_of_connection_strings() {
        assert_eq!(
            password_of("postgresql://gm:s%40cret@db:5432/x?sslmode=require").as_deref(),
            Some("s@cret")
        );
        assert_eq!(
            password_of("host=db user=gm password=hunter22 dbname=x").as_deref(),
            Some("hunter22")
        );
        assert_eq!(password_of("postgresql://gm@db/x"), None);
    }

    #[test]
    fn key_shapes_are_blanked_whoever_sends_them() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJyb2xlIjoiYW5vbiJ9.c2lnbmF0dXJlLXNpZ25hdHVyZQ";
        let text = format!("apikey: sb_secret_abc123XYZ, Authorization: Bearer {jwt}; fine");
        assert_eq!(
            redact(&text),
            "apikey: [redacted], Authorization: Bearer [redacted]; fine"
        );
        assert_eq!(redact("nothing secret here"), "nothing secret here");
        // Names of key kinds in help text are not keys.
        assert_eq!(
            redact("a secret key (sb_secret_...)"),
            "a secret key (sb_secret_...)"
        );
    }
}
