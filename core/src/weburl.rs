//! Absolute `http:` / `https:` URLs, parsed and serialised as the WHATWG URL Standard's basic URL
//! parser does (what the `url` crate did for us), for the few things Refport needs: validating
//! and normalising URLs merchants give (link destinations, logo, webhook and Stripe return URLs),
//! the host of a `Referer`, and appending a query parameter to a stored destination.
//!
//! Why not the `url` crate: it carries the Unicode IDNA tables (ICU4X) into the Worker's wasm,
//! a large share of its size. Here every step is Rust except the UTS 46 mapping of hostnames
//! that are not plain ASCII (a non-ASCII or `xn--` label): in the Worker (wasm32) that is the
//! runtime's own WHATWG `URL` (workerd), with `xn--` labels checked here as `idna` checks them;
//! natively (tests) it is `idna` itself, which is what `url` calls. Everything else follows the
//! same algorithm as `url`; the tests compare the two on generated inputs. Known difference in
//! the Worker: workerd's IDNA skips some of UTS 46's bidi rule (it accepts a few mixes of
//! right-to-left and other labels that `idna` refuses), and its Unicode version is its own.
//!
//! Other schemes are refused with [`ParseError::NotHttp`] rather than parsed.

use percent_encoding::{percent_decode, utf8_percent_encode, AsciiSet, CONTROLS};
use std::fmt;

/// The fragment percent-encode set.
const FRAGMENT: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'<').add(b'>').add(b'`');
/// The path percent-encode set.
const PATH: &AsciiSet = &FRAGMENT.add(b'#').add(b'?').add(b'{').add(b'}');
/// The userinfo percent-encode set.
const USERINFO: &AsciiSet =
    &PATH.add(b'/').add(b':').add(b';').add(b'=').add(b'@').add(b'[').add(b'\\').add(b']').add(b'^').add(b'|');
/// The special-query percent-encode set (queries of http and https URLs).
const SPECIAL_QUERY: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b'#').add(b'<').add(b'>').add(b'\'');

/// Why a string is not an absolute http(s) URL. The messages are the `url` crate's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    /// No scheme: a relative reference such as `/pricing`, or not a URL at all.
    RelativeUrlWithoutBase,
    /// An absolute URL of another scheme (`javascript:`, `ftp:`, `mailto:`...).
    NotHttp,
    EmptyHost,
    /// A hostname with a forbidden character, or one UTS 46 (IDNA) refuses.
    IdnaError,
    InvalidPort,
    InvalidIpv4Address,
    InvalidIpv6Address,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ParseError::RelativeUrlWithoutBase => "relative URL without a base",
            ParseError::NotHttp => "not an http or https URL",
            ParseError::EmptyHost => "empty host",
            ParseError::IdnaError => "invalid international domain name",
            ParseError::InvalidPort => "invalid port number",
            ParseError::InvalidIpv4Address => "invalid IPv4 address",
            ParseError::InvalidIpv6Address => "invalid IPv6 address",
        })
    }
}

/// A parsed absolute http(s) URL: its serialisation plus where each component starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpUrl {
    serialization: String,
    /// `serialization[..scheme_end]` is the scheme (followed by `://`).
    scheme_end: usize,
    host_start: usize,
    host_end: usize,
    /// The path runs from here to the query, the fragment or the end.
    path_start: usize,
    /// Index of the `?` that starts the query, if any.
    query_start: Option<usize>,
    /// Index of the `#` that starts the fragment, if any.
    fragment_start: Option<usize>,
    credentials: bool,
}

impl HttpUrl {
    /// Parses `input` as the WHATWG basic URL parser does without a base URL, accepting only
    /// the `http` and `https` schemes.
    pub fn parse(input: &str) -> Result<HttpUrl, ParseError> {
        // Leading and trailing C0 controls and spaces are stripped, tabs and newlines removed.
        let trimmed = input.trim_matches(|c: char| c <= ' ');
        let cleaned: String;
        let s = if trimmed.contains(['\t', '\n', '\r']) {
            cleaned = trimmed.chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect();
            cleaned.as_str()
        } else {
            trimmed
        };

        let colon = scheme_end(s).ok_or(ParseError::RelativeUrlWithoutBase)?;
        let scheme = s[..colon].to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" => 80,
            "https" => 443,
            _ => return Err(ParseError::NotHttp),
        };
        // Special schemes: any run of slashes and backslashes leads to the authority.
        let rest = s[colon + 1..].trim_start_matches(['/', '\\']);
        let authority_end = rest.find(['/', '\\', '?', '#']).unwrap_or(rest.len());
        let (authority, after) = rest.split_at(authority_end);

        // Userinfo: everything before the last `@`; the first `:` ends the username.
        let (userinfo, host_and_port) = match authority.rfind('@') {
            Some(at) => (&authority[..at], &authority[at + 1..]),
            None => ("", authority),
        };
        let (username, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let (host_raw, port_raw) = split_port(host_and_port);
        if host_raw.is_empty() {
            return Err(ParseError::EmptyHost);
        }
        let host = parse_host(host_raw)?;
        let port = match port_raw {
            Some(p) => parse_port(p, default_port)?,
            None => None,
        };

        let path_end = after.find(['?', '#']).unwrap_or(after.len());
        let (path_raw, after) = after.split_at(path_end);
        let (query_raw, fragment_raw) = match after.find('#') {
            Some(h) => (&after[..h], Some(&after[h + 1..])),
            None => (after, None),
        };
        let query_raw = query_raw.strip_prefix('?');

        let mut out = String::with_capacity(s.len() + 8);
        out.push_str(&scheme);
        out.push_str("://");
        let username = utf8_percent_encode(username, USERINFO).to_string();
        let password = utf8_percent_encode(password, USERINFO).to_string();
        let credentials = !username.is_empty() || !password.is_empty();
        if credentials {
            out.push_str(&username);
            if !password.is_empty() {
                out.push(':');
                out.push_str(&password);
            }
            out.push('@');
        }
        let host_start = out.len();
        host.write(&mut out);
        let host_end = out.len();
        if let Some(p) = port {
            out.push(':');
            out.push_str(&p.to_string());
        }
        let path_start = out.len();
        write_path(path_raw, &mut out);
        let query_start = query_raw.map(|q| {
            let at = out.len();
            out.push('?');
            out.extend(utf8_percent_encode(q, SPECIAL_QUERY));
            at
        });
        let fragment_start = fragment_raw.map(|f| {
            let at = out.len();
            out.push('#');
            out.extend(utf8_percent_encode(f, FRAGMENT));
            at
        });
        Ok(HttpUrl {
            serialization: out,
            scheme_end: scheme.len(),
            host_start,
            host_end,
            path_start,
            query_start,
            fragment_start,
            credentials,
        })
    }

    /// The serialisation (what `url::Url` displays).
    pub fn as_str(&self) -> &str {
        &self.serialization
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &str {
        &self.serialization[..self.scheme_end]
    }

    /// The serialised host: a lower-case ASCII domain (IDNs in punycode), a dotted IPv4
    /// address or a bracketed IPv6 address. Never empty.
    pub fn host(&self) -> &str {
        &self.serialization[self.host_start..self.host_end]
    }

    /// True when the URL carries a non-empty username or password.
    pub fn has_credentials(&self) -> bool {
        self.credentials
    }

    /// The path, always starting with `/`.
    pub fn path(&self) -> &str {
        let end = self.query_start.or(self.fragment_start).unwrap_or(self.serialization.len());
        &self.serialization[self.path_start..end]
    }

    /// The query without its `?` (`Some("")` for a bare `?`).
    pub fn query(&self) -> Option<&str> {
        let start = self.query_start?;
        Some(&self.serialization[start + 1..self.fragment_start.unwrap_or(self.serialization.len())])
    }

    /// The fragment without its `#`.
    pub fn fragment(&self) -> Option<&str> {
        Some(&self.serialization[self.fragment_start? + 1..])
    }

    /// The ASCII serialisation of the URL's origin: `scheme://host[:port]`.
    pub fn origin(&self) -> String {
        format!("{}://{}", self.scheme(), &self.serialization[self.host_start..self.path_start])
    }

    /// The URL with its query replaced by `query` (percent-encoded as the parser would), the
    /// rest (fragment included) kept.
    pub fn with_query(&self, query: &str) -> String {
        let end = self.query_start.or(self.fragment_start).unwrap_or(self.serialization.len());
        let mut out = String::with_capacity(self.serialization.len() + query.len() + 1);
        out.push_str(&self.serialization[..end]);
        out.push('?');
        out.extend(utf8_percent_encode(query, SPECIAL_QUERY));
        if let Some(f) = self.fragment_start {
            out.push_str(&self.serialization[f..]);
        }
        out
    }
}

impl fmt::Display for HttpUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.serialization)
    }
}

impl From<HttpUrl> for String {
    fn from(u: HttpUrl) -> String {
        u.serialization
    }
}

/// Index of the `:` ending a scheme (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`), if `s`
/// starts with one.
fn scheme_end(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    if !b.first()?.is_ascii_alphabetic() {
        return None;
    }
    for (i, &c) in b.iter().enumerate().skip(1) {
        match c {
            b':' => return Some(i),
            c if c.is_ascii_alphanumeric() || matches!(c, b'+' | b'-' | b'.') => {}
            _ => return None,
        }
    }
    None
}

/// Splits `host[:port]` at the first `:` outside `[...]`.
fn split_port(s: &str) -> (&str, Option<&str>) {
    let mut in_brackets = false;
    for (i, c) in s.bytes().enumerate() {
        match c {
            b'[' => in_brackets = true,
            b']' => in_brackets = false,
            b':' if !in_brackets => return (&s[..i], Some(&s[i + 1..])),
            _ => {}
        }
    }
    (s, None)
}

/// ASCII digits up to 65535; the scheme's default port (and an empty port) is no port.
fn parse_port(p: &str, default: u16) -> Result<Option<u16>, ParseError> {
    let mut n: u32 = 0;
    for b in p.bytes() {
        if !b.is_ascii_digit() {
            return Err(ParseError::InvalidPort);
        }
        n = n * 10 + u32::from(b - b'0');
        if n > 65535 {
            return Err(ParseError::InvalidPort);
        }
    }
    Ok((!p.is_empty() && n != u32::from(default)).then_some(n as u16))
}

/// The path state of a special URL: segments split at `/` and `\`, `.` and `..` segments
/// (also as `%2e`) resolved, each segment percent-encoded.
fn write_path(raw: &str, out: &mut String) {
    let mut segments: Vec<String> = Vec::new();
    // The path starts after its first slash; an empty path is the single empty segment.
    let body = if raw.is_empty() { "" } else { &raw[1..] };
    let mut parts = body.split(['/', '\\']).peekable();
    while let Some(seg) = parts.next() {
        let last = parts.peek().is_none();
        if is_double_dot(seg) {
            segments.pop();
            if last {
                segments.push(String::new());
            }
        } else if is_single_dot(seg) {
            if last {
                segments.push(String::new());
            }
        } else {
            segments.push(utf8_percent_encode(seg, PATH).to_string());
        }
    }
    for seg in &segments {
        out.push('/');
        out.push_str(seg);
    }
}

fn is_single_dot(s: &str) -> bool {
    s == "." || s.eq_ignore_ascii_case("%2e")
}

fn is_double_dot(s: &str) -> bool {
    matches!(s.len(), 2 | 4 | 6) && {
        let l = s.to_ascii_lowercase();
        matches!(l.as_str(), ".." | ".%2e" | "%2e." | "%2e%2e")
    }
}

/// A parsed host.
enum Host {
    Domain(String),
    Ipv4(u32),
    Ipv6([u16; 8]),
}

impl Host {
    fn write(&self, out: &mut String) {
        match self {
            Host::Domain(d) => out.push_str(d),
            Host::Ipv4(a) => {
                let b = a.to_be_bytes();
                out.push_str(&format!("{}.{}.{}.{}", b[0], b[1], b[2], b[3]));
            }
            Host::Ipv6(pieces) => {
                out.push('[');
                write_ipv6(pieces, out);
                out.push(']');
            }
        }
    }
}

/// The host parser for special URLs: `[IPv6]`, else percent-decoded, domain-to-ASCII, then an
/// IPv4 address if the last label is a number.
fn parse_host(input: &str) -> Result<Host, ParseError> {
    if let Some(inner) = input.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(ParseError::InvalidIpv6Address)?;
        return parse_ipv6(inner.as_bytes()).map(Host::Ipv6);
    }
    let decoded: Vec<u8> = percent_decode(input.as_bytes()).collect();
    let domain = String::from_utf8(decoded).map_err(|_| ParseError::IdnaError)?;
    let domain = domain_to_ascii(&domain)?;
    if domain.is_empty() {
        return Err(ParseError::EmptyHost);
    }
    if ends_in_a_number(&domain) {
        return parse_ipv4(&domain).map(Host::Ipv4);
    }
    Ok(Host::Domain(domain))
}

/// A forbidden domain code point (ASCII), or a C0 control, space or DEL.
fn forbidden_in_domain(b: u8) -> bool {
    b <= b' ' || b == 0x7f || b"%#/:<>?@[\\]^|".contains(&b)
}

/// UTS 46 ToASCII as the URL Standard calls it (no hyphen or DNS-length checks, forbidden
/// domain code points refused). Plain ASCII labels are lower-cased here; a hostname with a
/// non-ASCII or `xn--` label goes through [`uts46_to_ascii`].
fn domain_to_ascii(domain: &str) -> Result<String, ParseError> {
    if domain.bytes().any(|b| b.is_ascii() && forbidden_in_domain(b)) {
        return Err(ParseError::IdnaError);
    }
    let plain = domain.is_ascii() && !domain.split('.').any(|l| l.len() >= 4 && l[..4].eq_ignore_ascii_case("xn--"));
    if plain {
        return Ok(domain.to_ascii_lowercase());
    }
    let ascii = uts46_to_ascii(domain).ok_or(ParseError::IdnaError)?;
    // The mapping may produce a forbidden code point (a full-width solidus, say).
    if !ascii.is_ascii() || ascii.bytes().any(forbidden_in_domain) {
        return Err(ParseError::IdnaError);
    }
    Ok(ascii)
}

/// UTS 46 ToASCII of a hostname free of ASCII forbidden code points, by the runtime's WHATWG
/// `URL` (workerd implements the URL Standard, IDNA included).
#[cfg(target_arch = "wasm32")]
fn uts46_to_ascii(domain: &str) -> Option<String> {
    uts46_checking_punycode(domain, |d| {
        // The domain has no `/ ? # @ : \ [ ]` or spaces, so it is the whole authority here.
        web_sys::Url::new(&format!("http://{d}/")).ok().map(|u| u.hostname())
    })
}

/// UTS 46 ToASCII by `to_ascii`, which may let ASCII `xn--` labels through unchecked (workerd
/// does). UTS 46 requires such a label to be the Punycode of a valid label in its mapped form
/// (what `idna` checks): ToASCII of its decoding must give the label back, and the domain's
/// Unicode form must pass as a whole (the bidi rule spans labels).
#[cfg(any(target_arch = "wasm32", test))]
fn uts46_checking_punycode(domain: &str, to_ascii: impl Fn(&str) -> Option<String>) -> Option<String> {
    let mut unicode = String::with_capacity(domain.len());
    let mut any_punycode = false;
    for (i, label) in domain.split('.').enumerate() {
        if i > 0 {
            unicode.push('.');
        }
        if !(label.is_ascii() && label.len() >= 4 && label[..4].eq_ignore_ascii_case("xn--")) {
            unicode.push_str(label);
            continue;
        }
        if label.len() - 4 > 2000 {
            return None; // idna's bound on Punycode's quadratic decoding
        }
        let decoded = punycode_decode(&label[4..])?;
        if to_ascii(&decoded)? != label.to_ascii_lowercase() {
            return None;
        }
        unicode.push_str(&decoded);
        any_punycode = true;
    }
    to_ascii(if any_punycode { &unicode } else { domain })
}

/// RFC 3492 Punycode decoding (the part of a label after `xn--`), as the `idna` crate decodes
/// (`None` where it fails). Written out here because `idna`'s decoder costs some 3 KB of gzip in
/// the wasm (a stable sort); the tests compare the two.
#[cfg(any(target_arch = "wasm32", test))]
fn punycode_decode(input: &str) -> Option<String> {
    const BASE: u32 = 36;
    const T_MIN: u32 = 1;
    const T_MAX: u32 = 26;
    fn adapt(delta: u32, num_points: u32, first: bool) -> u32 {
        let mut delta = delta / if first { 700 } else { 2 };
        delta += delta / num_points;
        let mut k = 0;
        while delta > ((BASE - T_MIN) * T_MAX) / 2 {
            delta /= BASE - T_MIN;
            k += BASE;
        }
        k + (BASE - T_MIN + 1) * delta / (delta + 38)
    }
    // Basic code points come before the last delimiter; `idna` reads a delimiter at the very
    // start as a digit (and fails).
    let (basic, encoded) = match input.rfind('-') {
        Some(0) => return None,
        Some(p) => (&input[..p], &input[p + 1..]),
        None => ("", input),
    };
    if !basic.is_ascii() {
        return None;
    }
    let mut out: Vec<char> = basic.chars().collect();
    let (mut n, mut i, mut bias) = (0x80u32, 0u32, 72u32);
    let mut bytes = encoded.bytes();
    while let Some(first) = bytes.next() {
        let (old_i, mut weight, mut k, mut b) = (i, 1u32, BASE, first);
        loop {
            let digit = u32::from(match b {
                b'a'..=b'z' => b - b'a',
                b'A'..=b'Z' => b - b'A',
                b'0'..=b'9' => b - b'0' + 26,
                _ => return None,
            });
            i = i.checked_add(digit.checked_mul(weight)?)?;
            let t = if k <= bias {
                T_MIN
            } else if k >= bias + T_MAX {
                T_MAX
            } else {
                k - bias
            };
            if digit < t {
                break;
            }
            weight = weight.checked_mul(BASE - t)?;
            k += BASE;
            b = bytes.next()?;
        }
        let len = out.len() as u32 + 1;
        bias = adapt(i - old_i, len, old_i == 0);
        n = n.checked_add(i / len)?;
        i %= len;
        out.insert(i as usize, char::from_u32(n)?);
        i += 1;
    }
    Some(out.into_iter().collect())
}

/// UTS 46 ToASCII of a hostname, natively: the `idna` crate, with the URL Standard's options.
#[cfg(not(target_arch = "wasm32"))]
fn uts46_to_ascii(domain: &str) -> Option<String> {
    idna::domain_to_ascii_cow(domain.as_bytes(), idna::AsciiDenyList::URL).ok().map(|d| d.into_owned())
}

/// True when the last label (ignoring one trailing dot) is a number, so the host must be IPv4.
fn ends_in_a_number(domain: &str) -> bool {
    let mut labels = domain.rsplit('.');
    let mut last = labels.next().unwrap_or("");
    if last.is_empty() {
        match labels.next() {
            Some(l) => last = l,
            None => return false,
        }
    }
    (!last.is_empty() && last.bytes().all(|b| b.is_ascii_digit())) || parse_ipv4_number(last).is_some()
}

/// The IPv4 number parser: decimal, `0x` hex or leading-zero octal. `Some(None)` is a valid
/// number too large for 32 bits.
fn parse_ipv4_number(s: &str) -> Option<Option<u32>> {
    if s.is_empty() {
        return None;
    }
    let (digits, radix) = if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (h, 16)
    } else if s.len() >= 2 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() {
        return Some(Some(0));
    }
    if !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    Some(u32::from_str_radix(digits, radix).ok())
}

/// The IPv4 parser: one to four numbers, the last filling the remaining bytes.
fn parse_ipv4(domain: &str) -> Result<u32, ParseError> {
    let bad = ParseError::InvalidIpv4Address;
    let domain = domain.strip_suffix('.').unwrap_or(domain);
    let parts: Vec<&str> = domain.split('.').collect();
    if parts.len() > 4 {
        return Err(bad);
    }
    let mut numbers = Vec::with_capacity(4);
    for p in &parts {
        numbers.push(parse_ipv4_number(p).flatten().ok_or(bad)?);
    }
    let last = numbers.pop().ok_or(bad)?;
    if numbers.iter().any(|&n| n > 255) || (!numbers.is_empty() && last >= 1 << (8 * (4 - numbers.len()))) {
        return Err(bad);
    }
    Ok(numbers.iter().enumerate().fold(last, |acc, (i, &n)| acc + (n << (8 * (3 - i)))))
}

/// The IPv6 parser (the text between the brackets).
fn parse_ipv6(input: &[u8]) -> Result<[u16; 8], ParseError> {
    let bad = Err(ParseError::InvalidIpv6Address);
    let mut address = [0u16; 8];
    let mut piece = 0usize;
    let mut compress: Option<usize> = None;
    let mut i = 0usize;
    let at = |i: usize| input.get(i).copied();
    if at(0) == Some(b':') {
        if at(1) != Some(b':') {
            return bad;
        }
        i = 2;
        piece = 1;
        compress = Some(1);
    }
    while i < input.len() {
        if piece == 8 {
            return bad;
        }
        if input[i] == b':' {
            if compress.is_some() {
                return bad;
            }
            i += 1;
            piece += 1;
            compress = Some(piece);
            continue;
        }
        let mut value: u32 = 0;
        let mut length = 0;
        while length < 4 {
            match at(i).and_then(|c| (c as char).to_digit(16)) {
                Some(d) => {
                    value = value * 16 + d;
                    i += 1;
                    length += 1;
                }
                None => break,
            }
        }
        match at(i) {
            Some(b'.') => {
                // An embedded IPv4 address fills the last two pieces.
                if length == 0 || piece > 6 {
                    return bad;
                }
                i -= length;
                let mut numbers_seen = 0;
                while i < input.len() {
                    if numbers_seen > 0 {
                        if input[i] == b'.' && numbers_seen < 4 {
                            i += 1;
                        } else {
                            return bad;
                        }
                    }
                    if !at(i).is_some_and(|c| c.is_ascii_digit()) {
                        return bad;
                    }
                    let mut part: Option<u32> = None;
                    while let Some(c) = at(i).filter(|c| c.is_ascii_digit()) {
                        let d = u32::from(c - b'0');
                        part = match part {
                            None => Some(d),
                            Some(0) => return bad,
                            Some(p) => Some(p * 10 + d),
                        };
                        if part > Some(255) {
                            return bad;
                        }
                        i += 1;
                    }
                    address[piece] = address[piece] * 0x100 + part.unwrap_or(0) as u16;
                    numbers_seen += 1;
                    if numbers_seen == 2 || numbers_seen == 4 {
                        piece += 1;
                    }
                }
                if numbers_seen != 4 {
                    return bad;
                }
                break;
            }
            Some(b':') => {
                i += 1;
                if i == input.len() {
                    return bad;
                }
            }
            Some(_) => return bad,
            None => {}
        }
        address[piece] = value as u16;
        piece += 1;
    }
    match compress {
        Some(c) => {
            let mut swaps = piece - c;
            piece = 7;
            while piece != 0 && swaps > 0 {
                address.swap(piece, c + swaps - 1);
                piece -= 1;
                swaps -= 1;
            }
        }
        None if piece != 8 => return bad,
        None => {}
    }
    Ok(address)
}

/// The IPv6 serializer: lower-case hex pieces, the first longest run of two or more zero
/// pieces written as `::`.
fn write_ipv6(pieces: &[u16; 8], out: &mut String) {
    let (mut best_start, mut best_len) = (8, 1);
    let mut i = 0;
    while i < 8 {
        let start = i;
        while i < 8 && pieces[i] == 0 {
            i += 1;
        }
        if i - start > best_len {
            (best_start, best_len) = (start, i - start);
        }
        i += 1;
    }
    let mut i = 0;
    while i < 8 {
        if i == best_start {
            out.push_str(if i == 0 { "::" } else { ":" });
            i += best_len;
            continue;
        }
        out.push_str(&format!("{:x}", pieces[i]));
        if i != 7 {
            out.push(':');
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ser(s: &str) -> String {
        HttpUrl::parse(s).map(String::from).unwrap_or_else(|e| format!("ERR {e}"))
    }

    /// What the `url` crate makes of `s`, in the same terms.
    fn reference(s: &str) -> Result<url::Url, String> {
        url::Url::parse(s).map_err(|e| e.to_string())
    }

    /// `HttpUrl` agrees with the `url` crate on `s`: same serialisation and components, or both
    /// refuse it (with the same reason, unless ours refuses it as another scheme).
    fn agrees(s: &str) -> Result<(), String> {
        let ours = HttpUrl::parse(s);
        let theirs = reference(s);
        match (&ours, &theirs) {
            (Ok(o), Ok(t)) => {
                let t_cred = !t.username().is_empty() || t.password().is_some();
                let same = o.as_str() == t.as_str()
                    && Some(o.host()) == t.host_str()
                    && o.scheme() == t.scheme()
                    && o.path() == t.path()
                    && o.query() == t.query()
                    && o.fragment() == t.fragment()
                    && o.has_credentials() == t_cred
                    && o.origin() == t.origin().ascii_serialization();
                if same {
                    Ok(())
                } else {
                    Err(format!("{s:?}: ours {o:?}, url {:?}", t.as_str()))
                }
            }
            (Err(ParseError::NotHttp), Ok(t)) if !matches!(t.scheme(), "http" | "https") => Ok(()),
            (Err(ParseError::NotHttp), Err(_)) => Ok(()),
            (Err(o), Err(t)) if o.to_string() == *t => Ok(()),
            _ => Err(format!("{s:?}: ours {:?}, url {:?}", ours, theirs.map(|u| u.to_string()))),
        }
    }

    #[test]
    fn dot_dot_after_a_drive_letter_like_segment() {
        // The URL Standard's path state pops `a|` for `..` in http(s) (only file: URLs keep a
        // drive letter); the url crate keeps it.
        assert_eq!(HttpUrl::parse("http://h/a|/..").map(|u| u.as_str().to_string()), Ok("http://h/".to_string()));
        assert_eq!(reference("http://h/a|/..").map(|u| u.to_string()), Ok("http://h/a|/".to_string()));
    }

    #[test]
    fn normalises_like_the_url_standard() {
        for (input, want) in [
            ("https://acme.com", "https://acme.com/"),
            ("HTTPS://ACME.com:443/a/./b/../c?x=1#f", "https://acme.com/a/c?x=1#f"),
            ("http://acme.com:80/", "http://acme.com/"),
            ("http://acme.com:443/", "http://acme.com:443/"),
            ("https://acme.com:0443/", "https://acme.com/"),
            ("https://acme.com:/", "https://acme.com/"),
            ("  https://acme.com/p\t\n?q  ", "https://acme.com/p?q"),
            ("https:acme.com", "https://acme.com/"),
            ("https:\\\\acme.com\\a\\b", "https://acme.com/a/b"),
            ("https:////acme.com//x", "https://acme.com//x"),
            (
                "https://acme.com/a b\"<>`{}?c d\"'<>`#e f\"<>`",
                "https://acme.com/a%20b%22%3C%3E%60%7B%7D?c%20d%22%27%3C%3E`#e%20f%22%3C%3E%60",
            ),
            ("https://acme.com/é?é#é", "https://acme.com/%C3%A9?%C3%A9#%C3%A9"),
            ("https://acme.com/%2e/x/%2E%2e/y/../z", "https://acme.com/z"),
            ("https://acme.com/a/..", "https://acme.com/"),
            ("https://acme.com/..", "https://acme.com/"),
            ("https://acme.com/?", "https://acme.com/?"),
            ("https://acme.com/#", "https://acme.com/#"),
            ("https://ac%6De.com/", "https://acme.com/"),
            ("https://u:p@acme.com/", "https://u:p@acme.com/"),
            ("https://u@acme.com/", "https://u@acme.com/"),
            ("https://:p@acme.com/", "https://:p@acme.com/"),
            ("https://u:@acme.com/", "https://u@acme.com/"),
            ("https://@acme.com/", "https://acme.com/"),
            ("https://a@b:c:d@acme.com/", "https://a%40b:c%3Ad@acme.com/"),
            ("http://127.1/", "http://127.0.0.1/"),
            ("http://0x7f.0.0.1/", "http://127.0.0.1/"),
            ("http://017700000001/", "http://127.0.0.1/"),
            ("http://4294967295/", "http://255.255.255.255/"),
            ("http://1.2.3.4./", "http://1.2.3.4/"),
            ("http://[::1]:8080/", "http://[::1]:8080/"),
            ("http://[0:0:0:0:0:0:0:1]/", "http://[::1]/"),
            ("http://[1:0:0:2:0:0:0:3]/", "http://[1:0:0:2::3]/"),
            ("http://[::ffff:192.168.0.1]/", "http://[::ffff:c0a8:1]/"),
            ("http://[1:2:3:4:5:6:7::]/", "http://[1:2:3:4:5:6:7:0]/"),
            ("http://[ABCD::]/", "http://[abcd::]/"),
            ("https://bücher.example/", "https://xn--bcher-kva.example/"),
            ("https://XN--BCHER-KVA.example/", "https://xn--bcher-kva.example/"),
            ("https://a..b./", "https://a..b./"),
        ] {
            assert_eq!(ser(input), want, "{input}");
            agrees(input).unwrap();
        }
    }

    #[test]
    fn refuses_what_the_url_standard_refuses() {
        for (input, want) in [
            ("", ParseError::RelativeUrlWithoutBase),
            ("/pricing", ParseError::RelativeUrlWithoutBase),
            ("acme.com/x", ParseError::RelativeUrlWithoutBase),
            ("1http://acme.com", ParseError::RelativeUrlWithoutBase),
            ("javascript:alert(1)", ParseError::NotHttp),
            ("ftp://acme.com/", ParseError::NotHttp),
            ("mailto:a@b.c", ParseError::NotHttp),
            ("https://", ParseError::EmptyHost),
            ("https://u@/x", ParseError::EmptyHost),
            ("https://:443/", ParseError::EmptyHost),
            ("https://acme.com:99999/", ParseError::InvalidPort),
            ("https://acme.com:8o/", ParseError::InvalidPort),
            ("https://ac me.com/", ParseError::IdnaError),
            ("https://acme.com%2F/", ParseError::IdnaError),
            ("https://a^b.com/", ParseError::IdnaError),
            ("https://%FF.com/", ParseError::IdnaError),
            ("https://xn--a.com/", ParseError::IdnaError),
            ("http://1.2.3.256/", ParseError::InvalidIpv4Address),
            ("http://1.2.3.4.5/", ParseError::InvalidIpv4Address),
            ("http://acme.09/", ParseError::InvalidIpv4Address),
            ("http://4294967296/", ParseError::InvalidIpv4Address),
            ("http://[::1/", ParseError::InvalidIpv6Address),
            ("http://[1::2::3]/", ParseError::InvalidIpv6Address),
            ("http://[:1]/", ParseError::InvalidIpv6Address),
            ("http://[1:2:3:4:5:6:7:8:9]/", ParseError::InvalidIpv6Address),
            ("http://[::1.2.3]/", ParseError::InvalidIpv6Address),
            ("http://[::01.2.3.4]/", ParseError::InvalidIpv6Address),
            ("http://[12345::]/", ParseError::InvalidIpv6Address),
        ] {
            assert_eq!(HttpUrl::parse(input), Err(want), "{input}");
            agrees(input).unwrap();
        }
    }

    #[test]
    fn components() {
        let u = HttpUrl::parse("HTTPS://u:p@Go.Acme.com:8443/a/b?x=1&y#frag").unwrap();
        assert_eq!(u.scheme(), "https");
        assert_eq!(u.host(), "go.acme.com");
        assert!(u.has_credentials());
        assert_eq!(u.path(), "/a/b");
        assert_eq!(u.query(), Some("x=1&y"));
        assert_eq!(u.fragment(), Some("frag"));
        assert_eq!(u.origin(), "https://go.acme.com:8443");
        assert_eq!(u.with_query("z=2"), "https://u:p@go.acme.com:8443/a/b?z=2#frag");
        let v = HttpUrl::parse("http://127.0.0.1:8787/api/v1/x").unwrap();
        assert_eq!((v.query(), v.fragment(), v.origin().as_str()), (None, None, "http://127.0.0.1:8787"));
        assert_eq!(v.with_query("a b"), "http://127.0.0.1:8787/api/v1/x?a%20b");
    }

    #[test]
    fn set_query_matches_url() {
        for (input, q) in [
            ("https://acme.com/p", "refport_id=clk_1"),
            ("https://acme.com/p?old#frag", "a=1&refport_id=clk_1"),
            ("https://acme.com/p#frag", "a b'\"<>"),
            ("https://acme.com/p?#", "é"),
        ] {
            let mut t = url::Url::parse(input).unwrap();
            t.set_query(Some(q));
            assert_eq!(HttpUrl::parse(input).unwrap().with_query(q), t.as_str(), "{input}");
        }
    }

    /// Domains with `xn--` labels, valid or not.
    fn punycode_domain() -> impl Strategy<Value = String> {
        let label = prop_oneof![
            4 => "[xX][nN]--[a-zA-Z0-9-]{0,10}",
            2 => "[a-zü中]{1,4}".prop_map(|l| format!("xn--{}", idna::punycode::encode_str(&l).unwrap_or_default())),
            2 => "[a-zA-Z0-9-]{1,6}",
            1 => "[üÜß中\u{200c}\u{3002}\u{ff0e}]{1,3}",
        ];
        prop::collection::vec(label, 1..4).prop_map(|ls| ls.join("."))
    }

    /// Pieces the generated URLs are made of: the interesting ones for each state of the parser.
    fn url_like() -> impl Strategy<Value = String> {
        let scheme = prop_oneof![
            8 => Just("http:"),
            8 => Just("https:"),
            2 => Just("HTTPS:"),
            1 => Just("hTtP:"),
            1 => Just("ftp:"),
            1 => Just("ws:"),
            1 => Just("javascript:"),
            1 => Just("h.t+t-p:"),
            1 => Just(""),
            1 => Just(" \u{1}https:"),
        ];
        let slashes = prop_oneof![
            12 => Just("//"),
            1 => Just(""),
            1 => Just("/"),
            1 => Just("\\\\"),
            1 => Just("///"),
            1 => Just("/\\"),
            1 => Just("/\t/"),
        ];
        let userinfo = prop_oneof![
            12 => Just(String::new()),
            2 => "[a-z:@%/é ]{0,6}@".prop_map(|s| s),
            1 => Just("@".to_string()),
            1 => Just(":@".to_string()),
        ];
        let label = prop_oneof![
            12 => "[a-zA-Z0-9-]{1,6}",
            2 => "[0-9]{1,4}",
            1 => "0[xX][0-9a-fA-F]{0,3}",
            1 => "0[0-9]{1,3}",
            2 => "xn--[a-z0-9-]{1,8}",
            1 => Just("xn--bcher-kva".to_string()),
            1 => "[a-zé%_~!$&'()*+,;=^|<>\"`{} ]{1,4}",
            1 => "%[0-9a-fA-F]{2}",
            2 => "[üößÅΣσ中文\u{200d}\u{ff0f}\u{3002}０-９]{1,3}",
            1 => Just(String::new()),
        ];
        let host = prop_oneof![
            12 => prop::collection::vec(label, 1..5).prop_map(|ls| ls.join(".")),
            1 => "\\[[0-9a-fA-F:.]{0,20}\\]",
            1 => "\\[::(ffff:)?[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\]",
        ];
        let port = prop_oneof![6 => Just(String::new()), 2 => ":[0-9]{0,6}", 1 => ":[0-9a-z]{1,3}"];
        let chars = "[a-zA-Z0-9/\\\\.%?#&=é \"'<>`{}|^\\[\\]@:;\u{0}\u{7f}\t]{0,16}";
        let tail = prop_oneof![
            1 => chars.prop_map(|s| s),
            6 => ("[/?#\\\\]", chars).prop_map(|(a, b)| a + &b),
            1 => Just(String::new()),
        ];
        (scheme, slashes, userinfo, host, port, tail).prop_map(|(s, sl, u, h, p, t)| format!("{s}{sl}{u}{h}{p}{t}"))
    }

    fn idna_to_ascii(d: &str) -> Option<String> {
        idna::domain_to_ascii_cow(d.as_bytes(), idna::AsciiDenyList::URL).ok().map(|d| d.into_owned())
    }

    /// The Worker's path: a runtime ToASCII that, like workerd, passes ASCII through unchecked,
    /// with the Punycode labels checked here, agrees with `idna`.
    fn agrees_through_lenient_runtime(domain: &str) -> Result<(), String> {
        if domain.bytes().any(|b| b.is_ascii() && forbidden_in_domain(b)) {
            return Ok(()); // refused before UTS 46
        }
        let lenient = |d: &str| if d.is_ascii() { Some(d.to_ascii_lowercase()) } else { idna_to_ascii(d) };
        let ours = uts46_checking_punycode(domain, lenient);
        let theirs = idna_to_ascii(domain);
        if ours == theirs {
            Ok(())
        } else {
            Err(format!("{domain:?}: ours {ours:?}, idna {theirs:?}"))
        }
    }

    #[test]
    fn punycode_labels_are_checked_when_the_runtime_does_not() {
        for d in [
            "xn--bcher-kva.example",
            "XN--BCHER-KVA.example",
            "xn--Bcher-kva.example",
            "xn--a.example",
            "xn--.example",
            "xn--abc-.example",
            "xn---abc.example",
            "xn--bcher-kva.xn--a",
            "bücher.xn--bcher-kva",
            "xn--zca.example",
            "xn--tda.example",
            "xn--1ug.example",
            "xn--nvg.xn--cjb",
            "xn--Nvg.xN--CJb",
            "xn--4db.xn--ghb",
        ] {
            agrees_through_lenient_runtime(d).unwrap();
        }
    }

    #[test]
    fn punycode_decoding() {
        for (input, want) in [
            ("bcher-kva", Some("bücher")),
            ("BCHER-KVA", Some("BüCHER")),
            ("", Some("")),
            ("abc-", Some("abc")),
            ("-abc", None),
            ("-", None),
            ("a", Some("\u{80}")),
            ("ihqwcrb4cv8a8dqg056pqjye", Some("他们为什么不说中文")),
            ("zzzzzzzzzzzzzzzzzzzzzzzz", None),
            ("b!", None),
        ] {
            assert_eq!(punycode_decode(input).as_deref(), want, "{input}");
            assert_eq!(punycode_decode(input), idna::punycode::decode_to_string(input), "{input}");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        #[test]
        fn punycode_decoding_agrees_with_idna(s in "[a-zA-Z0-9-]{0,12}|[a-z]{0,3}-[a-z0-9]{1,8}") {
            prop_assert_eq!(punycode_decode(&s), idna::punycode::decode_to_string(&s));
        }

        #[test]
        fn punycode_round_trips(s in "[a-z0-9üößÅΣσ中文\u{10000}-\u{10010}-]{0,12}") {
            let encoded = idna::punycode::encode_str(&s).unwrap();
            prop_assert_eq!(punycode_decode(&encoded), Some(s));
        }

        #[test]
        fn punycode_check_agrees_with_idna(d in punycode_domain()) {
            if let Err(e) = agrees_through_lenient_runtime(&d) {
                prop_assert!(false, "{}", e);
            }
        }

        #[test]
        fn agrees_with_the_url_crate(s in url_like()) {
            if let Err(e) = agrees(&s) {
                prop_assert!(false, "{}", e);
            }
        }

        #[test]
        fn agrees_with_the_url_crate_on_any_text(s in "(https?://)?[ -~éü\t\n]{0,24}") {
            // The url crate keeps a Windows drive letter segment (`a|`, `c:`) before `..` in any
            // scheme (a file-scheme rule); the URL Standard, the runtime and this parser do not:
            // see `dot_dot_after_a_drive_letter_like_segment`.
            let stripped: String = s.chars().filter(|c| !matches!(c, '\t' | '\n' | '\r')).collect();
            prop_assume!(!stripped.split(['/', '\\']).any(|g| g.len() == 2 && g.as_bytes()[0].is_ascii_alphabetic()
                && matches!(g.as_bytes()[1], b':' | b'|')));
            if let Err(e) = agrees(&s) {
                prop_assert!(false, "{}", e);
            }
        }

        #[test]
        fn parsing_is_idempotent(s in url_like()) {
            if let Ok(u) = HttpUrl::parse(&s) {
                let again = HttpUrl::parse(u.as_str());
                prop_assert_eq!(again, Ok(u));
            }
        }
    }
}
