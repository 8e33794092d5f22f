//! JUnit XML of a rule test suite, for CI systems (`tokenscan test --junit FILE`).

use std::fmt::Write as _;

use tokenscan_core::suite::{CaseResult, Suite};

/// Escapes text for XML attribute values and element content; control
/// characters XML 1.0 cannot carry literally become character references.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {
                let _ = write!(out, "&#x{:x};", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// One `<testsuite>` with one `<testcase>` per case (classname: the rule),
/// the first failure as the message and all of them as the text.
pub fn suite(suite: &Suite, results: &[CaseResult]) -> String {
    let failed = results.iter().filter(|r| !r.passed()).count();
    let mut x = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = write!(
        x,
        "<testsuites name=\"tokenscan\" tests=\"{}\" failures=\"{failed}\">\n  <testsuite name=\"{}\" tests=\"{}\" failures=\"{failed}\" file=\"{}\">\n",
        results.len(),
        esc(&suite.name),
        results.len(),
        esc(&suite.path.display().to_string())
    );
    for r in results {
        let _ = write!(
            x,
            "    <testcase classname=\"{}\" name=\"{}\" file=\"{}\">",
            esc(&r.rule),
            esc(&r.name),
            esc(&r.capture.display().to_string())
        );
        if let Some(first) = r.failures.first() {
            let _ = write!(
                x,
                "\n      <failure message=\"{}\">{}</failure>\n    ",
                esc(first),
                esc(&r.failures.join("\n"))
            );
        }
        x.push_str("</testcase>\n");
    }
    x.push_str("  </testsuite>\n</testsuites>\n");
    x
}

#[cfg(test)]
mod tests {
    #[test]
    fn markup_and_control_characters_are_escaped() {
        // XML 1.0 section 2.4 (the five predefined entities) and 2.2 (the Char production:
        // no C0 controls other than tab, line feed and carriage return).
        assert_eq!(super::esc("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;");
        assert_eq!(super::esc("x\u{1}y\tz\n"), "x&#x1;y\tz\n");
    }
}
