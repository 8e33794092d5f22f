//! Elasticsearch's EQL functions and the value expressions built from them.
//!
//! A predicate that is not a plain "field against literal" test
//! (`endsWith(user.target.domain, user.target.group.domain)`,
//! `substring(process.name, 0, 3) == "cat"`, `add(process.pid, 1) > 10`) is
//! compiled into a [`VExpr`] tree and evaluated here. The semantics follow
//! the EQL function reference of Elasticsearch: every function returns null
//! when an argument is null, a predicate holds only when it is `true` (null
//! is not true), positions and lengths count UTF-16 code units as Java does,
//! and a trailing `~` compares case-insensitively. See
//! `docs/rule-semantics.md` for the table, including where tokenscan returns
//! null instead of raising Elasticsearch's runtime errors (a division by
//! zero, an integer overflow, a string that is not a number).

use std::borrow::Cow;
use std::fmt;
use std::net::IpAddr;

use super::ast::CmpOp;
use super::compile::cmp_holds;

/// A value during evaluation; strings borrow from the batch where they can.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val<'a> {
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    Float(f64),
    Bool(bool),
}

impl Val<'_> {
    /// `Val` as ES's `string()` and `concat()` print it.
    fn render(&self) -> Option<String> {
        Some(match self {
            Val::Null => return None,
            Val::Str(s) => s.to_string(),
            Val::Int(i) => i.to_string(),
            // Java's Double.toString keeps a ".0" on whole numbers, as `{:?}` does.
            Val::Float(x) => format!("{x:?}"),
            Val::Bool(b) => b.to_string(),
        })
    }

    fn num(&self) -> Option<f64> {
        match self {
            Val::Int(i) => Some(*i as f64),
            Val::Float(x) => Some(*x),
            _ => None,
        }
    }
}

/// The static type of a value expression, checked when a query compiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ty {
    Str,
    /// Integer or float: which one is only known per event.
    Num,
    Bool,
    /// The literal `null`: fits any parameter.
    Null,
}

impl fmt::Display for Ty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Ty::Str => "a string",
            Ty::Num => "a number",
            Ty::Bool => "a boolean",
            Ty::Null => "null",
        })
    }
}

/// The functions of Elasticsearch's EQL reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Func {
    Add,
    Between,
    CidrMatch,
    Concat,
    Divide,
    EndsWith,
    IndexOf,
    Length,
    Modulo,
    Multiply,
    Number,
    StartsWith,
    String,
    StringContains,
    Substring,
    Subtract,
}

/// Every function name, for messages.
pub(crate) const FUNCTION_NAMES: &str = "add, between, cidrMatch, concat, divide, endsWith, indexOf, length, modulo, \
     multiply, number, startsWith, string, stringContains, substring, subtract";

impl Func {
    /// The function called `name` (case-insensitive, as in Elasticsearch).
    pub(crate) fn from_name(name: &str) -> Option<Func> {
        Some(match name.to_ascii_lowercase().as_str() {
            "add" => Func::Add,
            "between" => Func::Between,
            "cidrmatch" => Func::CidrMatch,
            "concat" => Func::Concat,
            "divide" => Func::Divide,
            "endswith" => Func::EndsWith,
            "indexof" => Func::IndexOf,
            "length" => Func::Length,
            "modulo" => Func::Modulo,
            "multiply" => Func::Multiply,
            "number" => Func::Number,
            "startswith" => Func::StartsWith,
            "string" => Func::String,
            "stringcontains" => Func::StringContains,
            "substring" => Func::Substring,
            "subtract" => Func::Subtract,
            _ => return None,
        })
    }

    /// Whether Elasticsearch has a `~` (case-insensitive) variant.
    pub(crate) fn has_ci(self) -> bool {
        matches!(self, Func::Between | Func::EndsWith | Func::IndexOf | Func::StartsWith | Func::StringContains)
    }

    /// Accepted argument counts (min, max; `None` for any number).
    pub(crate) fn arity(self) -> (usize, Option<usize>) {
        match self {
            Func::Add | Func::Divide | Func::Modulo | Func::Multiply | Func::Subtract => (2, Some(2)),
            Func::EndsWith | Func::StartsWith | Func::StringContains => (2, Some(2)),
            Func::Between => (3, Some(4)),
            Func::CidrMatch => (2, None),
            Func::Concat => (1, None),
            Func::IndexOf | Func::Substring => (2, Some(3)),
            Func::Length | Func::String => (1, Some(1)),
            Func::Number => (1, Some(2)),
        }
    }

    /// The type each argument must have (`None`: any type), by position.
    pub(crate) fn param(self, k: usize) -> Option<Ty> {
        match (self, k) {
            (Func::Add | Func::Divide | Func::Modulo | Func::Multiply | Func::Subtract, _) => Some(Ty::Num),
            (Func::Between, 3) => Some(Ty::Bool),
            (Func::IndexOf, 2) | (Func::Substring, 1 | 2) | (Func::Number, 1) => Some(Ty::Num),
            (Func::Concat | Func::String, _) => None,
            _ => Some(Ty::Str),
        }
    }

    /// Arguments that Elasticsearch requires to be constants (fields are not supported there).
    pub(crate) fn literal_only(self, k: usize) -> bool {
        matches!((self, k), (Func::Between, 3) | (Func::Number, 1) | (Func::CidrMatch, 1..))
    }

    /// What the function returns.
    pub(crate) fn result(self) -> Ty {
        match self {
            Func::Add | Func::Divide | Func::Modulo | Func::Multiply | Func::Subtract => Ty::Num,
            Func::IndexOf | Func::Length | Func::Number => Ty::Num,
            Func::Between | Func::Concat | Func::String | Func::Substring => Ty::Str,
            Func::CidrMatch | Func::EndsWith | Func::StartsWith | Func::StringContains => Ty::Bool,
        }
    }
}

/// A CIDR block of `cidrMatch`, parsed when the query compiles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::y/n`, or a bare address (a full-length prefix).
    pub(crate) fn parse(s: &str) -> Option<Cidr> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let net: IpAddr = addr.parse().ok()?;
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { net, prefix })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        fn bits(a: IpAddr) -> (u128, u32) {
            match a {
                IpAddr::V4(v) => (u128::from(u32::from(v)) << 96, 32),
                IpAddr::V6(v) => (u128::from(v), 128),
            }
        }
        let ((n, nw), (i, iw)) = (bits(self.net), bits(ip));
        if nw != iw {
            return false;
        }
        let mask = if self.prefix == 0 { 0 } else { u128::MAX << (128 - u32::from(self.prefix)) };
        n & mask == i & mask
    }
}

/// A value expression: fields, literals, function calls and comparisons.
#[derive(Debug, Clone)]
pub(crate) enum VExpr {
    /// An ECS field, by index in `ECS_FIELDS`.
    Field(usize),
    /// A literal (also an unknown `?optional` field, as null).
    Lit(Val<'static>),
    /// A function call; `ci` for the `~` variant.
    Call { func: Func, ci: bool, args: Vec<VExpr>, cidrs: Vec<Cidr> },
    /// `l <op> r`.
    Cmp { op: CmpOp, l: Box<VExpr>, r: Box<VExpr> },
    /// `l in (..)` / `l in~ (..)`.
    In { l: Box<VExpr>, list: Vec<VExpr>, ci: bool },
    /// `l like ..`, `l regex ..` (and the `~` forms, `:`) on a computed string: the
    /// patterns compiled into one anchored regex.
    Like { l: Box<VExpr>, re: regex::Regex },
}

impl VExpr {
    /// The ECS fields the expression reads, each once.
    pub(crate) fn fields(&self, out: &mut Vec<usize>) {
        match self {
            VExpr::Field(i) => {
                if !out.contains(i) {
                    out.push(*i)
                }
            }
            VExpr::Lit(_) => {}
            VExpr::Call { args, .. } => args.iter().for_each(|a| a.fields(out)),
            VExpr::Cmp { l, r, .. } => {
                l.fields(out);
                r.fields(out);
            }
            VExpr::In { l, list, .. } => {
                l.fields(out);
                list.iter().for_each(|a| a.fields(out));
            }
            VExpr::Like { l, .. } => l.fields(out),
        }
    }

    /// Evaluates with `field(i)` giving the value of ECS field `i`.
    pub(crate) fn eval<'a>(&'a self, field: &dyn Fn(usize) -> Val<'a>) -> Val<'a> {
        match self {
            VExpr::Field(i) => field(*i),
            VExpr::Lit(v) => v.clone(),
            VExpr::Call { func, ci, args, cidrs } => {
                let vals: Vec<Val<'a>> = args.iter().map(|a| a.eval(field)).collect();
                call(*func, *ci, vals, cidrs)
            }
            VExpr::Cmp { op, l, r } => compare(*op, &l.eval(field), &r.eval(field)),
            VExpr::In { l, list, ci } => {
                let v = l.eval(field);
                if v == Val::Null {
                    return Val::Null;
                }
                let hit = list.iter().any(|item| {
                    let w = item.eval(field);
                    match (&v, &w, ci) {
                        (Val::Str(a), Val::Str(b), true) => a.to_lowercase() == b.to_lowercase(),
                        _ => compare(CmpOp::Eq, &v, &w) == Val::Bool(true),
                    }
                });
                Val::Bool(hit)
            }
            VExpr::Like { l, re } => match l.eval(field) {
                Val::Str(s) => Val::Bool(re.is_match(&s)),
                _ => Val::Null,
            },
        }
    }

    /// Whether the expression is `true` (null and false are not).
    pub(crate) fn holds<'a>(&'a self, field: &dyn Fn(usize) -> Val<'a>) -> bool {
        self.eval(field) == Val::Bool(true)
    }
}

/// `l <op> r` with null for a null operand; strings with strings, numbers with numbers.
pub(crate) fn compare(op: CmpOp, l: &Val<'_>, r: &Val<'_>) -> Val<'static> {
    let ord = match (l, r) {
        (Val::Null, _) | (_, Val::Null) => return Val::Null,
        (Val::Str(a), Val::Str(b)) => a.as_ref().cmp(b.as_ref()),
        (Val::Int(a), Val::Int(b)) => a.cmp(b),
        (Val::Bool(a), Val::Bool(b)) => a.cmp(b),
        (a, b) => match (a.num(), b.num()) {
            (Some(x), Some(y)) => match x.partial_cmp(&y) {
                Some(o) => o,
                None => return Val::Null,
            },
            _ => return Val::Null,
        },
    };
    Val::Bool(cmp_holds(op, ord))
}

fn utf16_len(s: &str) -> usize {
    s.chars().map(char::len_utf16).sum()
}

/// `s` lower-cased for a `~` function, and whether byte offsets in it are offsets in `s` too.
fn folded(s: &str, ci: bool) -> (Cow<'_, str>, bool) {
    if !ci {
        return (Cow::Borrowed(s), true);
    }
    let low = s.to_lowercase();
    let same = low.len() == s.len();
    (Cow::Owned(low), same)
}

fn arith(func: Func, a: &Val<'_>, b: &Val<'_>) -> Val<'static> {
    match (a, b) {
        (Val::Int(x), Val::Int(y)) => {
            let r = match func {
                Func::Add => x.checked_add(*y),
                Func::Subtract => x.checked_sub(*y),
                Func::Multiply => x.checked_mul(*y),
                // Java's integer division and remainder: truncated toward zero.
                Func::Divide => x.checked_div(*y),
                Func::Modulo => x.checked_rem(*y),
                _ => None,
            };
            r.map_or(Val::Null, Val::Int)
        }
        _ => {
            let (Some(x), Some(y)) = (a.num(), b.num()) else { return Val::Null };
            let r = match func {
                Func::Add => x + y,
                Func::Subtract => x - y,
                Func::Multiply => x * y,
                Func::Divide if y == 0.0 => return Val::Null,
                Func::Divide => x / y,
                Func::Modulo if y == 0.0 => return Val::Null,
                Func::Modulo => x % y,
                _ => return Val::Null,
            };
            if r.is_finite() {
                Val::Float(r)
            } else {
                Val::Null
            }
        }
    }
}

/// `number(s, base)`: an integer in `base` (16 for a `0x` prefix, else 10), or a decimal float.
fn to_number(s: &str, base: Option<i64>) -> Val<'static> {
    let t = s.trim();
    let (neg, body) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    let (base, digits) = match body.strip_prefix("0x").or_else(|| body.strip_prefix("0X")) {
        Some(hex) if base.is_none() || base == Some(16) => (16, hex),
        _ => (base.unwrap_or(10), body),
    };
    if !(2..=36).contains(&base) || digits.is_empty() || digits.starts_with(['+', '-']) {
        return Val::Null;
    }
    if let Ok(v) = i64::from_str_radix(digits, base as u32) {
        return Val::Int(if neg { -v } else { v });
    }
    if base == 10 {
        if let Ok(x) = t.parse::<f64>() {
            if x.is_finite() {
                return Val::Float(x);
            }
        }
    }
    Val::Null
}

fn call<'a>(func: Func, ci: bool, args: Vec<Val<'a>>, cidrs: &[Cidr]) -> Val<'a> {
    // Every function returns null when an argument is null (`between`'s greedy flag and
    // `number`'s base included: an explicit null base is the default).
    let optional_null = |k: usize| matches!((func, k), (Func::Number, 1));
    if args.iter().enumerate().any(|(k, a)| *a == Val::Null && !optional_null(k)) {
        return Val::Null;
    }
    let s = |k: usize| match args.get(k) {
        Some(Val::Str(s)) => s.as_ref(),
        _ => "",
    };
    let int = |k: usize| match args.get(k) {
        Some(Val::Int(i)) => Some(*i),
        Some(Val::Float(x)) => Some(*x as i64),
        _ => None,
    };
    match func {
        Func::Add | Func::Subtract | Func::Multiply | Func::Divide | Func::Modulo => arith(func, &args[0], &args[1]),
        Func::Length => Val::Int(utf16_len(s(0)) as i64),
        Func::StartsWith | Func::EndsWith | Func::StringContains => {
            let (hay, _) = folded(s(0), ci);
            let (needle, _) = folded(s(1), ci);
            Val::Bool(match func {
                Func::StartsWith => hay.starts_with(needle.as_ref()),
                Func::EndsWith => hay.ends_with(needle.as_ref()),
                // The reference: an empty substring is never contained.
                _ => !needle.is_empty() && hay.contains(needle.as_ref()),
            })
        }
        Func::Concat => {
            let mut out = String::new();
            for a in &args {
                out.push_str(&a.render().unwrap_or_default());
            }
            Val::Str(Cow::Owned(out))
        }
        Func::String => args[0].render().map_or(Val::Null, |r| Val::Str(Cow::Owned(r))),
        Func::Number => to_number(s(0), int(1)),
        Func::CidrMatch => match s(0).parse::<IpAddr>() {
            Ok(ip) => Val::Bool(cidrs.iter().any(|c| c.contains(ip))),
            Err(_) => Val::Bool(false),
        },
        Func::Substring => {
            // Java's substring, on UTF-16 code units; half a surrogate pair becomes U+FFFD.
            let units: Vec<u16> = s(0).encode_utf16().collect();
            let len = units.len() as i64;
            let clamp = |p: i64| if p < 0 { (len + p).max(0) } else { p.min(len) };
            let start = int(1).map_or(0, clamp);
            let end = if args.len() > 2 { int(2).map_or(len, clamp) } else { len };
            if start >= end {
                return Val::Str(Cow::Borrowed(""));
            }
            Val::Str(Cow::Owned(String::from_utf16_lossy(&units[start as usize..end as usize])))
        }
        Func::IndexOf => {
            // Java's indexOf, on UTF-16 code units.
            let (hay, _) = folded(s(0), ci);
            let (needle, _) = folded(s(1), ci);
            let hay: Vec<u16> = hay.encode_utf16().collect();
            let needle: Vec<u16> = needle.encode_utf16().collect();
            let start = if args.len() > 2 { int(2).unwrap_or(0).max(0) } else { 0 };
            if start > hay.len() as i64 {
                return Val::Null;
            }
            let start = start as usize;
            if needle.is_empty() {
                return Val::Int(start as i64);
            }
            hay[start..]
                .windows(needle.len())
                .position(|w| w == needle.as_slice())
                .map_or(Val::Null, |i| Val::Int((start + i) as i64))
        }
        Func::Between => {
            let src = s(0);
            let greedy = matches!(args.get(3), Some(Val::Bool(true)));
            let (hay, same) = folded(src, ci);
            let (left, _) = folded(s(1), ci);
            let (right, _) = folded(s(2), ci);
            let Some(l) = hay.find(left.as_ref()) else { return Val::Str(Cow::Borrowed("")) };
            let from = l + left.len();
            let r = if greedy { hay[from..].rfind(right.as_ref()) } else { hay[from..].find(right.as_ref()) };
            let Some(r) = r else { return Val::Str(Cow::Borrowed("")) };
            let text = if same { &src[from..from + r] } else { &hay[from..from + r] };
            Val::Str(Cow::Owned(text.to_string()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Val<'static> {
        Val::Str(Cow::Owned(x.to_string()))
    }

    #[test]
    fn positions_are_utf16_code_units() {
        // "é" is one UTF-16 unit, the emoji two.
        let call2 = |f, a: &str, b: Val<'static>, c: Option<Val<'static>>| {
            let mut args = vec![s(a), b];
            args.extend(c);
            call(f, false, args, &[])
        };
        assert_eq!(call2(Func::IndexOf, "é😀x", s("x"), None), Val::Int(3));
        assert_eq!(call2(Func::Substring, "é😀x", Val::Int(1), Some(Val::Int(3))), s("😀"));
        // Half a surrogate pair is not a character: U+FFFD stands for it.
        assert_eq!(call2(Func::Substring, "😀x", Val::Int(1), None), s("\u{fffd}x"));
    }

    #[test]
    fn cidr_blocks() {
        let c = Cidr::parse("192.168.0.0/16").unwrap();
        assert!(c.contains("192.168.152.12".parse().unwrap()));
        assert!(!c.contains("10.0.0.1".parse().unwrap()));
        assert!(!c.contains("::1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(Cidr::parse("fe80::/10").unwrap().contains("fe80::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("not an ip/8").is_none());
    }

    #[test]
    fn numbers_from_strings() {
        assert_eq!(to_number("1337", None), Val::Int(1337));
        assert_eq!(to_number("deadbeef", Some(16)), Val::Int(3_735_928_559));
        assert_eq!(to_number("", None), Val::Null);
        assert_eq!(to_number("42.5", None), Val::Float(42.5));
        assert_eq!(to_number("12ab", None), Val::Null);
        assert_eq!(call(Func::Number, false, vec![s("0xdeadbeef"), Val::Null], &[]), Val::Int(3_735_928_559));
    }
}
