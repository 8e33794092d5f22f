//! Elastic Common Schema documents (Defend for Containers) to capture rows.
//!
//! A document may write a field nested (`{"process":{"parent":{"pid":1}}}`),
//! dotted (`{"process.parent.pid":1}`) or any mix of the two
//! (`{"process":{"parent.pid":1}}`), and may be wrapped in a search hit
//! (`{"_index":...,"_source":{...}}`). The document is walked once, without
//! building a tree: each key is resolved segment by segment against the
//! small set of fields an import needs, and everything else is skipped
//! unparsed.

use std::borrow::Cow;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::{escape_text, json_error, meta_text, ContainerMeta, Mapped, Row, RowFacts, Skip};
use crate::capture::EventKind;

/// The ECS fields an import reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
enum F {
    Timestamp,
    Category,
    Action,
    Type,
    Outcome,
    HostName,
    ContainerId,
    Pid,
    ThreadId,
    ParentPid,
    Name,
    Executable,
    Args,
    Interactive,
    TtyMajor,
    TtyMinor,
    UserId,
    ProcessUserId,
    GroupId,
    ProcessGroupId,
    FilePath,
    Start,
    WorkingDirectory,
    ContainerName,
    ImageName,
    ImageTag,
    Privileged,
    OrchNamespace,
    OrchResourceName,
    OrchResourceType,
    ParentName,
    ParentExecutable,
    ParentArgs,
    ParentStart,
    ParentInteractive,
    ParentWorkingDirectory,
    SessionPid,
    SessionName,
    SessionExecutable,
    SessionArgs,
    SessionStart,
    SessionInteractive,
    SessionWorkingDirectory,
    GroupPid,
    GroupName,
    GroupExecutable,
    GroupArgs,
    GroupStart,
    GroupInteractive,
    GroupWorkingDirectory,
    EntryPid,
    EntryName,
    EntryExecutable,
    EntryArgs,
    EntryStart,
    EntryInteractive,
    EntryWorkingDirectory,
    EntrySameAsProcess,
}

const FIELDS: usize = F::EntrySameAsProcess as usize + 1;

/// The fields of a process an event names besides its own (`process.parent`
/// and the three leaders), as far as a capture row can hold them.
struct RelativeFields {
    /// The ECS names of the fields below, in their order, e.g.
    /// `process.session_leader.pid`.
    names: [&'static str; 7],
    pid: F,
    process_name: F,
    executable: F,
    args: F,
    start: F,
    interactive: F,
    working_directory: F,
}

const PARENT: RelativeFields = RelativeFields {
    names: [
        "process.parent.pid",
        "process.parent.name",
        "process.parent.executable",
        "process.parent.args",
        "process.parent.start",
        "process.parent.interactive",
        "process.parent.working_directory",
    ],
    pid: F::ParentPid,
    process_name: F::ParentName,
    executable: F::ParentExecutable,
    args: F::ParentArgs,
    start: F::ParentStart,
    interactive: F::ParentInteractive,
    working_directory: F::ParentWorkingDirectory,
};

const SESSION_LEADER: RelativeFields = RelativeFields {
    names: [
        "process.session_leader.pid",
        "process.session_leader.name",
        "process.session_leader.executable",
        "process.session_leader.args",
        "process.session_leader.start",
        "process.session_leader.interactive",
        "process.session_leader.working_directory",
    ],
    pid: F::SessionPid,
    process_name: F::SessionName,
    executable: F::SessionExecutable,
    args: F::SessionArgs,
    start: F::SessionStart,
    interactive: F::SessionInteractive,
    working_directory: F::SessionWorkingDirectory,
};

const GROUP_LEADER: RelativeFields = RelativeFields {
    names: [
        "process.group_leader.pid",
        "process.group_leader.name",
        "process.group_leader.executable",
        "process.group_leader.args",
        "process.group_leader.start",
        "process.group_leader.interactive",
        "process.group_leader.working_directory",
    ],
    pid: F::GroupPid,
    process_name: F::GroupName,
    executable: F::GroupExecutable,
    args: F::GroupArgs,
    start: F::GroupStart,
    interactive: F::GroupInteractive,
    working_directory: F::GroupWorkingDirectory,
};

const ENTRY_LEADER: RelativeFields = RelativeFields {
    names: [
        "process.entry_leader.pid",
        "process.entry_leader.name",
        "process.entry_leader.executable",
        "process.entry_leader.args",
        "process.entry_leader.start",
        "process.entry_leader.interactive",
        "process.entry_leader.working_directory",
    ],
    pid: F::EntryPid,
    process_name: F::EntryName,
    executable: F::EntryExecutable,
    args: F::EntryArgs,
    start: F::EntryStart,
    interactive: F::EntryInteractive,
    working_directory: F::EntryWorkingDirectory,
};

impl RelativeFields {
    /// The field below this object named `seg`.
    fn field(&self, seg: &str) -> Step {
        Step::Field(match seg {
            "pid" => self.pid,
            "name" => self.process_name,
            "executable" => self.executable,
            "args" => self.args,
            "start" => self.start,
            "interactive" => self.interactive,
            "working_directory" => self.working_directory,
            _ => return Step::Skip,
        })
    }
}

/// Objects on the way to those fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Node {
    Root,
    Event,
    Host,
    Container,
    Process,
    Thread,
    Parent,
    Tty,
    CharDevice,
    ProcessUser,
    ProcessGroup,
    User,
    Group,
    File,
    Orchestrator,
    Resource,
    ContainerImage,
    SecurityContext,
    SessionLeader,
    GroupLeader,
    EntryLeader,
}

enum Step {
    Node(Node),
    Field(F),
    Skip,
}

fn step(node: Node, seg: &str) -> Step {
    use Node as N;
    use Step::{Field as Fd, Node as Nd};
    match (node, seg) {
        (N::Root, "@timestamp") => Fd(F::Timestamp),
        (N::Root, "_source") => Nd(N::Root),
        (N::Root, "event") => Nd(N::Event),
        (N::Root, "host") => Nd(N::Host),
        (N::Root, "container") => Nd(N::Container),
        (N::Root, "process") => Nd(N::Process),
        (N::Root, "user") => Nd(N::User),
        (N::Root, "group") => Nd(N::Group),
        (N::Root, "file") => Nd(N::File),
        (N::Event, "category") => Fd(F::Category),
        (N::Event, "action") => Fd(F::Action),
        (N::Event, "type") => Fd(F::Type),
        (N::Event, "outcome") => Fd(F::Outcome),
        (N::Host, "name") => Fd(F::HostName),
        (N::Root, "orchestrator") => Nd(N::Orchestrator),
        (N::Orchestrator, "namespace") => Fd(F::OrchNamespace),
        (N::Orchestrator, "resource") => Nd(N::Resource),
        (N::Resource, "name") => Fd(F::OrchResourceName),
        (N::Resource, "type") => Fd(F::OrchResourceType),
        (N::Container, "id") => Fd(F::ContainerId),
        (N::Container, "name") => Fd(F::ContainerName),
        (N::Container, "image") => Nd(N::ContainerImage),
        (N::ContainerImage, "name") => Fd(F::ImageName),
        (N::ContainerImage, "tag") => Fd(F::ImageTag),
        (N::Container, "security_context") => Nd(N::SecurityContext),
        (N::SecurityContext, "privileged") => Fd(F::Privileged),
        (N::Process, "start") => Fd(F::Start),
        (N::Process, "working_directory") => Fd(F::WorkingDirectory),
        (N::Process, "session_leader") => Nd(N::SessionLeader),
        (N::Process, "group_leader") => Nd(N::GroupLeader),
        (N::Process, "entry_leader") => Nd(N::EntryLeader),
        (N::Process, "pid") => Fd(F::Pid),
        (N::Process, "name") => Fd(F::Name),
        (N::Process, "executable") => Fd(F::Executable),
        (N::Process, "args") => Fd(F::Args),
        (N::Process, "interactive") => Fd(F::Interactive),
        (N::Process, "thread") => Nd(N::Thread),
        (N::Process, "parent") => Nd(N::Parent),
        (N::Process, "tty") => Nd(N::Tty),
        (N::Process, "user") => Nd(N::ProcessUser),
        (N::Process, "group") => Nd(N::ProcessGroup),
        (N::Thread, "id") => Fd(F::ThreadId),
        (N::Parent, seg) => PARENT.field(seg),
        (N::SessionLeader, seg) => SESSION_LEADER.field(seg),
        (N::GroupLeader, seg) => GROUP_LEADER.field(seg),
        (N::EntryLeader, "same_as_process") => Fd(F::EntrySameAsProcess),
        (N::EntryLeader, seg) => ENTRY_LEADER.field(seg),
        (N::Tty, "char_device") => Nd(N::CharDevice),
        (N::CharDevice, "major") => Fd(F::TtyMajor),
        (N::CharDevice, "minor") => Fd(F::TtyMinor),
        (N::ProcessUser, "id") => Fd(F::ProcessUserId),
        (N::ProcessGroup, "id") => Fd(F::ProcessGroupId),
        (N::User, "id") => Fd(F::UserId),
        (N::Group, "id") => Fd(F::GroupId),
        (N::File, "path") => Fd(F::FilePath),
        _ => Step::Skip,
    }
}

/// Where a (possibly dotted) key leads from `node`.
fn resolve(node: Node, key: &str) -> Step {
    let mut at = node;
    let mut segs = key.split('.').peekable();
    while let Some(seg) = segs.next() {
        let last = segs.peek().is_none();
        match step(at, seg) {
            Step::Node(n) if last => return Step::Node(n),
            Step::Node(n) => at = n,
            Step::Field(f) if last => return Step::Field(f),
            _ => return Step::Skip,
        }
    }
    Step::Skip
}

/// A JSON value of a wanted field, strings borrowed from the line.
#[derive(Debug, Clone, PartialEq)]
enum Val<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Float(f64),
    Str(Cow<'a, str>),
    List(Vec<Val<'a>>),
    Object,
}

impl<'de> Deserialize<'de> for Val<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Val<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, v: bool) -> Result<Val<'de>, E> {
                Ok(Val::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Val<'de>, E> {
                Ok(Val::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Val<'de>, E> {
                Ok(Val::UInt(v))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Val<'de>, E> {
                Ok(Val::Float(v))
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Val<'de>, E> {
                Ok(Val::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Val<'de>, E> {
                Ok(Val::Str(Cow::Owned(v.to_string())))
            }
            fn visit_string<E>(self, v: String) -> Result<Val<'de>, E> {
                Ok(Val::Str(Cow::Owned(v)))
            }
            fn visit_unit<E>(self) -> Result<Val<'de>, E> {
                Ok(Val::Null)
            }
            fn visit_none<E>(self) -> Result<Val<'de>, E> {
                Ok(Val::Null)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Val<'de>, D::Error> {
                Val::deserialize(d)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Val<'de>, A::Error> {
                let mut items = Vec::new();
                while let Some(v) = seq.next_element::<Val<'de>>()? {
                    items.push(v);
                }
                Ok(Val::List(items))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Val<'de>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Val::Object)
            }
        }
        d.deserialize_any(V)
    }
}

/// A key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a key")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// The wanted fields of one document.
struct Doc<'a> {
    vals: [Option<Val<'a>>; FIELDS],
    root_is_object: bool,
}

impl<'a> Doc<'a> {
    fn get(&self, f: F) -> Option<&Val<'a>> {
        self.vals[f as usize].as_ref().filter(|v| !matches!(v, Val::Null))
    }
    fn take(&mut self, f: F) -> Option<Val<'a>> {
        self.vals[f as usize].take().filter(|v| !matches!(v, Val::Null))
    }
}

/// Walks an object below `node`, storing wanted fields in `doc`.
struct Walk<'d, 'a> {
    node: Node,
    doc: &'d mut Doc<'a>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an ECS document")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.node == Node::Root {
            self.doc.root_is_object = true;
        }
        while let Some(Key(k)) = map.next_key::<Key<'de>>()? {
            match resolve(self.node, &k) {
                Step::Field(f) => {
                    let v = map.next_value::<Val<'de>>()?;
                    self.doc.vals[f as usize] = Some(v);
                }
                Step::Node(n) => map.next_value_seed(Walk { node: n, doc: &mut *self.doc })?,
                Step::Skip => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(())
    }
    // A non-object where an object was expected carries nothing wanted.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }
}

fn describe(v: &Val<'_>) -> String {
    match v {
        Val::Null => "null".into(),
        Val::Bool(b) => b.to_string(),
        Val::Int(i) => i.to_string(),
        Val::UInt(u) => u.to_string(),
        Val::Float(f) => f.to_string(),
        Val::Str(s) if s.len() > 60 => format!("{:?}...", &s[..s.char_indices().nth(57).map_or(s.len(), |(i, _)| i)]),
        Val::Str(s) => format!("{s:?}"),
        Val::List(_) => "an array".into(),
        Val::Object => "an object".into(),
    }
}

/// Whether a keyword field (a string or an array) has a string for which `f` holds.
fn any_string(v: &Val<'_>, f: impl Fn(&str) -> bool) -> bool {
    match v {
        Val::Str(s) => f(s),
        Val::List(items) => items.iter().any(|i| matches!(i, Val::Str(s) if f(s))),
        _ => false,
    }
}

/// The strings of a keyword field (a string or an array of strings).
fn strings<'v, 'a>(v: &'v Val<'a>) -> Vec<&'v str> {
    match v {
        Val::Str(s) => vec![s.as_ref()],
        Val::List(items) => items
            .iter()
            .filter_map(|i| match i {
                Val::Str(s) => Some(s.as_ref()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn text<'a>(doc: &mut Doc<'a>, f: F, name: &str) -> Result<Option<Cow<'a, str>>, Skip> {
    match doc.take(f) {
        None => Ok(None),
        Some(Val::Str(s)) => Ok(Some(s)),
        // Elasticsearch accepts numbers for keyword fields; keep them as written.
        Some(Val::Int(i)) => Ok(Some(Cow::Owned(i.to_string()))),
        Some(Val::UInt(u)) => Ok(Some(Cow::Owned(u.to_string()))),
        Some(Val::List(items)) if items.len() == 1 => match items.into_iter().next() {
            Some(Val::Str(s)) => Ok(Some(s)),
            Some(other) => Err(Skip::bad(format!("`{name}` is [{}]; expected a string", describe(&other)))),
            None => Ok(None),
        },
        Some(other) => Err(Skip::bad(format!("`{name}` is {}; expected a string", describe(&other)))),
    }
}

fn number<T: TryFrom<i64> + TryFrom<u64> + std::str::FromStr>(
    doc: &Doc<'_>,
    f: F,
    name: &str,
) -> Result<Option<T>, Skip> {
    let bad =
        |v: &Val<'_>| Skip::bad(format!("`{name}` is {}; expected a number from 0 to {}", describe(v), max::<T>()));
    let Some(v) = doc.get(f) else { return Ok(None) };
    let one = match v {
        Val::List(items) if items.len() == 1 => &items[0],
        v => v,
    };
    match one {
        Val::Int(i) => T::try_from(*i).map(Some).map_err(|_| bad(v)),
        Val::UInt(u) => T::try_from(*u).map(Some).map_err(|_| bad(v)),
        Val::Str(s) => s.trim().parse::<T>().map(Some).map_err(|_| bad(v)),
        _ => Err(bad(v)),
    }
}

fn max<T>() -> &'static str {
    if std::mem::size_of::<T>() == 4 {
        "4294967295"
    } else {
        "18446744073709551615"
    }
}

fn flag(doc: &Doc<'_>, f: F) -> Option<bool> {
    let v = doc.get(f)?;
    let one = match v {
        Val::List(items) if items.len() == 1 => &items[0],
        v => v,
    };
    match one {
        Val::Bool(b) => Some(*b),
        Val::Str(s) if s == "true" => Some(true),
        Val::Str(s) if s == "false" => Some(false),
        _ => None,
    }
}

/// Parses a date field (`@timestamp`, `process.start`, ...): RFC 3339 (any
/// precision, any offset), a date-time without an offset (UTC, as
/// Elasticsearch assumes), or epoch milliseconds. `name` names it in errors.
fn parse_date(v: &Val<'_>, name: &str) -> Result<i64, String> {
    match v {
        Val::Str(s) => {
            if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
                return t.timestamp_nanos_opt().ok_or_else(|| format!("`{name}` {} is out of range", describe(v)));
            }
            for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
                if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
                    return t
                        .and_utc()
                        .timestamp_nanos_opt()
                        .ok_or_else(|| format!("`{name}` {} is out of range", describe(v)));
                }
            }
            Err(format!("`{name}` {} is not an RFC 3339 date", describe(v)))
        }
        Val::Int(ms) => ms.checked_mul(1_000_000).ok_or_else(|| format!("`{name}` {ms} is out of range")),
        Val::UInt(ms) => i64::try_from(*ms)
            .ok()
            .and_then(|m| m.checked_mul(1_000_000))
            .ok_or_else(|| format!("`{name}` {ms} is out of range")),
        other => Err(format!("`{name}` is {}; expected an RFC 3339 date", describe(other))),
    }
}

/// The terminal name for a character device (Linux numbering): 136..143 are
/// the Unix98 pseudo-terminals (`pts/N`), 4 the virtual consoles and serial
/// ports, 5 `/dev/tty` and the console; anything else is written `MAJOR:MINOR`.
pub fn tty_from_device(major: u32, minor: u32) -> String {
    match (major, minor) {
        (136..=143, m) => format!("pts/{}", (major - 136) * 256 + m),
        (4, m) if m < 64 => format!("tty{m}"),
        (4, m) if m < 256 => format!("ttyS{}", m - 64),
        (5, 0) => "tty".into(),
        (5, 1) => "console".into(),
        (5, 2) => "ptmx".into(),
        (a, b) => format!("{a}:{b}"),
    }
}

/// The character device of a terminal name, the inverse of [`tty_from_device`];
/// `None` for a name it cannot encode (such as the placeholder `?`).
pub fn tty_to_device(name: &str) -> Option<(u32, u32)> {
    let num = |s: &str| -> Option<u32> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0')))
            .then(|| s.parse().ok())
            .flatten()
    };
    if let Some(n) = name.strip_prefix("pts/").and_then(num) {
        return (n < 8 * 256).then_some((136 + n / 256, n % 256));
    }
    if let Some(n) = name.strip_prefix("ttyS").and_then(num) {
        return (n < 192).then_some((4, n + 64));
    }
    if let Some(n) = name.strip_prefix("tty").and_then(num) {
        return (n < 64).then_some((4, n));
    }
    match name {
        "tty" => return Some((5, 0)),
        "console" => return Some((5, 1)),
        "ptmx" => return Some((5, 2)),
        _ => {}
    }
    let (a, b) = name.split_once(':')?;
    let (a, b) = (num(a)?, num(b)?);
    // Only numbers the names above do not cover, so that the mapping stays one-to-one.
    (tty_from_device(a, b) == name).then_some((a, b))
}

/// The placeholder `tty` for an interactive process whose terminal is not known.
pub const UNKNOWN_TTY: &str = "?";

/// Maps one line. Errors say why the line cannot become a row.
pub(crate) fn map_line(line: &str) -> Result<Mapped<'_>, Skip> {
    let mut doc = Doc { vals: std::array::from_fn(|_| None), root_is_object: false };
    let mut de = serde_json::Deserializer::from_str(line);
    let parsed = Walk { node: Node::Root, doc: &mut doc }.deserialize(&mut de).and_then(|()| de.end());
    if let Err(e) = parsed {
        return Err(Skip::new("invalid JSON", format!("invalid JSON: {}", json_error(&e))));
    }
    if !doc.root_is_object {
        return Err(Skip::bad("not a JSON object: not an ECS document"));
    }
    let has = |f: F, want: &str| doc.get(f).is_some_and(|v| any_string(v, |s| s == want));
    let (file, process) = (has(F::Category, "file"), has(F::Category, "process"));
    let no_category = doc.get(F::Category).is_none_or(|v| !any_string(v, |_| true));
    let outcome = |want: &str| doc.get(F::Outcome).is_some_and(|v| any_string(v, |s| s == want));
    let result = if outcome("failure") {
        Some(-1)
    } else if outcome("unknown") {
        None
    } else {
        Some(0)
    };
    let (change, access) = (has(F::Type, "change"), has(F::Type, "access"));
    let action = text(&mut doc, F::Action, "event.action")?;
    let kind = match (no_category, action.as_deref()) {
        (true, _) => return Err(Skip::bad("no `event.category`: not an ECS event")),
        (false, None) => return Err(Skip::bad("no `event.action`: not an ECS event")),
        (false, Some("open")) if file => EventKind::Open,
        (false, Some("exec")) if process => EventKind::Exec,
        (false, Some(a)) => {
            let categories = doc.get(F::Category).map(strings).unwrap_or_default();
            let what = format!("{}/{a}", categories.join(","));
            return Err(Skip::new(
                format!("event {what}"),
                format!("event {what} has no capture row (only file/open and process/exec do)"),
            ));
        }
    };
    let time = match doc.get(F::Timestamp) {
        Some(v) => parse_date(v, "@timestamp").map_err(Skip::bad)?,
        None => return Err(Skip::bad("no `@timestamp`")),
    };
    let pid: u32 = number(&doc, F::Pid, "process.pid")?.ok_or_else(|| Skip::bad("no `process.pid`"))?;
    let tid: u32 = number(&doc, F::ThreadId, "process.thread.id")?.unwrap_or(pid);
    let ppid: u32 = number(&doc, F::ParentPid, "process.parent.pid")?.unwrap_or(0);
    let uid: u32 = match number(&doc, F::UserId, "user.id")? {
        Some(u) => u,
        None => number(&doc, F::ProcessUserId, "process.user.id")?.unwrap_or(0),
    };
    let gid: u32 = match number(&doc, F::GroupId, "group.id")? {
        Some(g) => g,
        None => number(&doc, F::ProcessGroupId, "process.group.id")?.unwrap_or(0),
    };
    let major: Option<u32> = number(&doc, F::TtyMajor, "process.tty.char_device.major")?;
    let minor: Option<u32> = number(&doc, F::TtyMinor, "process.tty.char_device.minor")?;
    let device = major.map(|ma| tty_from_device(ma, minor.unwrap_or(0)));
    let tty = match flag(&doc, F::Interactive) {
        Some(false) => None,
        Some(true) => Some(Cow::Owned(device.unwrap_or_else(|| UNKNOWN_TTY.to_string()))),
        None => device.map(Cow::Owned),
    };
    // Elasticsearch evaluates a rule on a document without `host.name` too, so
    // the event is kept, with an empty host, and counted in the report's notes.
    let host = text(&mut doc, F::HostName, "host.name")?;
    let mut facts = RowFacts { missing_host: host.is_none(), ..RowFacts::default() };
    let host = host.unwrap_or(Cow::Borrowed(""));
    let comm = text(&mut doc, F::Name, "process.name")?.ok_or_else(|| Skip::bad("no `process.name`"))?;
    let exe = text(&mut doc, F::Executable, "process.executable")?.map(escape_text);
    let container_id = text(&mut doc, F::ContainerId, "container.id")?;
    let start = date(&doc, F::Start, "process.start")?;
    let cwd =
        text(&mut doc, F::WorkingDirectory, "process.working_directory")?.filter(|c| !c.is_empty()).map(escape_text);
    let parent = relative(&mut doc, &PARENT, &mut facts)?;
    let session = relative(&mut doc, &SESSION_LEADER, &mut facts)?;
    let group = relative(&mut doc, &GROUP_LEADER, &mut facts)?;
    let entry = relative(&mut doc, &ENTRY_LEADER, &mut facts)?;
    let container = match container_id {
        Some(_) => Some(container_meta(&mut doc, &mut facts)?),
        None => None,
    };
    let mut row = Row {
        time,
        kind,
        host,
        pid,
        tid,
        ppid,
        uid,
        gid,
        comm: escape_text(comm),
        exe,
        args: None,
        path: None,
        requested_path: None,
        flags: None,
        result,
        tty,
        // ECS has no cgroup id.
        cgroup_id: 0,
        container_id,
        sid: session.as_ref().map(|l| l.pid),
        pgid: group.as_ref().map(|l| l.pid),
        start,
        parent_start: parent.as_ref().and_then(|p| p.start),
        cwd,
        // D4C has no notion of a container that has not started.
        container_started: None,
    };
    match kind {
        EventKind::Open => {
            row.path = text(&mut doc, F::FilePath, "file.path")?.map(escape_text);
            // D4C logs opens with write intent as `change`; tokenscan's view labels the others `access`.
            row.flags = if change {
                Some(1)
            } else if access {
                Some(0)
            } else {
                None
            };
        }
        EventKind::Exec => {
            row.path = row.exe.clone();
            row.args = string_list(&mut doc, F::Args, "process.args")?;
        }
        // Only opens and execs are mapped (see the `kind` match above).
        EventKind::Fork
        | EventKind::Exit
        | EventKind::Process
        | EventKind::Container
        | EventKind::K8sAudit
        | EventKind::File(_) => {
            unreachable!("the ECS mapper makes opens and execs only")
        }
    }
    let own_entry = boolean(&doc, F::EntrySameAsProcess, "process.entry_leader.same_as_process")? == Some(true);
    let processes = relatives_rows(&row, own_entry, [parent, session, group, entry]);
    let container = container.filter(|m| !m.is_empty());
    Ok(Mapped { row, facts, container, processes, audit: None })
}

/// A date field; `None` when absent.
fn date(doc: &Doc<'_>, f: F, name: &str) -> Result<Option<i64>, Skip> {
    doc.get(f).map(|v| parse_date(v, name)).transpose().map_err(Skip::bad)
}

/// A boolean field: `true`/`false`, as a string too (Elasticsearch accepts
/// both), or a one-element array of one; `None` when absent.
fn boolean(doc: &Doc<'_>, f: F, name: &str) -> Result<Option<bool>, Skip> {
    let Some(v) = doc.get(f) else { return Ok(None) };
    flag(doc, f).map(Some).ok_or_else(|| Skip::bad(format!("`{name}` is {}; expected true or false", describe(v))))
}

/// An array of strings (`process.args`); a single string is one element.
fn string_list<'a>(doc: &mut Doc<'a>, f: F, name: &str) -> Result<Option<Vec<Option<Cow<'a, str>>>>, Skip> {
    Ok(match doc.take(f) {
        None => None,
        Some(Val::Str(s)) => Some(vec![Some(escape_text(s))]),
        Some(Val::List(items)) => Some(
            items
                .into_iter()
                .map(|i| match i {
                    Val::Str(s) => Ok(Some(escape_text(s))),
                    Val::Null => Ok(None),
                    other => Err(Skip::bad(format!("`{name}` holds {}; expected strings", describe(&other)))),
                })
                .collect::<Result<_, _>>()?,
        ),
        Some(other) => {
            return Err(Skip::bad(format!("`{name}` is {}; expected an array of strings", describe(&other))))
        }
    })
}

/// What a document says about a process other than its own: the parent or a leader.
#[derive(Debug, Clone, PartialEq)]
struct Relative<'a> {
    pid: u32,
    name: Option<Cow<'a, str>>,
    executable: Option<Cow<'a, str>>,
    args: Option<Vec<Option<Cow<'a, str>>>>,
    start: Option<i64>,
    interactive: Option<bool>,
    working_directory: Option<Cow<'a, str>>,
    /// Which of the event's relatives it is (one process may be several).
    session_leader: bool,
    group_leader: bool,
    entry_leader: bool,
}

/// The parent or leader `r` of the document; `None` without its pid.
fn relative<'a>(doc: &mut Doc<'a>, r: &RelativeFields, facts: &mut RowFacts) -> Result<Option<Relative<'a>>, Skip> {
    let [pid_n, name_n, exe_n, args_n, start_n, interactive_n, cwd_n] = r.names;
    let Some(pid) = number::<u32>(doc, r.pid, pid_n)? else { return Ok(None) };
    let name = meta_text(text(doc, r.process_name, name_n)?, facts).map(escape_text);
    let executable = text(doc, r.executable, exe_n)?.filter(|s| !s.is_empty()).map(escape_text);
    let args = string_list(doc, r.args, args_n)?;
    let start = date(doc, r.start, start_n)?;
    let interactive = boolean(doc, r.interactive, interactive_n)?;
    let working_directory = text(doc, r.working_directory, cwd_n)?.filter(|s| !s.is_empty()).map(escape_text);
    Ok(Some(Relative {
        pid,
        name,
        executable,
        args,
        start,
        interactive,
        working_directory,
        session_leader: r.pid == F::SessionPid,
        group_leader: r.pid == F::GroupPid,
        entry_leader: r.pid == F::EntryPid,
    }))
}

/// The `container` row values of a document in a container.
fn container_meta<'a>(doc: &mut Doc<'a>, facts: &mut RowFacts) -> Result<ContainerMeta<'a>, Skip> {
    let resource_type = text(doc, F::OrchResourceType, "orchestrator.resource.type")?;
    let resource_name = text(doc, F::OrchResourceName, "orchestrator.resource.name")?;
    // `orchestrator.resource` names a pod in D4C documents; another kind of resource is not a pod.
    let pod_name = resource_name.filter(|_| resource_type.as_deref().is_none_or(|t| t == "pod"));
    Ok(ContainerMeta {
        pod_name: meta_text(pod_name, facts),
        pod_namespace: meta_text(text(doc, F::OrchNamespace, "orchestrator.namespace")?, facts),
        // D4C documents carry no pod uid, and the image only as name and tag.
        pod_uid: None,
        container_name: meta_text(text(doc, F::ContainerName, "container.name")?, facts),
        image: None,
        image_name: meta_text(text(doc, F::ImageName, "container.image.name")?, facts),
        image_tag: meta_text(text(doc, F::ImageTag, "container.image.tag")?, facts),
        privileged: boolean(doc, F::Privileged, "container.security_context.privileged")?,
    })
}

/// `process` rows for the event's parent and leaders: one per pid (a
/// process that is several of them gets one row with what each said),
/// skipping the event's own process and any process without a name (a
/// capture row needs `comm`; the pid alone is in the event's `ppid`, `sid`
/// or `pgid` already).
///
/// The columns a document cannot give are filled so as to change nothing
/// the rules read: `ppid` 0 (unknown), `uid`/`gid` the event's (a process's
/// credentials are its parent's unless it changed them), `tty` `?` when
/// `interactive` is true, else null, `cgroup_id` 0. The row is in the
/// event's container, except where D4C says otherwise: when the event's
/// process is its own entry leader (the first process of its container
/// session: `process.entry_leader.pid` is its pid, or
/// `process.entry_leader.same_as_process` is true), its relatives are
/// outside the container; so is a relative that started before the entry
/// leader.
fn relatives_rows<'a>(event: &Row<'a>, own_entry: bool, relatives: [Option<Relative<'a>>; 4]) -> Vec<Row<'a>> {
    let entry = relatives[3].as_ref().map(|e| (e.pid, e.start));
    let own_entry = own_entry || entry.is_some_and(|(pid, _)| pid == event.pid);
    let mut merged: Vec<Relative<'a>> = Vec::new();
    for r in relatives.into_iter().flatten() {
        if r.pid == event.pid || r.pid == 0 {
            continue;
        }
        match merged.iter_mut().find(|m| m.pid == r.pid) {
            None => merged.push(r),
            Some(m) => {
                m.name = m.name.take().or(r.name);
                m.executable = m.executable.take().or(r.executable);
                m.args = m.args.take().or(r.args);
                m.start = m.start.or(r.start);
                m.interactive = m.interactive.or(r.interactive);
                m.working_directory = m.working_directory.take().or(r.working_directory);
                m.session_leader |= r.session_leader;
                m.group_leader |= r.group_leader;
                m.entry_leader |= r.entry_leader;
            }
        }
    }
    merged
        .into_iter()
        .filter_map(|r| {
            let comm = r.name?;
            let before_entry = match (entry, r.start) {
                (Some((_, Some(entry_start))), Some(start)) => !r.entry_leader && start < entry_start,
                _ => false,
            };
            let outside = own_entry || before_entry;
            Some(Row {
                time: event.time,
                kind: EventKind::Process,
                host: event.host.clone(),
                pid: r.pid,
                tid: r.pid,
                ppid: 0,
                uid: event.uid,
                gid: event.gid,
                comm,
                exe: r.executable,
                args: r.args,
                path: None,
                requested_path: None,
                flags: None,
                result: None,
                tty: (r.interactive == Some(true)).then_some(Cow::Borrowed(UNKNOWN_TTY)),
                cgroup_id: 0,
                container_id: if outside { None } else { event.container_id.clone() },
                sid: r.session_leader.then_some(r.pid),
                pgid: r.group_leader.then_some(r.pid),
                start: r.start,
                parent_start: None,
                cwd: r.working_directory,
                container_started: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(line: &str) -> Result<Row<'_>, Skip> {
        map_line(line).map(|m| m.row)
    }

    #[test]
    fn nested_dotted_and_mixed_documents_give_the_same_row() {
        let nested = r#"{"@timestamp":"2026-11-20T10:15:32.711Z","event":{"category":["process"],"action":"exec","type":["start"]},"host":{"name":"node-a","os":{"type":"linux"}},"container":{"id":"c1"},"process":{"pid":51040,"thread":{"id":51041},"parent":{"pid":51001},"name":"cat","executable":"/usr/bin/cat","args":["cat","/t"],"interactive":true,"tty":{"char_device":{"major":136,"minor":0}}},"user":{"id":"0"},"group":{"id":"0"}}"#;
        let dotted = r#"{"@timestamp":"2026-11-20T10:15:32.711Z","event.category":"process","event.action":"exec","event.type":"start","host.name":"node-a","container.id":"c1","process.pid":51040,"process.thread.id":51041,"process.parent.pid":51001,"process.name":"cat","process.executable":"/usr/bin/cat","process.args":["cat","/t"],"process.interactive":true,"process.tty.char_device.major":136,"process.tty.char_device.minor":0,"user.id":"0","group.id":"0"}"#;
        let mixed = r#"{"_index":".ds-logs-cloud_defend.process-default","_id":"x","_source":{"@timestamp":"2026-11-20T10:15:32.711Z","event":{"category":"process","action":"exec"},"host.name":"node-a","container":{"id":"c1","image.name":"nginx"},"process":{"pid":"51040","thread.id":51041,"parent.pid":51001,"name":"cat","executable":"/usr/bin/cat","args":["cat","/t"],"interactive":"true","tty.char_device":{"major":136,"minor":0},"user":{"id":0},"group":{"id":0}}}}"#;
        let want = map(nested).unwrap();
        assert_eq!(want.kind, EventKind::Exec);
        assert_eq!((want.pid, want.tid, want.ppid), (51040, 51041, 51001));
        assert_eq!(want.tty.as_deref(), Some("pts/0"));
        assert_eq!(want.time, 1_795_169_732_711_000_000);
        assert_eq!(want.path.as_deref(), Some("/usr/bin/cat"));
        assert_eq!(map(dotted).unwrap(), want);
        assert_eq!(map(mixed).unwrap(), want);
    }

    #[test]
    fn file_open_events_and_write_intent() {
        let base = r#"{"@timestamp":"2026-11-20T10:15:32Z","event":{"category":["file"],"action":"open","type":TYPE},"host":{"name":"n"},"process":{"pid":1,"name":"sh","interactive":false},"file":{"path":"/run/secrets/kubernetes.io/serviceaccount/token"}}"#;
        for (ty, flags) in
            [(r#"["change"]"#, Some(1)), (r#""access""#, Some(0)), ("null", None), (r#"["creation"]"#, None)]
        {
            let line = base.replace("TYPE", ty);
            let r = map(&line).unwrap();
            assert_eq!((r.kind, r.flags, r.tty.as_deref(), r.result), (EventKind::Open, flags, None, Some(0)), "{ty}");
            assert_eq!(r.path.as_deref(), Some("/run/secrets/kubernetes.io/serviceaccount/token"));
            assert_eq!(r.args, None);
        }
        let failed =
            base.replace("TYPE", r#""change""#).replace(r#""action":"open""#, r#""action":"open","outcome":"failure""#);
        assert_eq!(map(&failed).unwrap().result, Some(-1));
    }

    #[test]
    fn interactive_without_a_known_terminal_gets_the_placeholder() {
        let line = r#"{"@timestamp":1795169732711,"event.category":"process","event.action":"exec","host.name":"n","process.pid":1,"process.name":"cat","process.interactive":true}"#;
        let r = map(line).unwrap();
        assert_eq!(r.tty.as_deref(), Some(UNKNOWN_TTY));
        assert_eq!(r.time, 1_795_169_732_711_000_000, "epoch milliseconds");
        assert_eq!(r.args, None);
        // A known device without `process.interactive` still counts.
        let dev =
            line.replace(r#""process.interactive":true"#, r#""process.tty":{"char_device":{"major":4,"minor":1}}"#);
        assert_eq!(map(&dev).unwrap().tty.as_deref(), Some("tty1"));
        // interactive false wins over a device.
        let no = dev.replace(r#""process.pid":1"#, r#""process.pid":1,"process.interactive":false"#);
        assert_eq!(map(&no).unwrap().tty, None);
    }

    #[test]
    fn other_events_and_bad_documents_say_why() {
        for (line, needle) in [
            (r#"{"event":{"category":"process","action":"fork"}}"#, "event process/fork has no capture row"),
            (r#"{"event":{"category":["file"],"action":"creation"}}"#, "event file/creation"),
            (r#"{"event":{"action":"exec"}}"#, "no `event.category`"),
            ("[]", "not a JSON object"),
            ("{\"a\":", "invalid JSON"),
            ("{} {}", "invalid JSON"),
            (r#"{"event.category":"process","event.action":"exec"}"#, "no `@timestamp`"),
            (r#"{"event.category":"process","event.action":"exec","@timestamp":"yesterday"}"#, "not an RFC 3339 date"),
            (
                r#"{"event.category":"process","event.action":"exec","@timestamp":1,"process.pid":-4}"#,
                "`process.pid` is -4",
            ),
            (
                r#"{"event.category":"process","event.action":"exec","@timestamp":1,"process.pid":1,"host.name":"h","process.name":"x","process.args":[1]}"#,
                "`process.args` holds 1",
            ),
            (
                r#"{"event.category":"process","event.action":"exec","@timestamp":1,"process.pid":1,"host.name":{"a":1},"process.name":"x"}"#,
                "`host.name` is an object",
            ),
        ] {
            let e = map(line).unwrap_err();
            assert!(e.message.contains(needle), "{line}: {}", e.message);
        }
    }

    #[test]
    fn tty_devices_round_trip() {
        for name in ["pts/0", "pts/7", "pts/300", "tty1", "ttyS0", "console", "tty", "ptmx", "3:7"] {
            let (a, b) = tty_to_device(name).unwrap_or_else(|| panic!("{name}"));
            assert_eq!(tty_from_device(a, b), name);
        }
        for name in ["?", "pts/", "pts/01", "tty99", "4:1", "x", "pts/99999"] {
            assert_eq!(tty_to_device(name), None, "{name}");
        }
    }

    #[test]
    fn relatives_become_one_process_row_each_placed_by_the_entry_leader() {
        // The parent is also the session leader: one row. The group leader is the process itself: none.
        let base = r#"{"@timestamp":"2026-12-01T05:00:00Z","event.category":"process","event.action":"exec","host.name":"h","container.id":"c1","process.pid":10,"process.name":"cat","process.parent.pid":9,"process.parent.name":"sh","process.parent.start":"2026-12-01T04:00:00Z","process.session_leader.pid":9,"process.session_leader.interactive":"true","process.group_leader.pid":10,"process.group_leader.name":"cat"ENTRY}"#;
        let plain = base.replace("ENTRY", "");
        let Mapped { row, processes: procs, .. } = map_line(&plain).unwrap();
        assert_eq!((row.sid, row.pgid, row.parent_start), (Some(9), Some(10), Some(1_796_097_600_000_000_000)));
        assert_eq!(procs.len(), 1);
        let p = &procs[0];
        assert_eq!((p.kind, p.pid, p.tid, p.ppid, p.comm.as_ref()), (EventKind::Process, 9, 9, 0, "sh"));
        assert_eq!((p.sid, p.pgid, p.tty.as_deref()), (Some(9), None, Some(UNKNOWN_TTY)));
        assert_eq!(p.container_id.as_deref(), Some("c1"), "no entry leader named: in the event's container");
        // The process is its own entry leader: its relatives are outside the container.
        let own = base.replace("ENTRY", r#","process.entry_leader.pid":10,"process.entry_leader.name":"cat""#);
        let procs = map_line(&own).unwrap().processes;
        assert_eq!(procs.iter().map(|p| (p.pid, p.container_id.is_none())).collect::<Vec<_>>(), [(9, true)]);
        let same = base.replace("ENTRY", r#","process.entry_leader.same_as_process":true"#);
        let procs = map_line(&same).unwrap().processes;
        assert_eq!(procs.iter().map(|p| (p.pid, p.container_id.is_none())).collect::<Vec<_>>(), [(9, true)]);
        let bad = base.replace("ENTRY", r#","process.entry_leader.same_as_process":"often""#);
        let e = map_line(&bad).unwrap_err().message;
        assert_eq!(e, "`process.entry_leader.same_as_process` is \"often\"; expected true or false");
        // A relative that started before the entry leader is outside; the entry leader is inside.
        let later = base.replace(
            "ENTRY",
            r#","process.entry_leader.pid":8,"process.entry_leader.name":"bash","process.entry_leader.start":"2026-12-01T04:30:00Z""#,
        );
        let procs = map_line(&later).unwrap().processes;
        assert_eq!(
            procs.iter().map(|p| (p.pid, p.container_id.as_deref())).collect::<Vec<_>>(),
            [(9, None), (8, Some("c1"))]
        );
    }

    #[test]
    fn container_fields_and_pod_resources() {
        let base = r#"{"@timestamp":1,"event.category":"process","event.action":"exec","host.name":"h","container.id":"c1","process.pid":1,"process.name":"sh","orchestrator.namespace":"ns","orchestrator.resource.name":"web-0"TYPE,"container.security_context.privileged":"true"}"#;
        let pod = base.replace("TYPE", "");
        let c = map_line(&pod).unwrap().container.expect("metadata");
        assert_eq!((c.pod_name.as_deref(), c.pod_namespace.as_deref()), (Some("web-0"), Some("ns")));
        assert_eq!(c.privileged, Some(true));
        let node = base.replace("TYPE", r#","orchestrator.resource.type":"node""#);
        let c = map_line(&node).unwrap().container.unwrap();
        assert_eq!(c.pod_name, None, "a resource that is not a pod");
        // Without a container id there is no container row.
        let host = base.replace(r#""container.id":"c1","#, "").replace("TYPE", "");
        assert_eq!(map_line(&host).unwrap().container, None);
    }
}
