//! `tracee --output json` lines to capture rows.
//!
//! A Tracee event is one JSON object: context fields (`timestamp`,
//! `processId`, `hostProcessId`, `processName`, `containerId`, ...) and
//! `args`, a list of `{name, type, value}`. Values are read by their JSON
//! shape, and the declared `type` is only checked where it changes the
//! meaning (an integer `flags` declared as a pointer is an address, not
//! flags). So both generations of type names load: v0.23-era C names
//! (`const char*`, `int`, `const char*const*`, `dev_t`, `unsigned long`)
//! and v0.24-era Go names (`string`, `int32`, `[]string`, `uint32`,
//! `uint64`), as well as the `string` type `--parse-arguments` gives flags.
//!
//! Values are kept as raw JSON until their name says they are needed:
//! `envp`, `env` and every other argument are scanned but never decoded.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::value::RawValue;

use super::{
    escape_text, json_error, meta_text, parse_object, parse_open_flags, raw_str, split_image, ContainerMeta,
    ImportOptions, Mapped, Row, RowFacts, Skip,
};
use crate::capture::EventKind;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    timestamp: Option<i64>,
    process_id: Option<i64>,
    thread_id: Option<i64>,
    parent_process_id: Option<i64>,
    host_process_id: Option<i64>,
    host_thread_id: Option<i64>,
    host_parent_process_id: Option<i64>,
    user_id: Option<i64>,
    cgroup_id: Option<u64>,
    #[serde(borrow)]
    process_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    host_name: Option<Cow<'a, str>>,
    #[serde(borrow)]
    container_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    container: Option<&'a RawValue>,
    #[serde(borrow)]
    kubernetes: Option<&'a RawValue>,
    #[serde(borrow)]
    thread_start_time: Option<&'a RawValue>,
    #[serde(borrow)]
    event_name: Option<Cow<'a, str>>,
    return_value: Option<i64>,
    #[serde(borrow)]
    executable: Option<Executable<'a>>,
    #[serde(borrow)]
    context_flags: Option<&'a RawValue>,
    #[serde(borrow)]
    args: Option<Args<'a>>,
}

/// Tracee's `container` object (`types/trace` `Container`). Values stay raw
/// until read, so that a value of the wrong type is reported by its name.
#[derive(Deserialize, Default)]
struct Container<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    name: Option<&'a RawValue>,
    #[serde(borrow)]
    image: Option<&'a RawValue>,
}

/// Tracee's `kubernetes` object (`types/trace` `Kubernetes`).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Kubernetes<'a> {
    #[serde(borrow)]
    pod_name: Option<&'a RawValue>,
    #[serde(borrow)]
    pod_namespace: Option<&'a RawValue>,
    #[serde(borrow, rename = "podUID")]
    pod_uid: Option<&'a RawValue>,
}

#[derive(Deserialize)]
struct Executable<'a> {
    #[serde(borrow)]
    path: Option<Cow<'a, str>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ContextFlags<'a> {
    #[serde(borrow)]
    container_started: Option<&'a RawValue>,
}

/// An object-valued context field (`container`, `kubernetes`,
/// `contextFlags`); absent or null is the default (nothing said).
fn object<'a, T: Deserialize<'a> + Default>(raw: Option<&'a RawValue>, field: &str) -> Result<T, Skip> {
    let Some(raw) = raw else { return Ok(T::default()) };
    let text: &'a str = raw.get();
    if text == "null" {
        return Ok(T::default());
    }
    if !text.starts_with('{') {
        return Err(Skip::bad(format!("`{field}` is {}; expected an object", shorten(text))));
    }
    serde_json::from_str(text).map_err(|e| Skip::bad(format!("`{field}`: {}", json_error(&e))))
}

/// A string-valued field; absent or null is `None`.
fn text_field<'a>(raw: Option<&'a RawValue>, field: &str) -> Result<Option<Cow<'a, str>>, Skip> {
    let Some(raw) = raw else { return Ok(None) };
    let text: &'a str = raw.get();
    if text == "null" {
        return Ok(None);
    }
    raw_str(text).map(Some).ok_or_else(|| Skip::bad(format!("`{field}` is {}; expected a string", shorten(text))))
}

/// A boolean field; absent or null is `None`.
fn bool_field(raw: Option<&RawValue>, field: &str) -> Result<Option<bool>, Skip> {
    match raw.map(RawValue::get) {
        None | Some("null") => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(other) => Err(Skip::bad(format!("`{field}` is {}; expected true or false", shorten(other)))),
    }
}

/// Wall-clock nanoseconds below this (2001-09-09) are not an epoch time in a
/// Tracee event: older Tracee wrote `threadStartTime` as time since boot.
const EPOCH_NS_FLOOR: i64 = 1_000_000_000_000_000_000;

/// `threadStartTime`: nanoseconds since the epoch; 0 means not known. `Err`
/// for a value that is not a non-negative integer; `Ok(Err(()))` for a time
/// since boot.
fn start_time(raw: Option<&RawValue>) -> Result<Result<Option<i64>, ()>, Skip> {
    let Some(raw) = raw else { return Ok(Ok(None)) };
    let text = raw.get();
    if text == "null" {
        return Ok(Ok(None));
    }
    match text.parse::<i64>() {
        Ok(0) => Ok(Ok(None)),
        Ok(v) if v >= EPOCH_NS_FLOOR => Ok(Ok(Some(v))),
        Ok(v) if v > 0 => Ok(Err(())),
        _ => Err(Skip::bad(format!(
            "`threadStartTime` is {}; expected nanoseconds since the epoch (a non-negative integer)",
            shorten(text)
        ))),
    }
}

#[derive(Deserialize)]
struct Arg<'a> {
    #[serde(borrow)]
    name: Cow<'a, str>,
    #[serde(borrow, rename = "type", default)]
    ty: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    value: Option<&'a RawValue>,
}

/// The arguments an import reads, by name: the others are scanned and dropped
/// without being kept (no allocation per event).
#[derive(Default)]
struct Args<'a> {
    slots: [Option<Arg<'a>>; WANTED.len()],
}

const WANTED: [&str; 7] = ["pathname", "flags", "syscall_pathname", "cmdpath", "argv", "stdin_path", "how"];

impl<'a> Args<'a> {
    fn get(&self, name: &str) -> Option<&Arg<'a>> {
        let i = WANTED.iter().position(|w| *w == name)?;
        self.slots[i].as_ref()
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Args<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<'a>(std::marker::PhantomData<Args<'a>>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for V<'a> {
            type Value = Args<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of arguments")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Args<'a>, A::Error> {
                let mut args = Args::default();
                while let Some(arg) = seq.next_element::<Arg<'a>>()? {
                    if let Some(i) = WANTED.iter().position(|w| *w == arg.name) {
                        // The first of duplicate names wins, as a lookup by name in Go would find it.
                        if args.slots[i].is_none() {
                            args.slots[i] = Some(arg);
                        }
                    }
                }
                Ok(args)
            }
        }
        d.deserialize_seq(V(std::marker::PhantomData))
    }
}

/// A string that borrows from the line when it has no escapes.
#[derive(Deserialize)]
struct BStr<'a>(#[serde(borrow)] Cow<'a, str>);

/// Which kind of Tracee event a line is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `security_file_open`: the LSM hook, with the resolved path.
    LsmOpen,
    /// `open`, `openat`, `openat2`, `creat`: the system call, with the requested path.
    SysOpen,
    /// `sched_process_exec`: after a successful exec.
    SchedExec,
    /// `execve`, `execveat`: the system call.
    SysExec,
}

/// flags of creat(2): `O_CREAT|O_WRONLY|O_TRUNC`.
const CREAT_FLAGS: i32 = 0o1101;

fn source(name: &str) -> Option<Source> {
    Some(match name {
        "security_file_open" => Source::LsmOpen,
        "open" | "openat" | "openat2" | "creat" => Source::SysOpen,
        "sched_process_exec" => Source::SchedExec,
        "execve" | "execveat" => Source::SysExec,
        _ => return None,
    })
}

/// Maps one line. Errors say why the line cannot become a row.
pub(crate) fn map_line<'a>(line: &'a str, options: &ImportOptions) -> Result<Mapped<'a>, Skip> {
    let ev: Event<'a> = parse_object(line, "a Tracee event")?;
    let name = ev.event_name.as_deref().ok_or_else(|| Skip::bad("no `eventName`: not a Tracee event"))?;
    let Some(src) = source(name) else {
        return Err(Skip::new(
            format!("event {name}"),
            format!("event {name} has no capture row (only file opens and execs do)"),
        ));
    };
    let time = ev.timestamp.ok_or_else(|| Skip::bad(format!("{name} event without `timestamp`")))?;
    let pid = pick("hostProcessId", ev.host_process_id, "processId", ev.process_id)?
        .ok_or_else(|| Skip::bad(format!("{name} event without `hostProcessId` or `processId`")))?;
    let tid = pick("hostThreadId", ev.host_thread_id, "threadId", ev.thread_id)?.unwrap_or(pid);
    let ppid =
        pick("hostParentProcessId", ev.host_parent_process_id, "parentProcessId", ev.parent_process_id)?.unwrap_or(0);
    let uid = match ev.user_id {
        Some(v) => id("userId", v)?,
        None => return Err(Skip::bad(format!("{name} event without `userId`"))),
    };
    let comm = ev.process_name.ok_or_else(|| Skip::bad(format!("{name} event without `processName`")))?;
    let host = ev.host_name.ok_or_else(|| Skip::bad(format!("{name} event without `hostName`")))?;
    let container: Container<'a> = object(ev.container, "container")?;
    let kubernetes: Kubernetes<'a> = object(ev.kubernetes, "kubernetes")?;
    let flags: ContextFlags<'a> = object(ev.context_flags, "contextFlags")?;
    let container_started = bool_field(flags.container_started, "contextFlags.containerStarted")?;
    let container_id = ev
        .container_id
        .filter(|c| !c.is_empty())
        .or(text_field(container.id, "container.id")?.filter(|c| !c.is_empty()));
    let container_init = container_started == Some(false) && container_id.is_some();
    let mut facts = RowFacts { container_init, ..RowFacts::default() };
    // The thread's start is the process's only for its thread-group leader.
    let start = match start_time(ev.thread_start_time)? {
        Ok(t) => t.filter(|_| tid == pid),
        Err(()) => {
            facts.boot_start_time = true;
            None
        }
    };
    let image = meta_text(text_field(container.image, "container.image")?, &mut facts);
    let (image_name, image_tag) = match image.as_deref().map(split_image) {
        Some((n, t)) => (Some(Cow::Owned(n.to_string())), t.map(|t| Cow::Owned(t.to_string()))),
        None => (None, None),
    };
    let meta = ContainerMeta {
        pod_name: meta_text(text_field(kubernetes.pod_name, "kubernetes.podName")?, &mut facts),
        pod_namespace: meta_text(text_field(kubernetes.pod_namespace, "kubernetes.podNamespace")?, &mut facts),
        pod_uid: meta_text(text_field(kubernetes.pod_uid, "kubernetes.podUID")?, &mut facts),
        container_name: meta_text(text_field(container.name, "container.name")?, &mut facts),
        image,
        image_name,
        image_tag,
        // Tracee does not say whether a container is privileged.
        privileged: None,
    };
    let exe = ev.executable.and_then(|e| e.path).filter(|p| !p.is_empty()).map(escape_text);
    let args = ev.args.unwrap_or_default();

    let mut row = Row {
        time,
        kind: EventKind::Open,
        host,
        pid,
        tid,
        ppid,
        uid,
        // Tracee events carry no group id.
        gid: 0,
        comm: escape_text(comm),
        exe,
        args: None,
        path: None,
        requested_path: None,
        flags: None,
        result: ev.return_value,
        tty: None,
        cgroup_id: ev.cgroup_id.unwrap_or(0),
        container_id,
        // Tracee events carry no session, process group or working directory,
        // nor the parent's start.
        sid: None,
        pgid: None,
        start,
        parent_start: None,
        cwd: None,
        container_started,
    };
    match src {
        Source::LsmOpen => {
            row.path = nonempty(str_arg(&args, "pathname")?);
            row.requested_path = nonempty(str_arg(&args, "syscall_pathname")?);
            row.flags = flags_arg(&args)?;
        }
        Source::SysOpen => {
            row.requested_path = str_arg(&args, "pathname")?.map(escape_text);
            row.flags = if name == "creat" {
                Some(CREAT_FLAGS)
            } else if find(&args, "flags").is_some() {
                flags_arg(&args)?
            } else {
                how_flags(&args)?
            };
        }
        Source::SchedExec => {
            row.kind = EventKind::Exec;
            row.path = nonempty(str_arg(&args, "pathname")?);
            row.requested_path = nonempty(str_arg(&args, "cmdpath")?);
            row.args = argv_arg(&args)?;
            if row.exe.is_none() {
                row.exe = row.path.clone();
            }
            if options.tty_from_stdin {
                row.tty = str_arg(&args, "stdin_path")?.and_then(terminal_name);
            }
        }
        Source::SysExec => {
            row.kind = EventKind::Exec;
            row.requested_path = str_arg(&args, "pathname")?.map(escape_text);
            row.args = argv_arg(&args)?;
        }
    }
    let container = (!meta.is_empty()).then_some(meta);
    Ok(Mapped { container, ..Mapped::row(row, facts) })
}

fn id(field: &str, v: i64) -> Result<u32, Skip> {
    u32::try_from(v).map_err(|_| Skip::bad(format!("`{field}` is {v}; expected 0..=4294967295")))
}

/// The host-namespace id when the event has it, else the namespaced one.
fn pick(host_name: &str, host: Option<i64>, ns_name: &str, ns: Option<i64>) -> Result<Option<u32>, Skip> {
    match (host, ns) {
        (Some(v), _) => id(host_name, v).map(Some),
        (None, Some(v)) => id(ns_name, v).map(Some),
        (None, None) => Ok(None),
    }
}

fn find<'b, 'a>(args: &'b Args<'a>, name: &str) -> Option<&'b Arg<'a>> {
    args.get(name)
}

fn type_of<'b>(a: &'b Arg<'_>) -> &'b str {
    a.ty.as_deref().unwrap_or("?")
}

fn shorten(raw: &str) -> String {
    if raw.len() <= 60 {
        return raw.to_string();
    }
    let mut end = 57;
    while !raw.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &raw[..end])
}

/// A string argument; `None` when it is absent or null.
fn str_arg<'a>(args: &Args<'a>, name: &str) -> Result<Option<Cow<'a, str>>, Skip> {
    let Some(a) = find(args, name) else { return Ok(None) };
    let Some(raw) = a.value else { return Ok(None) };
    let text: &'a str = raw.get();
    if text == "null" {
        return Ok(None);
    }
    raw_str(text).map(Some).ok_or_else(|| {
        Skip::bad(format!("argument `{name}` (type {}) is {}; expected a string", type_of(a), shorten(text)))
    })
}

fn nonempty(s: Option<Cow<'_, str>>) -> Option<Cow<'_, str>> {
    s.filter(|s| !s.is_empty()).map(escape_text)
}

/// The `flags` argument: an integer of any integer type, or a string of
/// flag names (`--parse-arguments`). `None` when absent or null.
fn flags_arg(args: &Args<'_>) -> Result<Option<i32>, Skip> {
    let Some(a) = find(args, "flags") else { return Ok(None) };
    let Some(raw) = a.value else { return Ok(None) };
    flags_value(raw.get(), type_of(a))
}

fn flags_value(text: &str, ty: &str) -> Result<Option<i32>, Skip> {
    if text == "null" {
        return Ok(None);
    }
    if let Some(s) = raw_str(text) {
        return parse_open_flags(&s)
            .map(Some)
            .map_err(|m| Skip::new("unknown open flags", format!("argument `flags`: {m}")));
    }
    if ty.ends_with('*') {
        return Err(Skip::bad(format!(
            "argument `flags` has pointer type {ty} (value {}); expected the flags themselves",
            shorten(text)
        )));
    }
    match text.parse::<i64>() {
        // Any width, signed or unsigned: flags are a bit pattern of 32 bits.
        Ok(v) if (i32::MIN as i64..=u32::MAX as i64).contains(&v) => Ok(Some(v as u32 as i32)),
        Ok(v) => Err(Skip::bad(format!("argument `flags` (type {ty}) is {v}, which does not fit in 32 bits"))),
        Err(_) => Err(Skip::bad(format!(
            "argument `flags` (type {ty}) is {}; expected an integer or flag names",
            shorten(text)
        ))),
    }
}

/// openat2(2) carries its flags in `struct open_how`: read them when Tracee
/// decoded it into an object, else the flags are unknown.
fn how_flags(args: &Args<'_>) -> Result<Option<i32>, Skip> {
    #[derive(Deserialize)]
    struct How<'a> {
        #[serde(borrow)]
        flags: Option<&'a RawValue>,
    }
    let Some(raw) = find(args, "how").and_then(|a| a.value) else { return Ok(None) };
    if !raw.get().starts_with('{') {
        return Ok(None);
    }
    match serde_json::from_str::<How<'_>>(raw.get()) {
        Ok(How { flags: Some(f) }) => flags_value(f.get(), "open_how.flags"),
        _ => Ok(None),
    }
}

/// The `argv` argument: an array of strings; `None` when absent or null.
fn argv_arg<'a>(args: &Args<'a>) -> Result<Option<Vec<Option<Cow<'a, str>>>>, Skip> {
    let Some(a) = find(args, "argv") else { return Ok(None) };
    let Some(raw) = a.value else { return Ok(None) };
    let text: &'a str = raw.get();
    if text == "null" {
        return Ok(None);
    }
    match serde_json::from_str::<Vec<Option<BStr<'a>>>>(text) {
        Ok(v) => Ok(Some(v.into_iter().map(|s| s.map(|s| escape_text(s.0))).collect())),
        Err(_) => Err(Skip::bad(format!(
            "argument `argv` (type {}) is {}; expected an array of strings",
            type_of(a),
            shorten(text)
        ))),
    }
}

/// `pts/0` for `/dev/pts/0`, `tty1` for `/dev/tty1`, `console`; `None` for
/// anything that is not a terminal device.
fn terminal_name(stdin: Cow<'_, str>) -> Option<Cow<'_, str>> {
    let name = stdin.strip_prefix("/dev/")?;
    let is_tty = name.strip_prefix("pts/").is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
        || (name.starts_with("tty") && name.len() > 3)
        || name == "console";
    is_tty.then(|| Cow::Owned(name.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(line: &str) -> Result<Row<'_>, Skip> {
        map_line(line, &ImportOptions::default()).map(|m| m.row)
    }

    const CTX: &str = r#""timestamp":1700000000123456789,"processId":7,"threadId":8,"parentProcessId":1,"hostProcessId":5007,"hostThreadId":5008,"hostParentProcessId":5001,"userId":0,"processName":"cat","hostName":"node-a","cgroupId":11873,"containerId":"abc","executable":{"path":"/usr/bin/cat"},"returnValue":0"#;

    #[test]
    fn v023_security_file_open_with_integer_flags() {
        let line = format!(
            r#"{{{CTX},"eventName":"security_file_open","args":[{{"name":"pathname","type":"const char*","value":"/run/t"}},{{"name":"flags","type":"int","value":32768}},{{"name":"dev","type":"dev_t","value":45}},{{"name":"inode","type":"unsigned long","value":9}},{{"name":"syscall_pathname","type":"const char*","value":"/var/run/t"}}]}}"#
        );
        let r = map(&line).unwrap();
        assert_eq!(r.kind, EventKind::Open);
        assert_eq!((r.pid, r.tid, r.ppid, r.uid, r.gid), (5007, 5008, 5001, 0, 0));
        assert_eq!(r.path.as_deref(), Some("/run/t"));
        assert_eq!(r.requested_path.as_deref(), Some("/var/run/t"));
        assert_eq!(r.flags, Some(32768));
        assert_eq!(r.result, Some(0));
        assert_eq!(r.exe.as_deref(), Some("/usr/bin/cat"));
        assert_eq!(r.container_id.as_deref(), Some("abc"));
        assert!(matches!(r.path, Some(Cow::Borrowed(_))), "strings without escapes are borrowed");
    }

    #[test]
    fn flags_of_every_integer_type_and_parsed_strings() {
        for (ty, value, want) in [
            ("int32", "32768", 32768),
            ("uint32", "4294967295", -1),
            ("unsigned int", "2", 2),
            ("int", "-1", -1),
            ("uint64", "557056", 557056),
            ("string", "\"O_RDONLY|O_LARGEFILE\"", 32768),
            ("const char*", "\"O_WRONLY|O_CREAT|O_TRUNC|O_LARGEFILE\"", 0o101101),
            ("string", "\"\"", 0),
        ] {
            let line = format!(
                r#"{{{CTX},"eventName":"security_file_open","args":[{{"name":"pathname","type":"string","value":"/x"}},{{"name":"flags","type":"{ty}","value":{value}}}]}}"#
            );
            assert_eq!(map(&line).unwrap().flags, Some(want), "{ty} {value}");
        }
        for (ty, value, needle) in [
            ("string", "\"O_RDONLY|O_BOGUS\"", "unknown open flag `O_BOGUS`"),
            ("int*", "140737488", "pointer type int*"),
            ("int", "4294967296", "does not fit in 32 bits"),
            ("int", "1.5", "expected an integer"),
            ("int", "[1]", "expected an integer"),
        ] {
            let line = format!(
                r#"{{{CTX},"eventName":"security_file_open","args":[{{"name":"flags","type":"{ty}","value":{value}}}]}}"#
            );
            let e = map(&line).unwrap_err();
            assert!(e.message.contains(needle), "{ty} {value}: {}", e.message);
        }
    }

    #[test]
    fn exec_events_of_both_generations() {
        let v023 = format!(
            r#"{{{CTX},"eventName":"sched_process_exec","args":[{{"name":"cmdpath","type":"const char*","value":"/bin/cat"}},{{"name":"pathname","type":"const char*","value":"/usr/bin/cat"}},{{"name":"argv","type":"const char**","value":["cat","/t"]}},{{"name":"env","type":"const char**","value":["A=1"]}},{{"name":"stdin_path","type":"const char*","value":"/dev/pts/3"}}]}}"#
        );
        let v024 = v023.replace("const char**", "[]string").replace("const char*", "string");
        for line in [v023, v024] {
            let r = map(&line).unwrap();
            assert_eq!(r.kind, EventKind::Exec);
            assert_eq!(r.args, Some(vec![Some(Cow::Borrowed("cat")), Some(Cow::Borrowed("/t"))]));
            assert_eq!(r.path.as_deref(), Some("/usr/bin/cat"));
            assert_eq!(r.requested_path.as_deref(), Some("/bin/cat"));
            assert_eq!(r.flags, None);
            assert_eq!(r.tty, None, "tty only with tty_from_stdin");
            let opts = ImportOptions { tty_from_stdin: true, ..Default::default() };
            assert_eq!(map_line(&line, &opts).unwrap().row.tty.as_deref(), Some("pts/3"));
        }
    }

    #[test]
    fn syscall_events_keep_the_requested_path_only() {
        let line = format!(
            r#"{{{CTX},"eventName":"openat","returnValue":-2,"args":[{{"name":"dirfd","type":"int","value":-100}},{{"name":"pathname","type":"const char*","value":"t"}},{{"name":"flags","type":"int","value":0}},{{"name":"mode","type":"mode_t","value":0}}]}}"#
        )
        .replacen(r#""returnValue":0,"#, "", 1);
        let r = map(&line).unwrap();
        assert_eq!(
            (r.path.as_deref(), r.requested_path.as_deref(), r.flags, r.result),
            (None, Some("t"), Some(0), Some(-2))
        );
        let creat =
            format!(r#"{{{CTX},"eventName":"creat","args":[{{"name":"pathname","type":"string","value":"/tmp/x"}}]}}"#);
        assert_eq!(map(&creat).unwrap().flags, Some(0o1101));
        let openat2 = format!(
            r#"{{{CTX},"eventName":"openat2","args":[{{"name":"pathname","type":"string","value":"/x"}},{{"name":"how","type":"struct open_how*","value":140737}}]}}"#
        );
        assert_eq!(map(&openat2).unwrap().flags, None);
        let decoded = openat2.replace("140737", r#"{"flags":2,"mode":0}"#);
        assert_eq!(map(&decoded).unwrap().flags, Some(2));
        let execve = format!(
            r#"{{{CTX},"eventName":"execve","args":[{{"name":"pathname","type":"const char*","value":"./x"}},{{"name":"argv","type":"const char*const*","value":["./x"]}}]}}"#
        );
        let r = map(&execve).unwrap();
        assert_eq!((r.kind, r.path.as_deref(), r.requested_path.as_deref()), (EventKind::Exec, None, Some("./x")));
    }

    #[test]
    fn namespaced_ids_when_host_ids_are_absent_and_container_fallbacks() {
        let line = r#"{"timestamp":1,"processId":7,"threadId":8,"parentProcessId":1,"userId":1000,"processName":"sh","hostName":"h","container":{"id":"c1"},"contextFlags":{"containerStarted":false},"eventName":"sched_process_exec","args":[]}"#;
        let Mapped { row: r, facts, .. } = map_line(line, &ImportOptions::default()).unwrap();
        assert_eq!((r.pid, r.tid, r.ppid, r.uid), (7, 8, 1, 1000));
        assert_eq!(r.container_id.as_deref(), Some("c1"));
        assert!(facts.container_init);
        let host = r#"{"timestamp":1,"processId":7,"userId":0,"processName":"sh","hostName":"h","containerId":"","container":{},"eventName":"sched_process_exec"}"#;
        let Mapped { row: r, facts, .. } = map_line(host, &ImportOptions::default()).unwrap();
        assert_eq!((r.container_id, r.tid, r.ppid, r.args), (None, 7, 0, None));
        assert!(!facts.container_init);
    }

    #[test]
    fn backslashes_are_escaped_as_the_capture_format_wants() {
        let line = format!(
            r#"{{{CTX},"eventName":"security_file_open","args":[{{"name":"pathname","type":"string","value":"/tmp/a\\b"}}]}}"#
        );
        assert_eq!(map(&line).unwrap().path.as_deref(), Some("/tmp/a\\\\b"));
    }

    #[test]
    fn lines_that_cannot_map_say_why() {
        let cases = [
            ("{", "invalid JSON"),
            ("[1,2]", "not a JSON object: not a Tracee event"),
            ("nope", "invalid JSON: expected ident"),
            (r#"{"eventName":"sched_process_fork"}"#, "event sched_process_fork has no capture row"),
            (r#"{"eventName":"openat"}"#, "without `timestamp`"),
            (r#"{"eventName":"openat","timestamp":"x"}"#, "not a Tracee event: invalid type"),
            (r#"{"eventName":"openat","timestamp":1,"processId":-1}"#, "`processId` is -1"),
            (
                r#"{"eventName":"execve","timestamp":1,"processId":1,"userId":0,"processName":"a","hostName":"h","args":[{"name":"argv","type":"const char**","value":7}]}"#,
                "argument `argv` (type const char**) is 7",
            ),
            (
                r#"{"eventName":"security_file_open","timestamp":1,"processId":1,"userId":0,"processName":"a","hostName":"h","args":[{"name":"pathname","type":"const char*","value":5}]}"#,
                "argument `pathname` (type const char*) is 5; expected a string",
            ),
        ];
        for (line, needle) in cases {
            let e = map(line).unwrap_err();
            assert!(e.message.contains(needle), "{line}: {}", e.message);
        }
    }

    #[test]
    fn thread_start_time_is_the_start_only_of_the_thread_group_leader() {
        let at = |tid: u32, tst: &str| {
            let line = format!(
                r#"{{"timestamp":1796100000000000000,"threadStartTime":{tst},"hostProcessId":7001,"hostThreadId":{tid},"userId":0,"processName":"p","hostName":"h","eventName":"security_file_open"}}"#
            );
            map_line(&line, &ImportOptions::default()).map(|m| (m.row.start, m.facts.boot_start_time)).unwrap()
        };
        assert_eq!(at(7001, "1796099999000000000"), (Some(1_796_099_999_000_000_000), false));
        assert_eq!(at(7002, "1796099999000000000"), (None, false), "another thread's start");
        assert_eq!(at(7001, "0"), (None, false), "0: not known");
        assert_eq!(at(7001, "null"), (None, false));
        assert_eq!(at(7001, "88000000000"), (None, true), "88 s since boot");
    }

    #[test]
    fn container_and_kubernetes_objects_give_the_container_row_values() {
        let line = r#"{"timestamp":1,"hostProcessId":5,"userId":0,"processName":"p","hostName":"h","containerId":"c1","container":{"id":"c1","name":"web","image":"registry:5000/shop/web:1.4.2@sha256:abcd","imageDigest":"sha256:abcd"},"kubernetes":{"podName":"web-0","podNamespace":"shop","podUID":"u-1","podSandbox":false},"contextFlags":{"containerStarted":true,"isCompat":false},"eventName":"security_file_open"}"#;
        let m = map_line(line, &ImportOptions::default()).unwrap();
        let c = m.container.expect("metadata");
        assert_eq!(
            (c.pod_name.as_deref(), c.pod_namespace.as_deref(), c.pod_uid.as_deref(), c.container_name.as_deref()),
            (Some("web-0"), Some("shop"), Some("u-1"), Some("web"))
        );
        assert_eq!(c.image.as_deref(), Some("registry:5000/shop/web:1.4.2@sha256:abcd"));
        assert_eq!((c.image_name.as_deref(), c.image_tag.as_deref()), (Some("registry:5000/shop/web"), Some("1.4.2")));
        assert_eq!(c.privileged, None, "Tracee does not say");
        assert_eq!(m.row.container_started, Some(true));
        // Empty strings are Tracee's "not known"; nothing but the id is no metadata.
        let bare = line.replace(r#""name":"web","image":"registry:5000/shop/web:1.4.2@sha256:abcd","#, r#""name":"","#);
        let bare = bare.replace(r#""podName":"web-0","podNamespace":"shop","podUID":"u-1","#, "");
        let m = map_line(&bare, &ImportOptions::default()).unwrap();
        assert_eq!(m.container, None);
        let started = |flags: &str| {
            let l = line.replace(r#""contextFlags":{"containerStarted":true,"isCompat":false}"#, flags);
            map_line(&l, &ImportOptions::default()).unwrap().row.container_started
        };
        assert_eq!(started(r#""contextFlags":{"containerStarted":false}"#), Some(false));
        assert_eq!(started(r#""contextFlags":{}"#), None);
        assert_eq!(started(r#""contextFlags":null"#), None);
        assert_eq!(started(r#""x":1"#), None);
    }
}
