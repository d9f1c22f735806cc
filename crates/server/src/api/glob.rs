//! Channel name patterns for the `channels` method.
//!
//! The syntax is the glob dialect Centrifugo's `channels` accepts (it uses
//! gobwas/glob without separators): `*` matches any run of characters
//! (including `:` and none at all), `?` exactly one, `[abc]` / `[a-z]` one of
//! a set, `[!abc]` one outside it, `{news,chat:*}` any of the alternatives,
//! and `\` takes the next character literally. Everything else matches
//! itself. This module only matches names; which channels exist is the
//! hub's business.

/// Why a pattern could not be compiled (error 107 for the caller).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PatternError {
    /// A `[` or `{` without its closing bracket.
    #[error("unclosed {0:?} in pattern")]
    Unclosed(char),
    /// A `\` at the very end.
    #[error("pattern ends with a lone '\\'")]
    TrailingEscape,
    /// `[]` or `[!]`.
    #[error("empty character class in pattern")]
    EmptyClass,
    /// The `{..}` alternatives multiply into too many patterns.
    #[error("pattern has more than {MAX_ALTERNATIVES} alternatives")]
    TooManyAlternatives,
    /// `{..}` nested deeper than [`MAX_DEPTH`].
    #[error("pattern nests braces more than {MAX_DEPTH} deep")]
    TooDeep,
}

/// Most expanded alternatives a pattern may have.
const MAX_ALTERNATIVES: usize = 256;

/// Deepest nesting of `{..}`: parsing and expanding recurse once per level,
/// and a pattern may be as long as a request body.
const MAX_DEPTH: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    One,
    Star,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

impl Token {
    fn matches(&self, c: char) -> bool {
        match self {
            Token::Literal(l) => *l == c,
            Token::One | Token::Star => true,
            Token::Class { negated, ranges } => {
                ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Part {
    Token(Token),
    Alternatives(Vec<Vec<Part>>),
}

/// A compiled pattern: the alternatives its braces expand to.
#[derive(Debug, Clone)]
pub(crate) struct Pattern {
    alternatives: Vec<Vec<Token>>,
}

impl Pattern {
    /// Compiles `pattern`.
    pub(crate) fn new(pattern: &str) -> Result<Self, PatternError> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut pos = 0;
        let parts = parse_seq(&chars, &mut pos, 0)?;
        let alternatives = expand(&parts)?;
        Ok(Pattern { alternatives })
    }

    /// Whether `name` matches.
    pub(crate) fn matches(&self, name: &str) -> bool {
        let text: Vec<char> = name.chars().collect();
        self.alternatives
            .iter()
            .any(|tokens| matches(tokens, &text))
    }
}

/// Parses until the end, or (inside `depth` braces) until an unescaped `,`
/// or `}`, which is left at `pos`.
fn parse_seq(chars: &[char], pos: &mut usize, depth: usize) -> Result<Vec<Part>, PatternError> {
    let mut parts = Vec::new();
    while let Some(&c) = chars.get(*pos) {
        match c {
            ',' | '}' if depth > 0 => break,
            '\\' => {
                let next = chars.get(*pos + 1).ok_or(PatternError::TrailingEscape)?;
                parts.push(Part::Token(Token::Literal(*next)));
                *pos += 2;
            }
            '*' => {
                parts.push(Part::Token(Token::Star));
                *pos += 1;
            }
            '?' => {
                parts.push(Part::Token(Token::One));
                *pos += 1;
            }
            '[' => {
                *pos += 1;
                parts.push(Part::Token(parse_class(chars, pos)?));
            }
            '{' => {
                if depth == MAX_DEPTH {
                    return Err(PatternError::TooDeep);
                }
                *pos += 1;
                let mut alternatives = Vec::new();
                loop {
                    alternatives.push(parse_seq(chars, pos, depth + 1)?);
                    match chars.get(*pos) {
                        Some(',') => *pos += 1,
                        Some('}') => {
                            *pos += 1;
                            break;
                        }
                        _ => return Err(PatternError::Unclosed('{')),
                    }
                }
                parts.push(Part::Alternatives(alternatives));
            }
            c => {
                parts.push(Part::Token(Token::Literal(c)));
                *pos += 1;
            }
        }
    }
    Ok(parts)
}

/// Parses a class after its `[`, through its `]`.
fn parse_class(chars: &[char], pos: &mut usize) -> Result<Token, PatternError> {
    let negated = matches!(chars.get(*pos), Some('!'));
    if negated {
        *pos += 1;
    }
    let mut ranges = Vec::new();
    loop {
        let c = match chars.get(*pos) {
            None => return Err(PatternError::Unclosed('[')),
            Some(']') => {
                *pos += 1;
                break;
            }
            Some('\\') => {
                *pos += 1;
                *chars.get(*pos).ok_or(PatternError::TrailingEscape)?
            }
            Some(&c) => c,
        };
        *pos += 1;
        // `a-z`, unless the `-` is last before `]`.
        match (chars.get(*pos), chars.get(*pos + 1)) {
            (Some('-'), Some(&hi)) if hi != ']' => {
                ranges.push((c.min(hi), c.max(hi)));
                *pos += 2;
            }
            _ => ranges.push((c, c)),
        }
    }
    if ranges.is_empty() {
        return Err(PatternError::EmptyClass);
    }
    Ok(Token::Class { negated, ranges })
}

/// Multiplies out the alternatives into plain token sequences.
fn expand(parts: &[Part]) -> Result<Vec<Vec<Token>>, PatternError> {
    let mut out: Vec<Vec<Token>> = vec![Vec::new()];
    for part in parts {
        match part {
            Part::Token(t) => out.iter_mut().for_each(|seq| seq.push(t.clone())),
            Part::Alternatives(alternatives) => {
                let mut tails = Vec::new();
                for alternative in alternatives {
                    tails.extend(expand(alternative)?);
                }
                if out.len().saturating_mul(tails.len()) > MAX_ALTERNATIVES {
                    return Err(PatternError::TooManyAlternatives);
                }
                out = out
                    .iter()
                    .flat_map(|head| {
                        tails.iter().map(move |tail| {
                            let mut seq = head.clone();
                            seq.extend(tail.iter().cloned());
                            seq
                        })
                    })
                    .collect();
            }
        }
    }
    Ok(out)
}

/// Wildcard matching with one backtracking point (the last `*`): linear in
/// practice, never exponential.
fn matches(tokens: &[Token], text: &[char]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match tokens.get(p) {
            Some(Token::Star) => {
                star = Some((p, t));
                p += 1;
            }
            Some(token) if token.matches(text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    tokens[p.min(tokens.len())..]
        .iter()
        .all(|token| *token == Token::Star)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, name: &str) -> bool {
        Pattern::new(pattern).unwrap().matches(name)
    }

    #[test]
    fn wildcards() {
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("*", ""));
        assert!(m("*", "chat:lobby"));
        assert!(m("chat:*", "chat:lobby"));
        assert!(!m("chat:*", "news"));
        assert!(m("*:lobby", "chat:lobby"));
        assert!(m("c*t*y", "chat:lobby"));
        assert!(!m("c*t*x", "chat:lobby"));
        assert!(m("user#?", "user#7"));
        assert!(!m("user#?", "user#42"));
        assert!(m("a*b*c", "aXbYbZc"));
        assert!(m("**", "abc"));
        assert!(m("news", "news"));
        assert!(!m("news", "news2"));
    }

    #[test]
    fn classes_braces_escapes() {
        assert!(m("room[0-9]", "room5"));
        assert!(!m("room[0-9]", "roomx"));
        assert!(m("room[!0-9]", "roomx"));
        assert!(m("x[ab-]", "x-"));
        assert!(m("{chat,news}:*", "news:1"));
        assert!(!m("{chat,news}:*", "dm:1"));
        assert!(m("{a,b{c,d}}x", "bdx"));
        assert!(m("{,pre}fix", "fix"));
        assert!(m(r"a\*", "a*"));
        assert!(!m(r"a\*", "ab"));
        assert!(m("a,b}", "a,b}"));
    }

    #[test]
    fn deep_braces_are_an_error_not_a_stack_overflow() {
        // A request body may carry a pattern of up to `api_max_body` (1 MiB)
        // of `{`; on a thread with tokio's 2 MiB stack that must be refused.
        let pattern = "{".repeat(1 << 20);
        let result = std::thread::Builder::new()
            .stack_size(2 << 20)
            .spawn(move || Pattern::new(&pattern).map(|_| ()))
            .unwrap()
            .join()
            .unwrap();
        assert_eq!(result.unwrap_err(), PatternError::TooDeep);
        let deepest = format!("{}x{}", "{".repeat(MAX_DEPTH), "}".repeat(MAX_DEPTH));
        assert!(Pattern::new(&deepest).unwrap().matches("x"));
        let deeper = format!("{{{deepest}}}");
        assert_eq!(Pattern::new(&deeper).unwrap_err(), PatternError::TooDeep);
    }

    #[test]
    fn bad_patterns() {
        assert_eq!(
            Pattern::new("[ab").unwrap_err(),
            PatternError::Unclosed('[')
        );
        assert_eq!(
            Pattern::new("{a,b").unwrap_err(),
            PatternError::Unclosed('{')
        );
        assert_eq!(
            Pattern::new("a\\").unwrap_err(),
            PatternError::TrailingEscape
        );
        assert_eq!(Pattern::new("[]").unwrap_err(), PatternError::EmptyClass);
        let many = "{a,b,c,d}".repeat(5);
        assert_eq!(
            Pattern::new(&many).unwrap_err(),
            PatternError::TooManyAlternatives
        );
    }
}
