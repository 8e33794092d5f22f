//! Python bindings for tokenscan (under construction in issue 4).
