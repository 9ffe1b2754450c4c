//! The state file: everything the runner knows, rewritten atomically (temp file, fsync,
//! rename, fsync of the directory) after every step, so `kill -9` at any moment leaves
//! either the previous step or the next one on disk, never half of either.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::provider::{Counts, Tokens};

pub const VERSION: u32 = 1;

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct State {
    pub version: u32,
    /// Input content and splitting options: a state file resumes only the same run.
    pub fingerprint: String,
    pub provider: String,
    pub items: Vec<Item>,
    pub batches: Vec<Batch>,
    /// Upstream batches once taken for ours after a crash and proved not to be.
    #[serde(default)]
    pub foreign: Vec<String>,
}

/// Where an item stands: its latest outcome and how many batches it has been in.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Item {
    #[serde(rename = "a")]
    pub attempts: u32,
    #[serde(rename = "o")]
    pub outcome: Outcome,
    /// The batch (`seq`) holding its latest result.
    #[serde(rename = "b", default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<u32>,
    /// The error type (and message) of a failed outcome.
    #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    #[default]
    #[serde(rename = "p")]
    Pending,
    #[serde(rename = "s")]
    Succeeded,
    /// Failed in a way worth another attempt.
    #[serde(rename = "r")]
    Retry,
    /// Failed for good (invalid request, refused, or out of attempts).
    #[serde(rename = "f")]
    Failed,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Split and priced; nothing sent.
    Planned,
    /// Intent recorded, create sent or about to be: the answer may never have arrived.
    Creating,
    /// The upstream has it (its id is known).
    Running,
    /// Ended and its results read into the items.
    Collected,
    /// The gateway refused it (budget, invalid): nothing was created.
    Refused,
}

/// The newest batch of the project when a create was about to be sent: anything the list
/// shows at or after it, of the right size, may be that create's batch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Fence {
    pub id: String,
    pub created_at: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Batch {
    pub seq: u32,
    pub attempt: u32,
    pub items: Vec<u32>,
    pub bytes: u64,
    pub worst_usd: Option<String>,
    pub expected_usd: Option<String>,
    pub phase: Phase,
    #[serde(default)]
    pub id: Option<String>,
    /// Found by listing after a crash: checked against its results before they count.
    #[serde(default)]
    pub adopted: bool,
    /// Set with the intent; `None` inside `Some` means the project had no batches yet.
    #[serde(default)]
    pub fence: Option<Option<Fence>>,
    #[serde(default)]
    pub counts: Counts,
    #[serde(default)]
    pub tokens: Tokens,
    #[serde(default)]
    pub cost_usd: Option<String>,
    #[serde(default)]
    pub list_cost_usd: Option<String>,
    #[serde(default)]
    pub error: Option<String>,
}

impl Batch {
    pub fn planned(seq: u32, attempt: u32, items: Vec<u32>, bytes: u64) -> Self {
        Batch {
            seq,
            attempt,
            items,
            bytes,
            worst_usd: None,
            expected_usd: None,
            phase: Phase::Planned,
            id: None,
            adopted: false,
            fence: None,
            counts: Counts::default(),
            tokens: Tokens::default(),
            cost_usd: None,
            list_cost_usd: None,
            error: None,
        }
    }
}

/// The state file and the directory beside it holding downloaded results.
pub struct Store {
    pub path: PathBuf,
    pub work: PathBuf,
}

impl Store {
    pub fn new(path: PathBuf) -> Self {
        let mut work = path.clone().into_os_string();
        work.push(".d");
        Store { path, work: PathBuf::from(work) }
    }

    pub fn results(&self, seq: u32) -> PathBuf {
        self.work.join(format!("batch-{seq}.jsonl"))
    }

    pub fn load(&self) -> anyhow::Result<Option<State>> {
        match std::fs::read(&self.path) {
            Ok(bytes) => {
                let st: State = serde_json::from_slice(&bytes).map_err(|e| {
                    anyhow::anyhow!("{}: not a batchcost run state file: {e}", self.path.display())
                })?;
                if st.version != VERSION {
                    anyhow::bail!(
                        "{}: state version {} (this batchcost writes {VERSION})",
                        self.path.display(),
                        st.version
                    );
                }
                Ok(Some(st))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(anyhow::anyhow!("{}: {e}", self.path.display())),
        }
    }

    /// Writes `st` so that a crash leaves the old file or the new one, whole.
    pub fn save(&self, st: &State) -> anyhow::Result<()> {
        let bytes = serde_json::to_vec(st)?;
        write_atomic(&self.path, &bytes)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", self.path.display()))
    }
}

pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    // The rename itself is durable only once the directory is synced.
    std::fs::File::open(&dir)?.sync_all()
}
