//! The command driver: every call runs an executable — a site's own tool, or a wrapper
//! around Ansible, the OpenStack or vSphere command-line clients — and a `run_script`
//! call whose step names a library script runs that script instead.
//!
//! The protocol, for a program or a script:
//!
//! - **standard input**: the call as one JSON object ([`DriverCall`]: `operation`,
//!   `phase` (`do` or `undo`), `run_id`, `step`, `params`, and `output` (what the step
//!   answered when it was done) for an undo, `script` for a library script), then end of
//!   file. The same facts are in the environment for shell scripts: `OPSLEDGER_OPERATION`,
//!   `OPSLEDGER_PHASE`, `OPSLEDGER_RUN_ID` and `OPSLEDGER_STEP`.
//! - **standard output**: one JSON object, the step's outputs (`{}` when there are none).
//! - **standard error**: the log, free text.
//! - **exit status**: 0 is success. Any other status is a failure, whose message is the
//!   `error` string of the JSON object on standard output when there is one (else the
//!   status and the last line of the log). Killed by a signal is a crash.
//!
//! A call that runs longer than its timeout is killed, with every process it started in
//! its process group; when a call ends, what is left of its process group is ended too.
//! A tool that must leave something running detaches it (`setsid`, as daemons do).
//! At most [`KEPT_BYTES`] of each stream are kept in memory: the output beyond that is an
//! error, the log keeps its beginning and its end.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::task::JoinHandle;

use super::{operation, Driver, DriverCall, DriverError, DriverOutput, Phase, Script};
use crate::store::content::Sha256Hex;

/// How much of a call's standard output, and of its standard error, is kept.
pub const KEPT_BYTES: usize = 1 << 20;

/// How long the readers of a call that has ended may take to drain its pipes.
const DRAIN: Duration = Duration::from_secs(2);

/// The command driver's settings.
#[derive(Clone, Debug)]
pub struct CommandConfig {
    /// The executable every call runs (but `run_script` calls with a library script).
    pub program: PathBuf,
    /// How long a call may take.
    pub timeout: Duration,
    /// How long a library script may take, when not [`CommandConfig::timeout`].
    pub scripts_timeout: Option<Duration>,
    /// Variables added to the environment of every call.
    pub env: BTreeMap<String, String>,
}

impl CommandConfig {
    /// `program`, with a five-minute timeout.
    pub fn new(program: impl Into<PathBuf>) -> Self {
        CommandConfig {
            program: program.into(),
            timeout: Duration::from_secs(300),
            scripts_timeout: None,
            env: BTreeMap::new(),
        }
    }

    /// Checks that the program is an executable file.
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn check(&self) -> Result<(), String> {
        use std::os::unix::fs::PermissionsExt;
        let shown = self.program.display();
        match std::fs::metadata(&self.program) {
            Err(e) => Err(format!("the driver program {shown} cannot be used: {e}")),
            Ok(m) if !m.is_file() => Err(format!("the driver program {shown} is not a file")),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => {
                Err(format!("the driver program {shown} is not executable"))
            }
            Ok(_) => Ok(()),
        }
    }
}

/// Runs a program (or a library script) for every call.
pub struct CommandDriver {
    config: CommandConfig,
}

impl CommandDriver {
    pub fn new(config: CommandConfig) -> Self {
        CommandDriver { config }
    }
}

#[async_trait::async_trait]
impl Driver for CommandDriver {
    fn name(&self) -> &str {
        "command"
    }

    async fn call(&self, call: &DriverCall) -> Result<DriverOutput, DriverError> {
        match (&call.script, call.operation.as_str()) {
            (Some(script), operation::RUN_SCRIPT) => {
                let copy = copy_script(script).await?;
                let timeout = self.config.scripts_timeout.unwrap_or(self.config.timeout);
                let done = self.run(&copy.path().join("script"), call, timeout).await;
                drop(copy);
                done
            }
            _ => {
                self.run(&self.config.program, call, self.config.timeout)
                    .await
            }
        }
    }
}

fn failed(message: String) -> DriverError {
    DriverError::Failed {
        message,
        log: String::new(),
    }
}

/// A private, executable copy of a library script: the content store keeps plain data.
/// The copy is checked against the script's hash, so what runs is what was approved.
async fn copy_script(script: &Script) -> Result<tempfile::TempDir, DriverError> {
    let named = format!("the script {} (version {})", script.name, script.version);
    let bytes = match tokio::fs::read(&script.path).await {
        Ok(bytes) => bytes,
        Err(e) => return Err(failed(format!("{named} cannot be read: {e}"))),
    };
    if Sha256Hex::of(&bytes).as_str() != script.sha256 {
        return Err(failed(format!("{named} does not match its SHA-256")));
    }
    let write = async {
        let dir = tempfile::Builder::new()
            .prefix("opsledger-script-")
            .tempdir()?;
        let mut file = tokio::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o700)
            .open(dir.path().join("script"))
            .await?;
        file.write_all(&bytes).await?;
        file.sync_all().await?;
        Ok::<_, std::io::Error>(dir)
    };
    write
        .await
        .map_err(|e| failed(format!("{named} cannot be made ready to run: {e}")))
}

impl CommandDriver {
    async fn run(
        &self,
        program: &Path,
        call: &DriverCall,
        timeout: Duration,
    ) -> Result<DriverOutput, DriverError> {
        let input = serde_json::to_vec(call).expect("a driver call serialises");
        let phase = match call.phase {
            Phase::Do => "do",
            Phase::Undo => "undo",
        };
        let mut command = tokio::process::Command::new(program);
        command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .envs(&self.config.env)
            .env("OPSLEDGER_OPERATION", &call.operation)
            .env("OPSLEDGER_PHASE", phase)
            .env("OPSLEDGER_RUN_ID", call.run_id.to_string())
            .env("OPSLEDGER_STEP", &call.step)
            .process_group(0)
            .kill_on_drop(true);
        let mut child = spawn(&mut command)
            .await
            .map_err(|e| failed(format!("cannot start {}: {e}", program.display())))?;
        let mut group = ProcessGroup(
            child
                .id()
                .and_then(|id| rustix::process::Pid::from_raw(id as i32)),
        );

        // Written and read concurrently, so that neither side waits on a full pipe.
        if let Some(mut stdin) = child.stdin.take() {
            tokio::spawn(async move {
                // A program that does not read its input closes the pipe: not an error.
                let _ = stdin.write_all(&input).await;
            });
        }
        let stdout = child
            .stdout
            .take()
            .map(|r| tokio::spawn(capture(r, KEPT_BYTES, false)));
        let stderr = child
            .stderr
            .take()
            .map(|r| tokio::spawn(capture(r, KEPT_BYTES, true)));

        let status = tokio::time::timeout(timeout, child.wait()).await;
        group.end();
        if status.is_err() {
            // Timed out: the group is killed, the child too (should it have left the
            // group); reap it.
            let _ = child.kill().await;
        }
        let log = collected(stderr).await.text();
        match status {
            Err(_) => Err(DriverError::TimedOut {
                seconds: timeout.as_millis().div_ceil(1000) as u64,
                log,
            }),
            Ok(Err(e)) => Err(DriverError::Failed {
                message: format!("cannot wait for {}: {e}", program.display()),
                log,
            }),
            Ok(Ok(status)) => answer(status, collected(stdout).await, log),
        }
    }
}

/// Starts `command`, again when the program was being written by another thread's
/// child at that moment (a freshly copied script can be, briefly: `ETXTBSY`).
async fn spawn(command: &mut tokio::process::Command) -> std::io::Result<tokio::process::Child> {
    let busy = rustix::io::Errno::TXTBSY.raw_os_error();
    let mut attempt = 0;
    loop {
        match command.spawn() {
            Err(e) if e.raw_os_error() == Some(busy) && attempt < 10 => {
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(10 * attempt)).await;
            }
            done => return done,
        }
    }
}

/// What a call's program answered, from how it ended and what it wrote.
fn answer(status: ExitStatus, stdout: Captured, log: String) -> Result<DriverOutput, DriverError> {
    match status.code() {
        Some(0) => {
            if stdout.left_out > 0 {
                return Err(DriverError::Malformed {
                    message: format!("the answer is longer than {KEPT_BYTES} bytes"),
                    log,
                });
            }
            match serde_json::from_slice::<Value>(&stdout.head) {
                Ok(Value::Object(output)) => Ok(DriverOutput { output, log }),
                Ok(other) => Err(DriverError::Malformed {
                    message: format!("expected an object, got {}", kind(&other)),
                    log,
                }),
                Err(e) if stdout.head.iter().all(u8::is_ascii_whitespace) => {
                    Err(DriverError::Malformed {
                        message: format!(
                            "nothing was written ({e}); print {{}} when there are no outputs"
                        ),
                        log,
                    })
                }
                Err(e) => Err(DriverError::Malformed {
                    message: e.to_string(),
                    log,
                }),
            }
        }
        Some(code) => {
            let reported = serde_json::from_slice::<Map<String, Value>>(&stdout.head)
                .ok()
                .and_then(|answer| answer.get("error")?.as_str().map(str::to_owned))
                .filter(|message| !message.trim().is_empty());
            let message = reported.unwrap_or_else(|| {
                match log.lines().rev().map(str::trim).find(|l| !l.is_empty()) {
                    Some(last) => format!("exited with status {code}: {last}"),
                    None => format!("exited with status {code}"),
                }
            });
            Err(DriverError::Failed { message, log })
        }
        None => {
            let signal = status.signal().unwrap_or_default();
            let mut message = format!("killed by {}", signal_name(signal));
            if status.core_dumped() {
                message.push_str(" (core dumped)");
            }
            Err(DriverError::Crashed { message, log })
        }
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn signal_name(signal: i32) -> String {
    use rustix::process::Signal;
    let name = match Signal::from_named_raw(signal) {
        Some(Signal::HUP) => "SIGHUP",
        Some(Signal::INT) => "SIGINT",
        Some(Signal::QUIT) => "SIGQUIT",
        Some(Signal::ILL) => "SIGILL",
        Some(Signal::ABORT) => "SIGABRT",
        Some(Signal::BUS) => "SIGBUS",
        Some(Signal::FPE) => "SIGFPE",
        Some(Signal::KILL) => "SIGKILL",
        Some(Signal::SEGV) => "SIGSEGV",
        Some(Signal::PIPE) => "SIGPIPE",
        Some(Signal::ALARM) => "SIGALRM",
        Some(Signal::TERM) => "SIGTERM",
        _ => return format!("signal {signal}"),
    };
    format!("signal {signal} ({name})")
}

/// The process group a call's program leads; ended (killed) when the call ends.
struct ProcessGroup(Option<rustix::process::Pid>);

impl ProcessGroup {
    fn end(&mut self) {
        if let Some(pid) = self.0.take() {
            // Nobody left in the group is the usual case.
            let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.end();
    }
}

/// What was kept of a stream: its beginning, its end, and how much between was not.
#[derive(Default)]
struct Captured {
    head: Vec<u8>,
    tail: Vec<u8>,
    left_out: u64,
}

impl Captured {
    fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        if self.left_out > 0 {
            text.push_str(&format!("\n[… {} bytes left out …]\n", self.left_out));
        }
        text.push_str(&String::from_utf8_lossy(&self.tail));
        text
    }
}

/// Reads `stream` to its end, keeping at most `cap` bytes: the first ones, or with
/// `tail`, the first and the last half.
async fn capture(mut stream: impl AsyncRead + Unpin, cap: usize, tail: bool) -> Captured {
    let (head_cap, tail_cap) = if tail {
        (cap / 2, cap - cap / 2)
    } else {
        (cap, 0)
    };
    let mut kept = Captured::default();
    let mut buffer = vec![0; 64 * 1024];
    loop {
        let n = match stream.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let mut chunk = &buffer[..n];
        let room = head_cap - kept.head.len();
        let (first, rest) = chunk.split_at(room.min(chunk.len()));
        kept.head.extend_from_slice(first);
        chunk = rest;
        if tail_cap == 0 {
            kept.left_out += chunk.len() as u64;
            continue;
        }
        kept.tail.extend_from_slice(chunk);
        if kept.tail.len() > 2 * tail_cap {
            let excess = kept.tail.len() - tail_cap;
            kept.tail.drain(..excess);
            kept.left_out += excess as u64;
        }
    }
    if kept.tail.len() > tail_cap {
        let excess = kept.tail.len() - tail_cap;
        kept.tail.drain(..excess);
        kept.left_out += excess as u64;
    }
    kept
}

/// What a reader kept, once its pipe is closed — or what it had when a process that
/// escaped the group still holds the pipe after [`DRAIN`].
async fn collected(reader: Option<JoinHandle<Captured>>) -> Captured {
    let Some(mut reader) = reader else {
        return Captured::default();
    };
    match tokio::time::timeout(DRAIN, &mut reader).await {
        Ok(Ok(kept)) => kept,
        Ok(Err(_)) => Captured::default(),
        Err(_) => {
            reader.abort();
            Captured::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use uuid::Uuid;

    fn example(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("examples/drivers")
            .join(name)
    }

    fn driver(program: PathBuf, state: &Path) -> CommandDriver {
        let mut config = CommandConfig::new(program);
        config.timeout = Duration::from_secs(10);
        config.env.insert(
            "OPSLEDGER_DRIVER_STATE".into(),
            state.to_string_lossy().into_owned(),
        );
        CommandDriver::new(config)
    }

    fn call(operation: &str, params: Value) -> DriverCall {
        DriverCall {
            operation: operation.into(),
            phase: Phase::Do,
            run_id: Uuid::from_u128(0x0123_4567_89ab_cdef),
            step: "vm".into(),
            params: params.as_object().cloned().unwrap_or_default(),
            output: None,
            script: None,
        }
    }

    /// Writes a shell script into `dir`, executable.
    fn script(dir: &Path, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// Whether `pid` is a process still running (a zombie waiting for its parent is not).
    fn running(pid: i32) -> bool {
        match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            Ok(stat) => stat
                .rsplit(')')
                .next()
                .and_then(|rest| rest.split_whitespace().next())
                .is_some_and(|state| state != "Z" && state != "X"),
            Err(_) if Path::new("/proc/self").exists() => false,
            Err(_) => rustix::process::Pid::from_raw(pid)
                .is_some_and(|pid| rustix::process::test_kill_process(pid).is_ok()),
        }
    }

    #[tokio::test]
    async fn the_example_dispatcher_answers_with_outputs_and_undoes_what_it_did() {
        let state = tempfile::tempdir().unwrap();
        let driver = driver(example("opsledger-driver.sh"), state.path());
        let mut create = call(
            operation::CREATE_VM,
            json!({ "hostname": "web-01", "cpu": 2 }),
        );
        let done = driver.call(&create).await.unwrap();
        let vm_ref = done.output["vm_ref"].as_str().unwrap().to_owned();
        assert_eq!(vm_ref, "vm-456789abcdef-vm");
        assert_eq!(done.output["power"], "running");
        assert_eq!(done.output["hostname"], "web-01");
        assert!(done.log.contains("create_vm do"), "{}", done.log);
        assert!(state.path().join("vms").join(&vm_ref).is_file());
        // The same call again answers the same way.
        assert_eq!(driver.call(&create).await.unwrap().output, done.output);

        create.phase = Phase::Undo;
        create.output = Some(done.output.clone());
        let undone = driver.call(&create).await.unwrap();
        assert_eq!(undone.output["undone"], true);
        assert!(
            undone.log.contains(&format!("removed {vm_ref}")),
            "{}",
            undone.log
        );
        assert!(!state.path().join("vms").join(&vm_ref).exists());

        let backup = driver
            .call(&call(operation::BACKUP_VM, json!({ "vm_ref": vm_ref })))
            .await
            .unwrap();
        assert_eq!(backup.output["backup_ref"], "backup-456789abcdef-vm");
        assert!(backup.output["size_bytes"].as_u64().unwrap() > 0);

        let expected = json!({ "ntp": "on", "selinux": "enforcing" });
        let collected = driver
            .call(&call(
                operation::COLLECT_CONFIGURATION,
                json!({ "expected": expected }),
            ))
            .await
            .unwrap();
        assert_eq!(collected.output["settings"], expected);
    }

    #[tokio::test]
    async fn the_example_dispatcher_knows_every_operation_both_ways() {
        let state = tempfile::tempdir().unwrap();
        let driver = driver(example("opsledger-driver.sh"), state.path());
        for name in [
            operation::CREATE_VM,
            operation::CREATE_VOLUME,
            operation::DEPLOY_IMAGE,
            operation::INSTALL_SOFTWARE,
            operation::RUN_SCRIPT,
            operation::START_VM,
            operation::STOP_VM,
            operation::RESTART_VM,
            operation::BACKUP_VM,
            operation::RESTORE_VM,
            operation::DELETE_VM,
            operation::COLLECT_CONFIGURATION,
        ] {
            let mut c = call(name, json!({ "vm_ref": "vm-1", "size_gb": 20 }));
            let done = driver
                .call(&c)
                .await
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            c.phase = Phase::Undo;
            c.output = Some(done.output);
            driver
                .call(&c)
                .await
                .unwrap_or_else(|e| panic!("undo {name}: {e}"));
        }
        let unknown = driver.call(&call("teleport_vm", json!({}))).await;
        assert!(
            matches!(&unknown, Err(DriverError::Failed { message, .. }) if message.contains("teleport_vm")),
            "{unknown:?}"
        );
    }

    #[tokio::test]
    async fn a_call_that_hangs_times_out_and_leaves_no_process_behind() {
        let state = tempfile::tempdir().unwrap();
        let mut config = CommandConfig::new(example("hang.sh"));
        config.timeout = Duration::from_millis(800);
        config.env.insert(
            "OPSLEDGER_DRIVER_STATE".into(),
            state.path().to_string_lossy().into_owned(),
        );
        let driver = CommandDriver::new(config);
        let started = std::time::Instant::now();
        let got = driver.call(&call(operation::CREATE_VM, json!({}))).await;
        let took = started.elapsed();
        match &got {
            Err(DriverError::TimedOut { seconds, log }) => {
                assert_eq!(*seconds, 1);
                assert!(log.contains("waiting"), "{log}");
            }
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(took >= Duration::from_millis(800), "{took:?}");
        assert!(took < Duration::from_millis(2500), "{took:?}");
        let pids = std::fs::read_to_string(state.path().join("hang.pids")).unwrap();
        let pids: Vec<i32> = pids
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect();
        assert_eq!(pids.len(), 2, "the script and the child it started");
        let deadline = std::time::Instant::now() + Duration::from_secs(2);
        while pids.iter().any(|&p| running(p)) && std::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for pid in pids {
            assert!(!running(pid), "process {pid} is still running");
        }
    }

    #[tokio::test]
    async fn a_program_killed_by_a_signal_has_crashed_and_its_log_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let got = driver(example("crash.sh"), dir.path())
            .call(&call(operation::CREATE_VM, json!({})))
            .await;
        match got {
            Err(DriverError::Crashed { message, log }) => {
                assert!(message.contains("SIGSEGV"), "{message}");
                assert!(log.contains("allocating"), "{log}");
            }
            other => panic!("expected a crash, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn an_answer_that_is_not_a_json_object_is_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let got = driver(example("malformed.sh"), dir.path())
            .call(&call(operation::CREATE_VM, json!({})))
            .await;
        match got {
            Err(DriverError::Malformed { message, .. }) => {
                assert!(message.contains("expected value at line 1"), "{message}");
            }
            other => panic!("expected a malformed answer, got {other:?}"),
        }
        let array = script(dir.path(), "array.sh", "echo '[1, 2]'");
        let got = driver(array, dir.path())
            .call(&call(operation::CREATE_VM, json!({})))
            .await;
        assert_eq!(
            got,
            Err(DriverError::Malformed {
                message: "expected an object, got an array".into(),
                log: String::new()
            })
        );
        let silent = script(dir.path(), "silent.sh", "exit 0");
        let got = driver(silent, dir.path())
            .call(&call(operation::CREATE_VM, json!({})))
            .await;
        assert!(
            matches!(&got, Err(DriverError::Malformed { message, .. }) if message.contains("nothing was written")),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn a_non_zero_exit_fails_with_the_programs_error_or_its_last_log_line() {
        let dir = tempfile::tempdir().unwrap();
        let got = driver(example("fail.sh"), dir.path())
            .call(&call(operation::CREATE_VOLUME, json!({})))
            .await;
        match got {
            Err(DriverError::Failed { message, log }) => {
                assert_eq!(message, "disk quota exceeded");
                assert!(log.contains("creating the volume"), "{log}");
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        let plain = script(
            dir.path(),
            "plain.sh",
            "echo 'connecting' >&2\necho 'permission denied' >&2\nexit 4",
        );
        let got = driver(plain, dir.path())
            .call(&call(operation::CREATE_VOLUME, json!({})))
            .await;
        assert!(
            matches!(&got, Err(DriverError::Failed { message, .. }) if message == "exited with status 4: permission denied"),
            "{got:?}"
        );
    }

    #[tokio::test]
    async fn a_large_log_does_not_block_the_program_and_is_kept_in_part() {
        let dir = tempfile::tempdir().unwrap();
        // 5 MiB of log, written before the answer: a driver that read the streams one
        // after the other would wait forever on a full pipe.
        let noisy = script(
            dir.path(),
            "noisy.sh",
            "echo first line >&2\n\
             head -c 5242880 /dev/zero | tr '\\0' 'x' >&2\n\
             echo >&2\necho last line >&2\n\
             echo '{\"ok\": true}'",
        );
        let mut driver = driver(noisy, dir.path());
        driver.config.timeout = Duration::from_secs(20);
        let done = driver
            .call(&call(operation::RUN_SCRIPT, json!({})))
            .await
            .unwrap();
        assert_eq!(done.output["ok"], true);
        assert!(done.log.len() <= KEPT_BYTES + 100, "{}", done.log.len());
        assert!(done.log.len() >= KEPT_BYTES, "{}", done.log.len());
        assert!(done.log.starts_with("first line\n"));
        assert!(done.log.ends_with("last line\n"));
        let left_out = 5 * 1024 * 1024 + "first line\n\nlast line\n".len() - KEPT_BYTES;
        assert!(
            done.log
                .contains(&format!("[… {left_out} bytes left out …]")),
            "{}",
            &done.log[KEPT_BYTES / 2 - 10..KEPT_BYTES / 2 + 60]
        );
    }

    #[tokio::test]
    async fn a_run_script_call_runs_the_library_script_from_the_content_store() {
        let content = crate::store::content::ContentStore::temporary().unwrap();
        let body = b"#!/bin/sh\n\
            input=$(cat)\n\
            echo \"running $OPSLEDGER_STEP\" >&2\n\
            case \"$input\" in *'\"port\":8080'*) port=8080 ;; *) port=none ;; esac\n\
            echo \"{\\\"script_ran\\\": true, \\\"port\\\": \\\"$port\\\"}\"\n";
        let hash = content.put(body.to_vec()).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        // The configured program is not what runs a library script.
        let driver = driver(example("fail.sh"), dir.path());
        let mut c = call(operation::RUN_SCRIPT, json!({ "port": 8080 }));
        c.step = "open-port".into();
        c.script = Some(Script {
            name: "open-port".into(),
            version: 2,
            sha256: hash.to_string(),
            path: content.path(&hash),
        });
        let done = driver.call(&c).await.unwrap();
        assert_eq!(done.output["script_ran"], true);
        assert_eq!(done.output["port"], "8080");
        assert_eq!(done.log, "running open-port\n");

        // A file that is not what the library recorded does not run.
        c.script.as_mut().unwrap().sha256 = Sha256Hex::of(b"other").to_string();
        let got = driver.call(&c).await;
        assert!(
            matches!(&got, Err(DriverError::Failed { message, .. }) if message.contains("does not match")),
            "{got:?}"
        );
    }

    #[test]
    fn a_program_that_is_missing_or_not_executable_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let missing = CommandConfig::new(dir.path().join("nothing"));
        assert!(missing.check().unwrap_err().contains("nothing"));
        let data = dir.path().join("data.txt");
        std::fs::write(&data, "not a program").unwrap();
        assert!(CommandConfig::new(&data)
            .check()
            .unwrap_err()
            .contains("is not executable"));
        assert!(CommandConfig::new(example("opsledger-driver.sh"))
            .check()
            .is_ok());
    }
}
