//! A strict JSON reader (RFC 8259) and a string writer, for the safetensors header and
//! for any other JSON the workspace reads (in `xtask`: criterion's result files and the
//! lines of a run's `metrics.jsonl`).
//!
//! Hostile input gets an error with the byte position, never a panic: nesting is capped
//! (the parser recurses), surrogates must pair, control characters must be escaped, and
//! numbers keep their text so each caller decides which it accepts.

use std::fmt;

/// Maximum nesting of arrays/objects. A safetensors header and criterion's files nest 3
/// deep; the limit exists so that hostile input cannot overflow the parser's stack.
pub const MAX_JSON_DEPTH: usize = 64;

/// A parsed JSON value. Objects keep their members in order, duplicates included, so the
/// caller can report duplicates with a precise field name. Numbers keep their text: the
/// caller decides which numbers it accepts (safetensors only non-negative integers;
/// [`Json::as_f64`] reads any).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(String),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Json {
    /// A short description for error messages: the value itself when small.
    pub fn describe(&self) -> String {
        match self {
            Json::Null => "null".to_string(),
            Json::Bool(b) => b.to_string(),
            Json::Number(n) => format!("the number {n}"),
            Json::String(s) => {
                let short: String = s.chars().take(40).collect();
                let dots = if short.len() < s.len() { "..." } else { "" };
                format!("the string {short:?}{dots}")
            }
            Json::Array(_) => "an array".to_string(),
            Json::Object(_) => "an object".to_string(),
        }
    }
    /// The value of `key` in an object (the first, if repeated).
    pub fn get(&self, key: &str) -> Option<&Json> {
        match self {
            Json::Object(m) => m.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// A string's text.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::String(s) => Some(s),
            _ => None,
        }
    }

    /// A number as the nearest f64.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Json::Number(n) => n.parse().ok(),
            _ => None,
        }
    }
}

/// A JSON syntax error at byte `pos` of the text.
#[derive(Debug)]
pub struct JsonError {
    /// Byte offset of the error in the text.
    pub pos: usize,
    /// What was expected and what was found.
    pub msg: String,
}

impl fmt::Display for JsonError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed JSON at byte {}: {}", self.pos, self.msg)
    }
}

impl std::error::Error for JsonError {}

/// Parses one JSON value (RFC 8259) surrounded by optional whitespace.
pub fn parse_json(text: &str) -> std::result::Result<Json, JsonError> {
    let mut p = JsonParser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    p.skip_ws();
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos < p.bytes.len() {
        return Err(p.err("unexpected characters after the JSON value"));
    }
    Ok(value)
}

/// A recursive-descent parser over a `&str` (so valid UTF-8). All structural
/// characters are ASCII, so every position where the parser stops is a char boundary.
struct JsonParser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl JsonParser<'_> {
    fn err(&self, msg: impl Into<String>) -> JsonError {
        JsonError {
            pos: self.pos,
            msg: msg.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    /// Describes the byte at the current position for an error message.
    fn found(&self) -> String {
        match self.peek() {
            None => "the end of the input".to_string(),
            Some(c) if c.is_ascii_graphic() => format!("'{}'", c as char),
            Some(c) => format!("byte 0x{c:02x}"),
        }
    }

    /// `depth` counts the arrays/objects enclosing this value.
    fn value(&mut self, depth: usize) -> std::result::Result<Json, JsonError> {
        match self.peek() {
            Some(b'{') => self.object(depth + 1),
            Some(b'[') => self.array(depth + 1),
            Some(b'"') => Ok(Json::String(self.string()?)),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b'-' | b'0'..=b'9') => self.number(),
            _ => Err(self.err(format!("expected a JSON value, found {}", self.found()))),
        }
    }

    fn check_depth(&self, depth: usize) -> std::result::Result<(), JsonError> {
        if depth > MAX_JSON_DEPTH {
            Err(self.err(format!(
                "arrays/objects nested more than {MAX_JSON_DEPTH} deep"
            )))
        } else {
            Ok(())
        }
    }

    fn literal(&mut self, word: &str, value: Json) -> std::result::Result<Json, JsonError> {
        let end = self.pos.saturating_add(word.len());
        if self.bytes.get(self.pos..end) == Some(word.as_bytes()) {
            self.pos = end;
            Ok(value)
        } else {
            Err(self.err(format!("expected '{word}'")))
        }
    }

    fn object(&mut self, depth: usize) -> std::result::Result<Json, JsonError> {
        self.check_depth(depth)?;
        self.pos += 1; // '{'
        let mut members = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(Json::Object(members));
        }
        loop {
            self.skip_ws();
            if self.peek() != Some(b'"') {
                return Err(self.err(format!("expected a string key, found {}", self.found())));
            }
            let key = self.string()?;
            self.skip_ws();
            if self.peek() != Some(b':') {
                return Err(self.err(format!(
                    "expected ':' after an object key, found {}",
                    self.found()
                )));
            }
            self.pos += 1;
            self.skip_ws();
            let value = self.value(depth)?;
            members.push((key, value));
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(Json::Object(members));
                }
                _ => {
                    return Err(self.err(format!(
                        "expected ',' or '}}' in an object, found {}",
                        self.found()
                    )))
                }
            }
        }
    }

    fn array(&mut self, depth: usize) -> std::result::Result<Json, JsonError> {
        self.check_depth(depth)?;
        self.pos += 1; // '['
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(Json::Array(items));
        }
        loop {
            self.skip_ws();
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(Json::Array(items));
                }
                _ => {
                    return Err(self.err(format!(
                        "expected ',' or ']' in an array, found {}",
                        self.found()
                    )))
                }
            }
        }
    }

    fn string(&mut self) -> std::result::Result<String, JsonError> {
        let open = self.pos;
        self.pos += 1; // '"'
        let mut out = String::new();
        loop {
            // Copy the run up to the next quote, backslash or control character. Those are
            // ASCII, so the run ends on a char boundary and `get` cannot fail.
            let run = self.pos;
            while matches!(self.peek(), Some(c) if c != b'"' && c != b'\\' && c >= 0x20) {
                self.pos += 1;
            }
            out.push_str(self.text.get(run..self.pos).unwrap_or_default());
            match self.peek() {
                None => {
                    return Err(JsonError {
                        pos: open,
                        msg: "unterminated string".to_string(),
                    })
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(out);
                }
                Some(b'\\') => self.escape(&mut out)?,
                Some(c) => {
                    return Err(self.err(format!(
                        "control character 0x{c:02x} inside a string must be escaped"
                    )))
                }
            }
        }
    }

    /// Decodes the escape sequence at the current backslash into `out`.
    fn escape(&mut self, out: &mut String) -> std::result::Result<(), JsonError> {
        let start = self.pos;
        self.pos += 1; // '\\'
        let Some(c) = self.peek() else {
            return Err(self.err("unterminated escape sequence"));
        };
        self.pos += 1;
        let decoded = match c {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let first = self.hex4()?;
                let code = match first {
                    0xD800..=0xDBFF => {
                        // A high surrogate must be followed by an escaped low surrogate.
                        if self.bytes.get(self.pos..self.pos.saturating_add(2)) != Some(b"\\u") {
                            return Err(JsonError {
                                pos: start,
                                msg: format!("\\u{first:04x} is a high surrogate without a following low surrogate"),
                            });
                        }
                        self.pos += 2;
                        let second = self.hex4()?;
                        if !(0xDC00..=0xDFFF).contains(&second) {
                            return Err(JsonError {
                                pos: start,
                                msg: format!("\\u{first:04x} is a high surrogate followed by \\u{second:04x}, not a low surrogate"),
                            });
                        }
                        0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
                    }
                    0xDC00..=0xDFFF => {
                        return Err(JsonError {
                            pos: start,
                            msg: format!("\\u{first:04x} is an unpaired low surrogate"),
                        })
                    }
                    _ => first,
                };
                char::from_u32(code).ok_or_else(|| JsonError {
                    pos: start,
                    msg: format!("invalid code point U+{code:X}"),
                })?
            }
            _ => {
                return Err(JsonError {
                    pos: start,
                    msg: format!("invalid escape sequence \\{}", (c as char).escape_default()),
                })
            }
        };
        out.push(decoded);
        Ok(())
    }

    /// Four hex digits of a `\u` escape.
    fn hex4(&mut self) -> std::result::Result<u32, JsonError> {
        let mut code = 0u32;
        for _ in 0..4 {
            let digit = self.peek().and_then(|c| (c as char).to_digit(16));
            let Some(digit) = digit else {
                return Err(self.err(format!(
                    "expected 4 hex digits after \\u, found {}",
                    self.found()
                )));
            };
            code = code * 16 + digit;
            self.pos += 1;
        }
        Ok(code)
    }

    /// `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`, kept as text.
    fn number(&mut self) -> std::result::Result<Json, JsonError> {
        let start = self.pos;
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.err(format!("expected a digit, found {}", self.found()))),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            self.require_digits()?;
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            self.require_digits()?;
        }
        Ok(Json::Number(
            self.text
                .get(start..self.pos)
                .unwrap_or_default()
                .to_string(),
        ))
    }

    fn digits(&mut self) {
        while matches!(self.peek(), Some(b'0'..=b'9')) {
            self.pos += 1;
        }
    }

    fn require_digits(&mut self) -> std::result::Result<(), JsonError> {
        if !matches!(self.peek(), Some(b'0'..=b'9')) {
            return Err(self.err(format!("expected a digit, found {}", self.found())));
        }
        self.digits();
        Ok(())
    }
}

/// Appends `s` as a JSON string literal, escaped exactly like Python's `json.dumps` with
/// its default `ensure_ascii=True` (the writer of the reference files): printable ASCII
/// as is except `"` and `\`, short escapes for `\b \f \n \r \t`, and everything else
/// (other control characters, DEL, non-ASCII) as lowercase `\uXXXX`, using a surrogate
/// pair above U+FFFF.
pub fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            ' '..='~' => out.push(c),
            _ => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
    }
    out.push('"');
}

/// The one JSON writer: compact (no spaces), object members in order, numbers as their
/// text, strings escaped by [`push_json_string`]. What it writes, [`parse_json`] reads back
/// as the same value.
impl fmt::Display for Json {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Json::Null => f.write_str("null"),
            Json::Bool(b) => write!(f, "{b}"),
            Json::Number(n) => f.write_str(n),
            Json::String(s) => {
                let mut out = String::new();
                push_json_string(&mut out, s);
                f.write_str(&out)
            }
            Json::Array(items) => {
                f.write_str("[")?;
                for (i, v) in items.iter().enumerate() {
                    write!(f, "{}{v}", if i == 0 { "" } else { "," })?;
                }
                f.write_str("]")
            }
            Json::Object(members) => {
                f.write_str("{")?;
                for (i, (k, v)) in members.iter().enumerate() {
                    let mut key = String::new();
                    push_json_string(&mut key, k);
                    write!(f, "{}{key}:{v}", if i == 0 { "" } else { "," })?;
                }
                f.write_str("}")
            }
        }
    }
}

/// Builders for the writer's values.
impl Json {
    /// `v` with `decimals` digits after the point, or `null` when it is not finite (JSON
    /// has no NaN or inf: a reader sees the value as missing rather than a broken line).
    pub fn fixed(v: f64, decimals: usize) -> Json {
        if v.is_finite() {
            Json::Number(format!("{v:.decimals$}"))
        } else {
            Json::Null
        }
    }

    /// A number in its shortest round-trip form (`0.3`, `16`, `0.0005`), or `null` when
    /// it is not finite.
    pub fn num(v: impl Into<f64> + fmt::Display + Copy) -> Json {
        if v.into().is_finite() {
            Json::Number(v.to_string())
        } else {
            Json::Null
        }
    }

    /// An integer.
    pub fn int(v: impl Into<i128>) -> Json {
        Json::Number(v.into().to_string())
    }

    pub fn str(s: impl Into<String>) -> Json {
        Json::String(s.into())
    }

    /// An object from `(key, value)` pairs, in order.
    pub fn obj<K: Into<String>>(members: impl IntoIterator<Item = (K, Json)>) -> Json {
        Json::Object(members.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_writer_round_trips_through_the_reader() {
        let v = Json::obj([
            ("a", Json::fixed(0.5, 3)),
            ("b", Json::fixed(f64::NAN, 3)),
            ("c", Json::num(0.3f32)),
            ("d", Json::int(-7i64)),
            (
                "e\u{1}",
                Json::Array(vec![Json::str("x\"y\u{e9}"), Json::Bool(true), Json::Null]),
            ),
        ]);
        let text = v.to_string();
        assert_eq!(
            text,
            r#"{"a":0.500,"b":null,"c":0.3,"d":-7,"e\u0001":["x\"y\u00e9",true,null]}"#
        );
        assert_eq!(parse_json(&text).unwrap(), v);
        assert_eq!(Json::num(f64::INFINITY), Json::Null);
    }

    #[test]
    fn values_and_lookups() {
        let j = parse_json(r#" {"a": [1, -2.5e3, true, null], "b": "x\"y\u00b5\\"} "#).unwrap();
        let Some(Json::Array(a)) = j.get("a") else {
            panic!("{j:?}")
        };
        assert_eq!(a.len(), 4);
        assert_eq!((a[0].as_f64(), a[1].as_f64()), (Some(1.0), Some(-2500.0)));
        assert_eq!((a[2].clone(), a[3].clone()), (Json::Bool(true), Json::Null));
        assert_eq!(j.get("b").and_then(Json::as_str), Some("x\"yµ\\"));
        assert_eq!(j.get("c"), None);
        assert_eq!(a[0].as_str(), None);
    }

    #[test]
    fn escapes_decode_and_the_writer_reads_back() {
        let j = parse_json(r#""a\"b\\c\/d\b\f\n\r\t\u00e9\u2211\ud83d\ude00\u0000""#).unwrap();
        assert_eq!(
            j,
            Json::String("a\"b\\c/d\u{8}\u{c}\n\r\té∑😀\0".to_string())
        );
        // The writer's escaping reads back to the same string, for every kind of char.
        let s: String = (0u32..0x300)
            .chain([0x2028, 0xfffd, 0xffff, 0x10000, 0x1f600, 0x10ffff])
            .filter_map(char::from_u32)
            .collect();
        let mut lit = String::new();
        push_json_string(&mut lit, &s);
        assert!(lit.is_ascii());
        assert_eq!(parse_json(&lit).unwrap(), Json::String(s));
    }

    #[test]
    fn errors_give_the_position() {
        for (text, pos, what) in [
            ("{\"a\": 1,}", 8, "string key"),
            ("{\"a\": 1} x", 9, "after the JSON value"),
            ("[1, 2", 5, "end of the input"),
            ("01", 1, "after the JSON value"),
            ("\"\\ud800\"", 1, "high surrogate"),
        ] {
            let e = parse_json(text).unwrap_err();
            assert_eq!(e.pos, pos, "{text}: {e}");
            assert!(e.to_string().contains(what), "{text}: {e}");
        }
        let deep = format!("{}{}", "[".repeat(100), "]".repeat(100));
        assert!(parse_json(&deep)
            .unwrap_err()
            .msg
            .contains("nested more than 64"));
    }
}
