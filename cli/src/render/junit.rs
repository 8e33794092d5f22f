//! JUnit XML of a rule test suite, for CI systems (`tokenscan test --junit FILE`).

use std::fmt::Write as _;

use tokenscan_core::display::escape_markup as esc;
use tokenscan_core::suite::{CaseResult, Suite};

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
