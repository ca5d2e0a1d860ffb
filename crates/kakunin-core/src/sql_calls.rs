//! Repointing calls in an expression PostgreSQL deparsed (`pg_get_expr`):
//! `from_schema.name()` becomes `to_schema.name()` for the given names, and
//! nothing inside a string literal or a quoted identifier is touched
//! (`kakunin.adopt_sql_helpers`, issue 12).
//!
//! The deparser writes every call as `schema.name(` with identifiers quoted
//! only where needed (`quote_identifier`), literals as `'…'` with `''` inside,
//! or `E'…'` with backslash escapes when `standard_conforming_strings` is off.
//! A small lexer over those token kinds is enough; the caller checks the
//! result through PostgreSQL's own dependency records. The same lexer finds
//! such calls in function bodies (which `pg_depend` does not track), so it
//! also skips comments and dollar-quoted strings.

/// A token of deparsed SQL that matters here; everything else is `Other`.
#[derive(Debug, PartialEq)]
enum Token {
    /// An identifier, case-folded if it was not quoted.
    Ident(String),
    Other(char),
    Literal,
}

/// Splits `sql` into tokens with their byte ranges.
fn lex(sql: &str) -> Vec<(Token, std::ops::Range<usize>)> {
    let bytes = sql.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let c = bytes[i];
        let escape_string = (c == b'E' || c == b'e')
            && bytes.get(i + 1) == Some(&b'\'')
            && !ident_byte(prev(bytes, i));
        if c == b'-' && bytes.get(i + 1) == Some(&b'-') {
            // A comment, to the end of the line (function bodies have them).
            while i < bytes.len() && bytes[i] != b'\n' {
                i += 1;
            }
            out.push((Token::Literal, start..i));
        } else if c == b'/' && bytes.get(i + 1) == Some(&b'*') {
            // A block comment; PostgreSQL's nest.
            let mut depth = 0;
            while i < bytes.len() {
                if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
                    depth += 1;
                    i += 2;
                } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    i += 1;
                }
            }
            out.push((Token::Literal, start..i.min(bytes.len())));
        } else if let Some(tag) = dollar_tag(&sql[i..]).filter(|_| !ident_byte(prev(bytes, i))) {
            // A dollar-quoted string: $$…$$ or $tag$…$tag$.
            i += tag.len();
            i = sql[i..]
                .find(tag)
                .map_or(bytes.len(), |end| i + end + tag.len());
            out.push((Token::Literal, start..i));
        } else if c == b'\'' || escape_string {
            i += if escape_string { 2 } else { 1 };
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' if escape_string => i += 2,
                    b'\'' if bytes.get(i + 1) == Some(&b'\'') => i += 2,
                    b'\'' => {
                        i += 1;
                        break;
                    }
                    _ => i += 1,
                }
            }
            out.push((Token::Literal, start..i.min(bytes.len())));
        } else if c == b'"' {
            let mut name = String::new();
            i += 1;
            while i < bytes.len() {
                if bytes[i] == b'"' {
                    if bytes.get(i + 1) == Some(&b'"') {
                        name.push('"');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                let ch = sql[i..].chars().next().unwrap_or('\0');
                name.push(ch);
                i += ch.len_utf8();
            }
            out.push((Token::Ident(name), start..i.min(bytes.len())));
        } else if ident_start(c) {
            while i < bytes.len() && ident_byte(bytes[i]) {
                i += 1;
            }
            out.push((Token::Ident(sql[start..i].to_lowercase()), start..i));
        } else {
            let ch = sql[i..].chars().next().unwrap_or('\0');
            i += ch.len_utf8().max(1);
            out.push((Token::Other(ch), start..i));
        }
    }
    out
}

/// The opening `$tag$` at the start of `sql`, if there is one.
fn dollar_tag(sql: &str) -> Option<&str> {
    let rest = sql.strip_prefix('$')?;
    let end = rest.find('$')?;
    let tag = &rest[..end];
    let valid = tag.bytes().enumerate().all(|(i, c)| {
        c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 || (i > 0 && c.is_ascii_digit())
    });
    valid.then(|| &sql[..end + 2])
}

fn prev(bytes: &[u8], i: usize) -> u8 {
    if i == 0 {
        b' '
    } else {
        bytes[i - 1]
    }
}

fn ident_start(c: u8) -> bool {
    c.is_ascii_alphabetic() || c == b'_' || c >= 0x80
}

fn ident_byte(c: u8) -> bool {
    ident_start(c) || c.is_ascii_digit() || c == b'$'
}

/// Rewrites every call `from_schema.f()` with `f` in `names` (no arguments)
/// to `to_schema.f()`; `to_schema` is written as given (quoted by PostgreSQL's
/// `quote_ident`), and each name in `names` must be a bare identifier.
/// Returns the new text and the names of the calls it rewrote, in order.
pub fn repoint(
    sql: &str,
    from_schema: &str,
    names: &[&str],
    to_schema: &str,
) -> (String, Vec<String>) {
    let tokens = lex(sql);
    let mut out = String::with_capacity(sql.len());
    let mut rewrote = Vec::new();
    let mut copied = 0;
    let mut i = 0;
    while i < tokens.len() {
        let call = match &tokens[i..] {
            [(Token::Ident(schema), s), (Token::Other('.'), _), (Token::Ident(name), _), (Token::Other('('), _), (Token::Other(')'), e), ..]
                if schema == from_schema && names.contains(&name.as_str()) =>
            {
                Some((s.start, e.end, name.clone()))
            }
            _ => None,
        };
        // A call must not be the tail of a longer qualified name (db.schema.f()).
        let qualified_further = i > 0 && tokens[i - 1].0 == Token::Other('.');
        match call {
            Some((start, end, name)) if !qualified_further => {
                out.push_str(&sql[copied..start]);
                out.push_str(&format!("{to_schema}.{name}()"));
                copied = end;
                rewrote.push(name);
                i += 5;
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    (out, rewrote)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NAMES: &[&str] = &[
        "kakunin_agent_id",
        "kakunin_cert_status",
        "kakunin_permitted_instruments",
    ];

    fn repoint_public(sql: &str) -> (String, Vec<String>) {
        repoint(sql, "public", NAMES, "extensions")
    }

    #[test]
    fn the_seeds_policy_is_repointed() {
        let (sql, names) = repoint_public(
            "((agent_id = public.kakunin_agent_id()) AND (public.kakunin_cert_status() = 'active'::text) AND (instrument = ANY (public.kakunin_permitted_instruments())))",
        );
        assert_eq!(
            sql,
            "((agent_id = extensions.kakunin_agent_id()) AND (extensions.kakunin_cert_status() = 'active'::text) AND (instrument = ANY (extensions.kakunin_permitted_instruments())))"
        );
        assert_eq!(
            names,
            [
                "kakunin_agent_id",
                "kakunin_cert_status",
                "kakunin_permitted_instruments"
            ]
        );
    }

    #[test]
    fn literals_and_quoted_identifiers_are_left_alone() {
        for sql in [
            "(note = 'public.kakunin_agent_id()'::text)",
            "(note = 'it''s public.kakunin_agent_id()'::text)",
            "(note = E'\\' public.kakunin_agent_id()'::text)",
            "(\"public.kakunin_agent_id()\" = 1)",
            "(x = other.kakunin_agent_id())",
            "(x = public.kakunin_agent_id(1))",
            "(x = public.kakunin_agent_ids())",
            "(x = db.public.kakunin_agent_id())",
        ] {
            assert_eq!(repoint_public(sql), (sql.to_string(), vec![]), "{sql}");
        }
    }

    #[test]
    fn quoted_schemas_and_names_match_by_their_value() {
        let (sql, names) = repoint(
            "(a = \"My Schema\".kakunin_agent_id())",
            "My Schema",
            NAMES,
            "x",
        );
        assert_eq!(sql, "(a = x.kakunin_agent_id())");
        assert_eq!(names, ["kakunin_agent_id"]);
        // Unquoted names fold to lower case, as PostgreSQL reads them.
        assert_eq!(
            repoint("(a = PUBLIC.Kakunin_Agent_Id())", "public", NAMES, "x").0,
            "(a = x.kakunin_agent_id())"
        );
        // A quoted upper-case schema is another schema.
        assert_eq!(
            repoint("(a = \"PUBLIC\".kakunin_agent_id())", "public", NAMES, "x")
                .1
                .len(),
            0
        );
    }

    #[test]
    fn calls_in_function_bodies_are_found_past_comments_and_dollar_quotes() {
        let body = "-- don't
            /* nested /* comment */ public.kakunin_agent_id() */
            SELECT a = public.kakunin_agent_id() FROM t WHERE b = $q$public.kakunin_cert_status()$q$ AND c = $1";
        assert_eq!(repoint_public(body).1, ["kakunin_agent_id"]);
    }

    #[test]
    fn an_unterminated_literal_is_kept_as_it_is() {
        let sql = "(a = 'public.kakunin_agent_id()";
        assert_eq!(repoint_public(sql).0, sql);
    }
}
