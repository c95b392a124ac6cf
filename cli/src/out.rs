//! Output: aligned tables and `key: value` blocks for people, JSON for scripts.

use serde_json::Value;

/// Prints JSON (pretty) on stdout.
pub fn json(v: &Value) {
    println!(
        "{}",
        serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
    );
}

/// Prints rows as an aligned table with a header. Empty tables print `empty` instead.
pub fn table(header: &[&str], rows: &[Vec<String>], empty: &str) {
    if rows.is_empty() {
        println!("{empty}");
        return;
    }
    let mut width: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if let Some(w) = width.get_mut(i) {
                *w = (*w).max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                let pad = width[i].saturating_sub(c.chars().count());
                s.push_str(c);
                s.push_str(&" ".repeat(pad + 2));
            }
        }
        println!("{}", s.trim_end());
    };
    line(header.to_vec());
    for r in rows {
        line(r.iter().map(String::as_str).collect());
    }
}

/// Prints `key: value` lines with the values aligned.
pub fn fields(pairs: &[(&str, String)]) {
    let w = pairs.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (k, v) in pairs {
        println!("{k}:{} {v}", " ".repeat(w - k.len()));
    }
}

/// `remaining/max` of a PIN, with its state.
pub fn pin_state(p: &token_hal::PinInfo) -> String {
    let mut s = format!("{}/{} tries left", p.remaining, p.max_retries);
    if !p.initialized {
        s.push_str(", not set");
    } else if p.locked() {
        s.push_str(", LOCKED");
    } else if p.default_pin {
        s.push_str(", default PIN");
    }
    s
}
