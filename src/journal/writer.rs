//! Writing the journal off the engine's path.
//!
//! Site loops hand typed records to one writer thread through a bounded queue and never wait
//! for the disk, with one exception: before a failover call they ask for an fsync and wait for
//! it (bounded), so that the decision and what led to it are on disk before the call goes out.
//! A full queue loses lines rather than slowing a decision; the loss is counted and written as
//! a `gap` line, so that replay knows where it is not exact.
//!
//! Files: `state_dir/journal/SITE.jsonl`, rotated by size to `SITE.1.jsonl` (the newest old
//! one) … `SITE.N.jsonl`; the oldest beyond `max_files` is deleted, so a site's journal never
//! takes more than about `max_files + 1` times `file_bytes`.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::{mpsc, oneshot};

use super::record::{ActionRecord, Body, Record};
use crate::engine::{Input, Memory, SiteConfig};

/// How many records may wait for the writer before new ones are dropped (and counted).
const QUEUE: usize = 4096;

/// How long a site loop waits for the fsync before a failover call: the call is not held
/// back longer than this by a slow disk (the state file, not the journal, is the intent).
pub const SYNC_TIMEOUT: Duration = Duration::from_secs(2);

/// Size and retention of each site's journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// A file is rotated when it would grow past this.
    pub file_bytes: u64,
    /// How many rotated files are kept besides the current one.
    pub max_files: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            file_bytes: 16 * 1024 * 1024,
            max_files: 8,
        }
    }
}

/// The directory of the journals inside a state directory.
pub fn journal_dir(state_dir: &Path) -> PathBuf {
    state_dir.join("journal")
}

/// The current file of a site; `generation` 0 is the current one, 1 the newest rotated one.
pub fn journal_file(dir: &Path, site: &str, generation: u32) -> PathBuf {
    if generation == 0 {
        dir.join(format!("{site}.jsonl"))
    } else {
        dir.join(format!("{site}.{generation}.jsonl"))
    }
}

enum Message {
    Record(Box<Record>),
    Sync {
        site: String,
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// Reports writes that failed: (site, error) for a failure, (site, None) when writing works
/// again. The daemon counts them in a metric.
pub type FaultObserver = Arc<dyn Fn(&str, Option<&str>) + Send + Sync>;

/// A handle site loops write through; cheap to clone.
#[derive(Clone)]
pub struct Journal {
    queue: mpsc::Sender<Message>,
    faults: Arc<Mutex<BTreeMap<String, String>>>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Journal")
    }
}

impl Journal {
    /// Starts the writer thread for `state_dir/journal`. It ends when every handle is dropped.
    /// Without a thread (the system refused one), every line counts as lost and is reported.
    pub fn start(
        state_dir: &Path,
        retention: Retention,
        observer: FaultObserver,
    ) -> (Journal, Option<std::thread::JoinHandle<()>>) {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let faults = Arc::new(Mutex::new(BTreeMap::new()));
        let writer = Writer {
            dir: journal_dir(state_dir),
            retention,
            files: BTreeMap::new(),
            faults: faults.clone(),
            observer,
        };
        let thread = std::thread::Builder::new()
            .name("journal".to_string())
            .spawn(move || writer.run(receiver));
        let thread = match thread {
            Ok(thread) => Some(thread),
            Err(error) => {
                tracing::error!("cannot start the decision journal's writer: {error}");
                None
            }
        };
        (Journal { queue, faults }, thread)
    }

    /// Queues a record without waiting; false when the queue is full or the writer is gone.
    pub fn write(&self, record: Record) -> bool {
        self.queue
            .try_send(Message::Record(Box::new(record)))
            .is_ok()
    }

    /// Waits (at most [`SYNC_TIMEOUT`]) until everything queued for `site` so far is on disk.
    pub async fn sync(&self, site: &str) -> Result<(), String> {
        let (reply, answer) = oneshot::channel();
        let message = Message::Sync {
            site: site.to_string(),
            reply,
        };
        let asked = async {
            self.queue
                .send(message)
                .await
                .map_err(|_| "the journal writer has stopped".to_string())?;
            answer
                .await
                .map_err(|_| "the journal writer has stopped".to_string())?
        };
        match tokio::time::timeout(SYNC_TIMEOUT, asked).await {
            Ok(result) => result,
            Err(_) => Err(format!(
                "the journal was not synced within {}s",
                SYNC_TIMEOUT.as_secs()
            )),
        }
    }

    /// The last write error of a site's journal, while writing fails.
    pub fn fault(&self, site: &str) -> Option<String> {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(site)
            .cloned()
    }

    /// Marks lines that never reached the writer as a fault of the site's journal.
    pub fn note_lost(&self, site: &str, lost: u64) {
        self.faults
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(
                site.to_string(),
                format!("{lost} journal lines were dropped: the writer could not keep up"),
            );
    }
}

/// What the writer keeps about a site's open file.
struct SiteFile {
    file: Option<std::fs::File>,
    size: u64,
    /// The last full poll written to the current file: an identical one is written as a
    /// `repeat` (most polls of a healthy pair are).
    last_poll: Option<Input>,
    /// What a new file opens with.
    config: Option<SiteConfig>,
    memory: Option<Memory>,
    dirty: bool,
}

struct Writer {
    dir: PathBuf,
    retention: Retention,
    files: BTreeMap<String, SiteFile>,
    faults: Arc<Mutex<BTreeMap<String, String>>>,
    observer: FaultObserver,
}

impl Writer {
    fn run(mut self, mut receiver: mpsc::Receiver<Message>) {
        while let Some(message) = receiver.blocking_recv() {
            match message {
                Message::Record(record) => {
                    let site = record.site.clone();
                    let result = self.append(*record);
                    self.report(&site, result);
                }
                Message::Sync { site, reply } => {
                    let result = self.sync(&site);
                    self.report(&site, result.clone());
                    let _ = reply.send(result);
                }
            }
        }
        for site in self.files.keys().cloned().collect::<Vec<_>>() {
            let _ = self.sync(&site);
        }
    }

    fn report(&self, site: &str, result: Result<(), String>) {
        let mut faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {
                if faults.remove(site).is_some() {
                    tracing::info!(site = %site, "the journal can be written again");
                    (self.observer)(site, None);
                }
            }
            Err(error) => {
                if faults.get(site) != Some(&error) {
                    tracing::error!(site = %site, "cannot write the decision journal: {error}");
                }
                (self.observer)(site, Some(&error));
                faults.insert(site.to_string(), error);
            }
        }
    }

    fn append(&mut self, mut record: Record) -> Result<(), String> {
        let site = record.site.clone();
        let entry = self.files.entry(site.clone()).or_insert_with(|| SiteFile {
            file: None,
            size: 0,
            last_poll: None,
            config: None,
            memory: None,
            dirty: false,
        });
        match &mut record.body {
            Body::Start { config, memory } | Body::Checkpoint { config, memory } => {
                entry.config = Some(config.clone());
                entry.memory = Some(memory.clone());
            }
            Body::Reconfigure { config } => entry.config = Some(config.clone()),
            Body::Step(step) => {
                for action in &step.actions {
                    if let ActionRecord::Persist { memory } = action {
                        entry.memory = Some((**memory).clone());
                    }
                }
                if let Some(input @ Input::Poll(_)) = &step.input {
                    if entry.last_poll.as_ref() == Some(input) {
                        step.input = None;
                        step.repeat = true;
                    } else {
                        entry.last_poll = Some(input.clone());
                    }
                }
            }
            Body::Gap { .. } => {}
        }
        let mut line = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
        line.push(b'\n');
        if entry.file.is_some()
            && entry.size > 0
            && entry.size + line.len() as u64 > self.retention.file_bytes
        {
            let previous = self.rotate(&site, record.now())?;
            // The first poll of a new file is written in full: a file stands on its own.
            if let Body::Step(step) = &mut record.body
                && step.repeat
            {
                step.input = previous.clone();
                step.repeat = false;
                line = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
                line.push(b'\n');
                if let Some(entry) = self.files.get_mut(&site) {
                    entry.last_poll = previous;
                }
            }
        }
        self.write_line(&site, &line)
    }

    fn open(&mut self, site: &str) -> Result<(), String> {
        let Some(entry) = self.files.get_mut(site) else {
            return Ok(());
        };
        if entry.file.is_some() {
            return Ok(());
        }
        use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| format!("journal directory {}: {e}", self.dir.display()))?;
        let path = journal_file(&self.dir, site, 0);
        let file = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| format!("journal {}: {e}", path.display()))?;
        entry.size = file.metadata().map(|m| m.len()).unwrap_or(0);
        entry.file = Some(file);
        Ok(())
    }

    fn write_line(&mut self, site: &str, line: &[u8]) -> Result<(), String> {
        self.open(site)?;
        let path = journal_file(&self.dir, site, 0);
        let Some(entry) = self.files.get_mut(site) else {
            return Ok(());
        };
        let Some(file) = entry.file.as_mut() else {
            return Ok(());
        };
        match file.write_all(line) {
            Ok(()) => {
                entry.size += line.len() as u64;
                entry.dirty = true;
                Ok(())
            }
            Err(e) => {
                // Reopened at the next line: the file may have been removed or the disk freed.
                entry.file = None;
                Err(format!("journal {}: {e}", path.display()))
            }
        }
    }

    fn sync(&mut self, site: &str) -> Result<(), String> {
        let path = journal_file(&self.dir, site, 0);
        let Some(entry) = self.files.get_mut(site) else {
            return Ok(());
        };
        let Some(file) = entry.file.as_ref() else {
            // Nothing open because the last write failed: that is not "synced".
            let faults = self.faults.lock().unwrap_or_else(|p| p.into_inner());
            return match faults.get(site) {
                Some(error) => Err(error.clone()),
                None => Ok(()),
            };
        };
        if !entry.dirty {
            return Ok(());
        }
        file.sync_data()
            .map_err(|e| format!("journal {}: cannot sync: {e}", path.display()))?;
        entry.dirty = false;
        Ok(())
    }

    /// Closes the current file, shifts the old ones up by one (dropping the oldest), and opens
    /// a new file that begins with a checkpoint. Returns the last full poll of the old file,
    /// which the new one does not know.
    fn rotate(&mut self, site: &str, now: SystemTime) -> Result<Option<Input>, String> {
        self.sync(site)?;
        let mut previous = None;
        if let Some(entry) = self.files.get_mut(site) {
            entry.file = None;
            entry.size = 0;
            previous = entry.last_poll.take();
        }
        let keep = self.retention.max_files;
        let _ = std::fs::remove_file(journal_file(&self.dir, site, keep.max(1)));
        for generation in (0..keep.max(1)).rev() {
            let from = journal_file(&self.dir, site, generation);
            if from.exists() {
                let to = journal_file(&self.dir, site, generation + 1);
                std::fs::rename(&from, &to)
                    .map_err(|e| format!("journal {}: cannot rotate: {e}", from.display()))?;
            }
        }
        if keep == 0 {
            let _ = std::fs::remove_file(journal_file(&self.dir, site, 1));
        }
        let checkpoint = self.files.get(site).and_then(|entry| {
            Some(Body::Checkpoint {
                config: entry.config.clone()?,
                memory: entry.memory.clone().unwrap_or_default(),
            })
        });
        if let Some(body) = checkpoint {
            let record = Record::new(site, now, body);
            let mut line = serde_json::to_vec(&record).map_err(|e| e.to_string())?;
            line.push(b'\n');
            self.write_line(site, &line)?;
        }
        Ok(previous)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{ApplianceReport, Mode, Policy, PollReport};
    use crate::journal::record::Step;

    fn config() -> SiteConfig {
        SiteConfig {
            names: ["east".to_string(), "west".to_string()],
            mode: Mode::Observe,
            policy: Policy::default(),
        }
    }

    fn poll(probe_ok: bool) -> Input {
        let mut report = PollReport::default();
        report.appliances[0] = ApplianceReport {
            probe: Some(if probe_ok {
                Ok(crate::api::model::Probe::Healthy)
            } else {
                Err(crate::api::ErrorKind::Timeout)
            }),
            ..ApplianceReport::default()
        };
        Input::Poll(report)
    }

    #[test]
    fn rotates_by_size_keeps_a_bounded_number_of_files_and_each_file_stands_alone() {
        let dir = tempfile::tempdir().unwrap();
        let retention = Retention {
            file_bytes: 4000,
            max_files: 2,
        };
        let (journal, thread) = Journal::start(dir.path(), retention, Arc::new(|_, _| {}));
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        assert!(journal.write(Record::new(
            "hq",
            t0,
            Body::Start {
                config: config(),
                memory: Memory::default(),
            },
        )));
        for i in 0..200u64 {
            let step = Step {
                // Mostly the same poll: written as repeats.
                input: Some(poll(i % 50 != 49)),
                repeat: false,
                actions: Vec::new(),
                state: "healthy".to_string(),
            };
            assert!(journal.write(Record::new(
                "hq",
                t0 + Duration::from_secs(i),
                Body::Step(step)
            )));
        }
        drop(journal);
        thread.unwrap().join().unwrap();

        let jdir = journal_dir(dir.path());
        let files = crate::journal::segments(&jdir, "hq");
        assert_eq!(
            files.len(),
            3,
            "the current file and two rotated ones: {files:?}"
        );
        for file in &files {
            let size = std::fs::metadata(file).unwrap().len();
            assert!(size <= 4000, "{} is {size} bytes", file.display());
            // Each file alone: a checkpoint (or the start) first, and no repeat it cannot resolve.
            let mut reading = crate::journal::Reading::default();
            crate::journal::read_file(file, &mut reading).unwrap();
            assert!(reading.problems.is_empty(), "{:?}", reading.problems);
            assert!(matches!(
                reading.records[0].body,
                Body::Checkpoint { .. } | Body::Start { .. }
            ));
            for record in &reading.records {
                if let Body::Step(step) = &record.body {
                    assert!(step.input.is_some());
                }
            }
        }
        let text = std::fs::read_to_string(&files[1]).unwrap();
        assert!(text.contains("\"repeat\":true"), "{text}");
        // The newest steps are all there, in order.
        let reading = crate::journal::read(&jdir, Some("hq"), None).unwrap();
        let last = reading.records.last().unwrap();
        assert_eq!(last.now(), t0 + Duration::from_secs(199));
        let mut previous = 0;
        for record in &reading.records {
            assert!(record.ns >= previous);
            previous = record.ns;
        }
    }

    #[test]
    fn a_journal_that_cannot_be_written_is_reported_and_recovers() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the journal directory should be: nothing can be created in it.
        std::fs::write(dir.path().join("journal"), "").unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let observer_seen = seen.clone();
        let (journal, thread) = Journal::start(
            dir.path(),
            Retention::default(),
            Arc::new(move |site, error| {
                observer_seen
                    .lock()
                    .unwrap()
                    .push((site.to_string(), error.map(str::to_string)))
            }),
        );
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        journal.write(Record::new("hq", at, Body::Gap { lost: 1 }));
        let synced = runtime.block_on(journal.sync("hq"));
        assert!(journal.fault("hq").is_some_and(|e| e.contains("journal")));
        assert!(
            synced.is_err(),
            "a journal that could not be written is not synced"
        );
        std::fs::remove_file(dir.path().join("journal")).unwrap();
        journal.write(Record::new("hq", at, Body::Gap { lost: 1 }));
        runtime.block_on(journal.sync("hq")).unwrap();
        assert_eq!(journal.fault("hq"), None, "writing works again");
        drop(journal);
        thread.unwrap().join().unwrap();
        let seen = seen.lock().unwrap();
        assert!(
            seen[0].1.is_some() && seen.last().unwrap().1.is_none(),
            "{seen:?}"
        );
    }
}
